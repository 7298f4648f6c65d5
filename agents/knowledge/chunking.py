"""A document's markdown-like text (`agents/knowledge/extract.py`) → chunks that follow its structure: a section per
heading (each chunk keeps its heading path, e.g. ["Refunds", "How long it takes"]), whole paragraphs packed up to
`size_words`, a paragraph too long for one chunk cut by semchunk at sentence, then word, boundaries. A chunk after the
first of a section starts with about `overlap_words` of the text before it, so a passage cut in two is still found
whole in one of them. A chunk never mixes two sections: its heading path says what all of it is about.

The structure is read by markdown-it-py (CommonMark), so a `#` inside a fenced code block or a setext heading are
what they are. Parsing is the slow part (~40 µs a block), so text with no markdown block syntax at all — a plain
text, a PDF, a CSV — skips it: for such text CommonMark's blocks are exactly its blank-line-separated paragraphs.

No Django here.
"""
import functools
import re
from dataclasses import dataclass

# Line starts that may begin markdown block structure: ATX headings, fences, setext underlines / thematic breaks,
# lists, block quotes, tables, HTML blocks, indented code. Text with none of them is paragraphs only.
_STRUCTURE = re.compile(r"^(?: {0,3}(?:[#`~=*_+>|<-]|\d{1,9}[.)](?:[ \t]|$))| {4}|\t)", re.MULTILINE)
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
_SENTENCE_END = re.compile(r"[.!?:;][\"')\]]*\s+|\n")


@dataclass
class ChunkDraft:
    position: int  # 0..n-1 in document order
    content: str
    heading_path: list[str]  # the headings above the chunk, outermost first; [] before the first heading
    metadata: dict
    word_count: int


@dataclass
class _Unit:
    """A piece of a section's body: a whole block, or a part of a block too long for one chunk."""
    text: str
    words: int
    continues: bool  # the previous unit is the earlier part of the same block (joined by a space, not a break)


def chunk_document(text: str, *, size_words: int, overlap_words: int, metadata: dict | None = None) -> list[ChunkDraft]:
    """The chunks of `text`, in order. `size_words` bounds each chunk's words (overlap included; a single word
    longer than that is not cut); `overlap_words` (at most half the size) is how much of the previous text a
    section's later chunks repeat. Each chunk gets its own copy of `metadata`."""
    size_words = max(int(size_words), 1)
    overlap_words = min(max(int(overlap_words), 0), size_words // 2)
    metadata = dict(metadata or {})
    drafts: list[ChunkDraft] = []
    for heading_path, blocks in _sections(text):
        for content, words in _pack(blocks, size_words, overlap_words):
            drafts.append(ChunkDraft(len(drafts), content, list(heading_path), dict(metadata), words))
    return drafts


# --- structure -------------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _parser():
    from markdown_it import MarkdownIt

    parser = MarkdownIt("commonmark")
    parser.core.ruler.disable(["inline", "text_join"])  # only blocks are needed; heading text stays as written
    return parser


def _sections(text: str) -> list[tuple[tuple[str, ...], list[str]]]:
    """(heading path, the section's blocks as written) in document order; sections without body are left out."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "\ufffd")  # as markdown-it normalises
    if not _STRUCTURE.search(text):
        blocks = [block.strip() for block in _PARAGRAPH_BREAK.split(text)]
        blocks = [block for block in blocks if block]
        return [((), blocks)] if blocks else []

    lines = text.split("\n")
    tokens = _parser().parse(text)
    sections: list[tuple[tuple[str, ...], list[str]]] = []
    path: list[tuple[int, str]] = []  # (level, heading) from the outermost
    blocks: list[str] = []

    def close():
        if blocks:
            sections.append((tuple(heading for _, heading in path), list(blocks)))
            blocks.clear()

    for index, token in enumerate(tokens):
        if token.level != 0 or token.nesting == -1 or token.map is None:
            continue
        if token.type == "heading_open":
            close()
            level = int(token.tag[1:])
            heading = " ".join(tokens[index + 1].content.split())
            while path and path[-1][0] >= level:
                path.pop()
            if heading:
                path.append((level, heading))
        elif token.type != "hr":
            block = "\n".join(lines[token.map[0]:token.map[1]]).strip()
            if block:
                blocks.append(block)
    close()
    return sections


# --- packing ---------------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=16)
def _splitter(size: int):
    import semchunk

    return semchunk.chunkerify(_count_words, size)


def _count_words(text: str) -> int:
    return len(text.split())


def _units(blocks: list[str], limit: int) -> list[_Unit]:
    units = []
    for block in blocks:
        words = _count_words(block)
        if words <= limit:
            units.append(_Unit(block, words, False))
            continue
        for i, piece in enumerate(_splitter(limit)(block)):
            piece = piece.strip()
            if piece:
                units.append(_Unit(piece, _count_words(piece), i > 0))
    return units


def _pack(blocks: list[str], size: int, overlap: int) -> list[tuple[str, int]]:
    """One section's chunks as (content, words): the first holds up to `size` words of the section, each later one
    `size - overlap` new words after the overlap."""
    units = _units(blocks, size - overlap)
    chunks: list[tuple[str, int]] = []
    current: list[_Unit] = []
    words = 0

    def flush():
        body = current[0].text
        for unit in current[1:]:
            body += (" " if unit.continues else "\n\n") + unit.text
        new_words = sum(unit.words for unit in current)
        if chunks and overlap:
            tail, tail_words = _tail(chunks[-1][0], overlap)
            body = tail + (" " if current[0].continues else "\n\n") + body
            new_words += tail_words
        chunks.append((body, new_words))

    for unit in units:
        budget = size - overlap if chunks else size
        if current and words + unit.words > budget:
            flush()
            current, words = [], 0
        current.append(unit)
        words += unit.words
    if current:
        flush()
    return chunks


def _tail(text: str, words: int) -> tuple[str, int]:
    """About the last `words` words of `text`, starting at a sentence start when one is in the first half of them."""
    parts = text.rsplit(None, words)
    if len(parts) <= words:  # the whole text is that short
        return text.strip(), len(parts)
    tail = text[len(parts[0]):].strip()
    sentence = _SENTENCE_END.search(tail, 0, len(tail) // 2)
    if sentence:
        tail = tail[sentence.end():].lstrip()
        return tail, _count_words(tail)
    return tail, words
