"""Intent matching with no model: TF-IDF over character 3-grams (robust to typos and inflection) blended with
word overlap (robust to reordering), scored in [0, 1]. The index is built once per spec; a query costs one pass
over the utterances' sparse vectors."""
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Hashable, Iterable
from dataclasses import dataclass

THRESHOLD = 0.38
CHAR_WEIGHT = 0.8
_NON_WORD = re.compile(r"[^a-z0-9]+")
_VARIANTS = {"cannot": "cant", "pls": "please", "plz": "please", "u": "you", "ur": "your", "acct": "account"}
# Carrier words that say little about what the user wants; dropped unless nothing else is left.
_STOPWORDS = frozenset(
    "a an the i im me my we our you your to of on for at is are am be do does did can could would will "
    "please and or it its this that with about want need like how what when where which who why there here "
    "hi hello hey just some any get".split()
)


def normalize(text: str) -> str:
    """Lower case, accents and punctuation removed, apostrophes dropped (`can't` → `cant`)."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower().replace("'", "")
    words = _NON_WORD.sub(" ", plain.replace("’", "")).split()
    return " ".join(_VARIANTS.get(word, word) for word in words)


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def content(normalized: str) -> str:
    """The utterance without carrier words, or all of it when it is only carrier words."""
    kept = [w for w in normalized.split() if w not in _STOPWORDS]
    return " ".join(kept) if kept else normalized


def _words(text: str) -> frozenset[str]:
    return frozenset(_stem(w) for w in text.split())


def _grams(normalized: str) -> Counter:
    """Word-boundary 3-grams of each word, plus the 3-grams of the words run together, so that a split or
    joined word (`log in` / `login`) still shares most of its grams."""
    grams: Counter = Counter()
    for word in normalized.split():
        padded = f" {word} "
        grams.update(padded[i:i + 3] for i in range(len(padded) - 2))
    joined = normalized.replace(" ", "")
    grams.update("~" + joined[i:i + 3] for i in range(len(joined) - 2))
    return grams


@dataclass(frozen=True)
class Match:
    key: Hashable
    score: float
    utterance: str


class IntentIndex:
    """Utterances, each labelled with a key (a workflow id, a button index); `best(text)` is the key whose
    utterance is most similar, if it scores at least the threshold."""

    def __init__(self, entries: Iterable[tuple[Hashable, str]], threshold: float = THRESHOLD):
        self.threshold = threshold
        rows = [(key, utterance, content(normalize(utterance))) for key, utterance in entries]
        rows = [row for row in rows if row[2]]
        document_frequency: Counter = Counter()
        gram_counts = [_grams(norm) for _key, _utt, norm in rows]
        for grams in gram_counts:
            document_frequency.update(grams.keys())
        count = len(rows)
        self._idf = {gram: math.log((1 + count) / (1 + df)) + 1 for gram, df in document_frequency.items()}
        self._unseen_idf = math.log(1 + count) + 1
        self._rows = []
        for (key, utterance, norm), grams in zip(rows, gram_counts, strict=True):
            vector = {gram: tf * self._idf[gram] for gram, tf in grams.items()}
            length = math.sqrt(sum(w * w for w in vector.values())) or 1.0
            self._rows.append((key, utterance, {g: w / length for g, w in vector.items()}, _words(norm)))

    def __len__(self) -> int:
        return len(self._rows)

    def score_all(self, text: str) -> list[Match]:
        norm = content(normalize(text))
        if not norm or not self._rows:
            return []
        grams = _grams(norm)
        query = {g: tf * self._idf.get(g, self._unseen_idf) for g, tf in grams.items()}
        length = math.sqrt(sum(w * w for w in query.values())) or 1.0
        words = _words(norm)
        matches = []
        for key, utterance, vector, row_words in self._rows:
            cosine = sum(w * vector[g] for g, w in query.items() if g in vector) / length
            union = words | row_words
            overlap = len(words & row_words) / len(union) if union else 0.0
            matches.append(Match(key, CHAR_WEIGHT * cosine + (1 - CHAR_WEIGHT) * overlap, utterance))
        return matches

    def best(self, text: str) -> Match | None:
        matches = self.score_all(text)
        if not matches:
            return None
        top = max(matches, key=lambda m: m.score)
        return top if top.score >= self.threshold else None
