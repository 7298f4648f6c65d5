"""Searching a project's knowledge base: lexical, semantic, or both fused. Only chunks of the project's `ready`
documents are found.

- Lexical. PostgreSQL: `websearch_to_tsquery` in the project's language (`knowledge_regconfig`) over the GIN-indexed
  `search` column, ranked by `ts_rank_cd`. Questions are natural language, and the AND of all their words misses
  most answers ("how long does a refund take" → a page on refunds that never says "long"), so the query's own
  tsquery is widened — in tiers, so that a question's common words do not make the whole corpus a candidate: all
  terms, then at least two, then any (`_pg_lexical`); chunks holding more of them rank first, then by
  `ts_rank_cd`. SQLite: FTS5 `MATCH` of the project's token and the OR of the quoted words (so that nothing a user
  types is FTS syntax), ranked by `bm25` inside the index.
- Semantic: the question's embedding against the chunks' (cosine): pgvector's HNSW index of that dimension (with
  iterative scans, so that the project filter does not starve the result), or sqlite-vec's KNN (`k`, the project
  as partition key).
- Hybrid: reciprocal-rank fusion (k = 60) of both lists. Without embeddings it is lexical, and says so (`mode`).

`Hit.relevance` is what the no-model answer threshold reads: the share of the question's content words (stop words
out, stemmed in the project's language with the Snowball stemmers PostgreSQL's own dictionaries use) that the
chunk — with its document's name and headings — contains. Scores differ between databases and modes; this does not.
`ANSWER_THRESHOLD` is set by the recall test set (tests/agents/knowledge/test_search.py)."""
import asyncio
import concurrent.futures
import functools
import importlib
import math
import re
import threading
from dataclasses import dataclass, field

from django.db import DatabaseError, connections, transaction

from agents.knowledge import embeddings, index

MODES = ("lexical", "semantic", "hybrid")
RRF_K = 60
MAX_TOP_K = 50
MAX_QUERY_CHARS = 1000
ANY_CANDIDATES = 400  # PostgreSQL: chunks holding any one of the question's terms that are ranked
EMBED_THREADS = 4  # the sync path's questions embedded at once (the API's threads beyond wait their turn)
EF_SEARCH = 100  # HNSW candidates per scan (pgvector's default is 40)
# A hit answers a question without a model when it holds at least this share of the question's content words. Below
# it, most off-topic questions of the test set; above it, most on-topic ones (see test_search.py's figures).
ANSWER_THRESHOLD = 0.4
_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\- ]{0,63}")

STOP_WORDS = frozenset(
    "a about above after again against all am an and any are as at be because been before being below between both "
    "but by can could did do does doing down during each few for from further had has have having he her here hers "
    "herself him himself his how i if in into is it its itself just me more most my myself no nor not now of off "
    "on once only or other our ours ourselves out over own same she should so some such than that the their theirs "
    "them themselves then there these they this those through to too under until up very was we were what when "
    "where which while who whom why will with would you your yours yourself yourselves get got want need please "
    "tell know let like".split())


class SearchUnavailable(Exception):
    """The mode asked for cannot run here (no embeddings endpoint, or a database that stores no vectors)."""


@dataclass
class Hit:
    chunk_id: int
    document_id: str
    document_name: str
    content: str
    score: float  # the mode's own: ts_rank_cd or -bm25, cosine similarity, or the fused RRF score
    metadata: dict
    heading_path: list[str]
    relevance: float = 0.0  # the share of the question's content words the chunk holds (0..1), the same everywhere

    @property
    def public_chunk_id(self) -> str:
        return f"chk_{self.chunk_id}"


@dataclass
class SearchOutcome:
    hits: list[Hit]
    mode: str  # the mode that ran: "hybrid" asked without embeddings runs "lexical"
    notes: list[str] = field(default_factory=list)


def search_modes() -> list[str]:
    """The modes this installation can run."""
    if embeddings.embeddings_configured() and index.vectors_available():
        return list(MODES)
    return ["lexical"]


async def asearch_modes() -> list[str]:
    """`search_modes()` for async code (/readyz)."""
    if embeddings.embeddings_configured() and await index.avectors_available():
        return list(MODES)
    return ["lexical"]


def answer_hits(outcome: SearchOutcome) -> list[Hit]:
    """The hits good enough to answer with when there is no model to judge them, best first: none unless the best
    hit clears the threshold (a lower-ranked hit that happens to share more words is not a better answer)."""
    if not outcome.hits or outcome.hits[0].relevance < ANSWER_THRESHOLD:
        return []
    return [hit for hit in outcome.hits if hit.relevance >= ANSWER_THRESHOLD]


# --- the entry points

def knowledge_search(*, project, query: str, top_k: int = 5, mode: str = "hybrid",
                     filters: dict | None = None) -> SearchOutcome:
    """Raises ValueError for bad arguments, SearchUnavailable for `semantic` that cannot run, EmbeddingError when the
    endpoint fails in `semantic` (`hybrid` then runs lexical).

    Hybrid runs the lexical statement here while a thread of `_embedder()` embeds the question (an HTTP round trip)
    and, on PostgreSQL with Django's connection pool and outside a transaction, runs the semantic statement on a
    pooled connection of its own. Inside a transaction (a test's, a caller's) the semantic statement follows here,
    on this thread's connection, so that it sees what the transaction wrote."""
    plan = _Plan.make(project=project, query=query, top_k=top_k, mode=mode, filters=filters)
    vector, notes, semantic = None, [], None
    if plan.wants_vectors and plan.ready_for_vectors(index.vectors_available()):
        if plan.mode == "semantic":  # nothing to overlap with
            vector, notes = plan.embedded(lambda: embeddings.embed_query(plan.query))
        else:
            semantic = _embedder().submit(_semantic_elsewhere if _pooled_outside_transaction() else _vector_only,
                                          plan)
    rows = plan.run_lists(_run_sync, plan.statements(None)) if plan.mode != "semantic" else {}
    if semantic is not None:
        (vector, notes), semantic_rows = semantic.result()
        if semantic_rows is not None:
            rows.update(semantic_rows)
            return plan.finish(rows, vector, notes)
    if vector is not None:
        rows.update(plan.run_lists(_run_sync, {"semantic": plan.semantic_statements(vector)}))
    return plan.finish(rows, vector, notes)


def _pooled_outside_transaction() -> bool:
    connection = connections["default"]
    return (connection.vendor == "postgresql" and getattr(connection, "pool", None) is not None
            and not connection.in_atomic_block)


def _vector_only(plan: "_Plan"):
    return plan.embedded(lambda: embeddings.embed_query(plan.query)), None


def _semantic_elsewhere(plan: "_Plan"):
    """In an `_embedder()` thread: the vector, then the semantic rows on that thread's pooled connection (given
    back to the pool at once)."""
    from config import db

    vector, notes = plan.embedded(lambda: embeddings.embed_query(plan.query))
    if vector is None:
        return (vector, notes), None
    rows = db.released(plan.run_lists)(_run_sync, {"semantic": plan.semantic_statements(vector)})
    return (vector, notes), rows


async def knowledge_asearch(*, project, query: str, top_k: int = 5, mode: str = "hybrid",
                            filters: dict | None = None) -> SearchOutcome:
    """`knowledge_search` for the turn's event loop: the question is embedded with the async client while the
    lexical statement runs (config/db.py: on the async pool on PostgreSQL, each list on a connection of its own;
    Django's connection in the sync thread on SQLite), then the semantic one."""
    plan = _Plan.make(project=project, query=query, top_k=top_k, mode=mode, filters=filters)
    wants_vectors = plan.wants_vectors and plan.ready_for_vectors(await index.avectors_available())

    async def semantic() -> tuple[dict, list[float] | None, list[str]]:
        if not wants_vectors:
            return {}, None, []
        try:
            vector = await embeddings.aembed_query(plan.query)
        except embeddings.EmbeddingError as exc:
            if plan.mode == "semantic":
                raise
            return {}, None, [f"Semantic search was skipped: {exc}"]
        return await _arun_lists(plan, {"semantic": plan.semantic_statements(vector)}), vector, []

    lexical = _arun_lists(plan, plan.statements(None)) if plan.mode != "semantic" else _nothing_async()
    (lexical_rows, (semantic_rows, vector, notes)) = await asyncio.gather(lexical, semantic())
    return plan.finish({**lexical_rows, **semantic_rows}, vector, notes)


async def _nothing_async() -> dict:
    return {}


async def _arun_lists(plan: "_Plan", lists: dict[str, list]) -> dict[str, list[dict]]:
    from config import db

    rows = {}
    for kind, statements in lists.items():
        try:
            rows[kind] = (await db.run(statements, atomic=len(statements) > 1))[-1]
        except DatabaseError as exc:
            if not _no_vector_table(exc):
                raise
            rows[kind] = []
    return rows


_executor: concurrent.futures.ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _embedder() -> concurrent.futures.ThreadPoolExecutor:
    """The threads that embed questions for the sync path (few: each waits on one HTTP request)."""
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = concurrent.futures.ThreadPoolExecutor(max_workers=EMBED_THREADS,
                                                              thread_name_prefix="knowledge-embed")
        return _executor


def _no_vector_table(exc: Exception) -> bool:
    """SQLite: nothing of this dimension was ever stored, so its vec0 table does not exist: nothing to find."""
    return "no such table: knowledge_vec_" in str(exc)


def _run_sync(statements) -> list[dict]:
    """The statements' last result. PostgreSQL: all of them in ONE round trip (psycopg's client-side binding
    cursor sends them as one query string, which the server runs as one implicit transaction: `SET LOCAL` holds
    for it alone); SQLite: one statement."""
    connection = connections["default"]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(";\n".join(sql for sql, _params in statements),
                           [param for _sql, params in statements for param in params])
            while cursor.nextset():
                pass
        else:
            with transaction.atomic() if len(statements) > 1 else _nothing():
                for sql, params in statements:
                    cursor.execute(sql, params)
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


# --- the plan: arguments checked once, SQL the same for both runners

@dataclass
class _Plan:
    project_id: str
    language: str
    query: str
    top_k: int
    mode: str
    filters: dict
    postgres: bool

    @classmethod
    def make(cls, *, project, query, top_k, mode, filters) -> "_Plan":
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}.")
        if not isinstance(query, str) or not query.strip():
            raise ValueError("query must be a non-empty string.")
        if len(query) > MAX_QUERY_CHARS:
            raise ValueError(f"query must be at most {MAX_QUERY_CHARS} characters.")
        if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
            raise ValueError(f"topK must be an integer from 1 to {MAX_TOP_K}.")
        return cls(project_id=project.pk, language=getattr(project, "language", "") or "en", query=query.strip(),
                   top_k=top_k, mode=mode, filters=filters_clean(filters),
                   postgres=connections["default"].vendor == "postgresql")

    @property
    def wants_vectors(self) -> bool:
        return self.mode in ("semantic", "hybrid")

    def ready_for_vectors(self, vectors_available: bool) -> bool:
        """Whether to embed the question; raises SearchUnavailable for `semantic` that cannot run."""
        if embeddings.embeddings_configured() and vectors_available:
            return True
        if self.mode == "semantic":
            raise SearchUnavailable(
                "Semantic search is not available: no embeddings endpoint is configured (CONDUET_EMBEDDINGS_BASE_URL)."
                if not embeddings.embeddings_configured() else
                "Semantic search is not available: this database cannot store vectors (pgvector or sqlite-vec).")
        return False

    def embedded(self, embed) -> tuple[list[float] | None, list[str]]:
        """`embed()`'s vector, or None with a note when the endpoint failed in `hybrid`."""
        try:
            return embed(), []
        except embeddings.EmbeddingError as exc:
            if self.mode == "semantic":
                raise
            return None, [f"Semantic search was skipped: {exc}"]

    def run_lists(self, run, lists: dict[str, list]) -> dict[str, list[dict]]:
        rows = {}
        for kind, statements in lists.items():
            try:
                rows[kind] = run(statements)
            except DatabaseError as exc:
                if not _no_vector_table(exc):
                    raise
                rows[kind] = []
        return rows

    @property
    def depth(self) -> int:
        """Candidates per list: a fused list needs more than it returns."""
        return self.top_k if self.mode != "hybrid" else max(self.top_k * 4, 20)

    def statements(self, vector: list[float] | None) -> dict[str, list]:
        lists = {}
        if self.mode in ("lexical", "hybrid"):
            lexical = (self._pg_lexical if self.postgres else self._sqlite_lexical)()
            if lexical:
                lists["lexical"] = lexical
        if vector is not None:
            lists["semantic"] = self.semantic_statements(vector)
        return lists

    def semantic_statements(self, vector: list[float]) -> list:
        return (self._pg_semantic if self.postgres else self._sqlite_semantic)(vector)

    def finish(self, rows: dict[str, list[dict]], vector, notes) -> SearchOutcome:
        ran = self.mode if vector is not None or self.mode == "lexical" else "lexical"
        lists = {kind: [_hit(row) for row in found] for kind, found in rows.items()}
        if ran == "hybrid":
            hits = _fused(lists.get("lexical", []), lists.get("semantic", []))[:self.top_k]
        else:
            hits = lists.get(ran, [])[:self.top_k]
        terms = query_terms(self.query, self.language)
        for hit in hits:
            hit.relevance = coverage(terms, " ".join([hit.document_name, *hit.heading_path, hit.content]),
                                     self.language)
        return SearchOutcome(hits=hits, mode=ran, notes=notes)

    # SQL. Columns: id, document_id, document_name, content, metadata, heading_path, score.

    def _where(self) -> tuple[str, list]:
        sql, params = " AND c.project_id = %s AND d.status = 'ready'", [self.project_id]
        if self.filters:
            if self.postgres:
                from psycopg.types.json import Jsonb

                sql += " AND c.metadata @> %s"
                params.append(Jsonb(self.filters))
            else:
                import json

                for key, value in self.filters.items():
                    sql += " AND (c.metadata -> %s) = json(%s)"
                    params += [f'$."{key}"', json.dumps(value)]
        return sql, params

    def _pg_lexical(self) -> list:
        # Tiers, so that the common words of a question do not make every chunk a candidate to rank: the chunks
        # holding all its terms (the AND: selective over the GIN index); only when they are fewer than the depth,
        # those holding at least two of them; only then those holding any — and of those, at most
        # ANY_CANDIDATES are ranked (a single common word may match most of the corpus). The final order over this
        # small set is the one of a full scan: how many of the question's terms a chunk holds, then ts_rank_cd
        # (scaled into 0..1 by flag 32). `knowledge_query` (migration 0003) is IMMUTABLE and written inline, so the
        # planner folds each tier's tsquery into a constant: the GIN index takes it, with a real estimate; a
        # question of stop words only is NULL, which matches nothing. A tier after a full one is not run at all
        # (a one-time filter on the earlier tiers' count).
        where, params = self._where()
        lq = [self.language, self.query]

        def query(matching: int) -> str:
            return f"knowledge_query(%s, %s, {matching})"

        def tier(matching: int, enough: str, limit: int) -> tuple[str, list]:
            sql = (f"SELECT c.id FROM knowledge_chunk c JOIN knowledge_document d ON d.id = c.document_id "
                   f"WHERE {enough}c.search @@ {query(matching)}{where} "
                   f"ORDER BY ts_rank_cd(c.search, {query(1)}, 32) DESC, c.id LIMIT %s")
            return sql, [*lq, *params, *lq, limit]

        all_sql, all_params = tier(0, "", self.depth)
        two_sql, two_params = tier(2, "(SELECT count(*) FROM t_all) < %s AND ", self.depth)
        any_sql = (f"SELECT id FROM (SELECT c.id, c.search FROM knowledge_chunk c "
                   f"JOIN knowledge_document d ON d.id = c.document_id "
                   f"WHERE (SELECT count(*) FROM (SELECT id FROM t_all UNION SELECT id FROM t_two) found) < %s "
                   f"AND c.search @@ {query(1)}{where} LIMIT %s) capped "
                   f"ORDER BY ts_rank_cd(capped.search, {query(1)}, 32) DESC, id LIMIT %s")
        matched = ("(SELECT count(*) FROM unnest(tsvector_to_array(to_tsvector(knowledge_regconfig(%s), %s))) term "
                   "WHERE c.search @@ quote_literal(term)::tsquery)")
        sql = (f"WITH t_all AS ({all_sql}), t_two AS ({two_sql}), t_any AS ({any_sql}), "
               f"found AS (SELECT id FROM t_all UNION SELECT id FROM t_two UNION SELECT id FROM t_any) "
               f"SELECT {_COLUMNS}, {matched} + ts_rank_cd(c.search, {query(1)}, 32) AS score "
               f"FROM found JOIN knowledge_chunk c ON c.id = found.id "
               f"JOIN knowledge_document d ON d.id = c.document_id ORDER BY score DESC, c.id LIMIT %s")
        # The capped tier's LIMIT makes a sequential scan look cheap (it stops at the cap — unless the terms are
        # rare, and then it reads the whole table): the index, always (SET LOCAL: this transaction only).
        return [("SET LOCAL enable_seqscan = off", []),
                (sql, [*all_params, self.depth, *two_params,
                       self.depth, *lq, *params, ANY_CANDIDATES, *lq, self.depth,
                       *lq, *lq, self.depth])]

    def _sqlite_lexical(self) -> list:
        words = [word for word in re.findall(r"\w+", self.query.lower()) if word not in STOP_WORDS]
        if not words:
            return []
        # The project is a token of the FTS table's `project` column (migration 0003), so that FTS5 filters and
        # ranks inside its index, and hands over only its best rows (`ORDER BY rank LIMIT`): the ready/filter
        # conditions are applied to those, over-fetched so that they leave enough (CROSS JOIN: SQLite's planner
        # keeps that order, rather than reading the project's every chunk to look each up in the matches). With
        # metadata filters, which may keep few of the project's chunks, every match is joined instead.
        match = (f'project : "{sqlite_project_token(self.project_id)}" AND body : ('
                 + " OR ".join(f'"{word}"' for word in dict.fromkeys(words)) + ")")
        fetch = -1 if self.filters else self.depth * 4 + 50
        where, params = self._where()
        sql = (f"SELECT {_COLUMNS}, -fts.rank AS score FROM (SELECT rowid, rank FROM knowledge_chunk_fts "
               f"WHERE knowledge_chunk_fts MATCH %s ORDER BY rank LIMIT %s) fts "
               f"CROSS JOIN knowledge_chunk c ON c.id = fts.rowid JOIN knowledge_document d ON d.id = c.document_id "
               f"WHERE 1 = 1{where} ORDER BY fts.rank, c.id LIMIT %s")
        return [(sql, [match, fetch, *params, self.depth])]

    def _pg_semantic(self, vector: list[float]) -> list:
        dims, literal = len(vector), index.vector_text(vector)
        where, params = self._where()
        distance = f"(c.embedding::vector({dims})) <=> %s::vector({dims})"
        sql = (f"SELECT {_COLUMNS}, 1 - ({distance}) AS score "
               f"FROM knowledge_chunk c JOIN knowledge_document d ON d.id = c.document_id "
               f"WHERE vector_dims(c.embedding) = {dims}{where} ORDER BY {distance} LIMIT %s")
        # Ordered by the index's own expression alone: a tie-break column would keep the planner off the index.
        # SET LOCAL: for this transaction only (the statements run in one, on either runner).
        return [(f"SET LOCAL hnsw.ef_search = {max(EF_SEARCH, self.depth)}", []),
                ("SET LOCAL hnsw.iterative_scan = strict_order", []),
                (sql, [literal, *params, literal, self.depth])]

    def _sqlite_vec_k(self) -> int:
        # KNN runs before the ready/filter conditions: ask for more, so that they leave enough (sqlite-vec's k ≤ 4096).
        return min(4096, self.depth * (8 if self.filters else 3) + 20)

    def _sqlite_semantic(self, vector: list[float]) -> list:
        table = index.sqlite_vec_table(len(vector))
        where, params = self._where()
        sql = (f"SELECT {_COLUMNS}, 1 - knn.distance AS score FROM (SELECT rowid, distance FROM {table} "
               f"WHERE embedding MATCH %s AND k = %s AND project_id = %s) knn "
               f"JOIN knowledge_chunk c ON c.id = knn.rowid JOIN knowledge_document d ON d.id = c.document_id "
               f"WHERE 1 = 1{where} ORDER BY knn.distance, c.id LIMIT %s")
        return [(sql, [index.vector_blob(vector), self._sqlite_vec_k(), self.project_id, *params, self.depth])]


def sqlite_project_token(project_id: str) -> str:
    """The token of a project in the FTS table's `project` column, as migration 0003's trigger writes it."""
    return "k" + project_id.encode().hex() + "0"


_COLUMNS = ("c.id, c.document_id, d.name AS document_name, c.content, c.metadata, c.heading_path")


def filters_clean(filters) -> dict:
    """{metadata key: scalar value}; raises ValueError (the API's 400) for anything else."""
    if filters is None:
        return {}
    if not isinstance(filters, dict):
        raise ValueError("filters must be an object of metadata keys and values.")
    for key, value in filters.items():
        if not isinstance(key, str) or not _KEY.fullmatch(key):
            raise ValueError(f"filters: {key!r} is not a metadata key (letters, digits, '_', '-', '.', space; "
                             "at most 64 characters).")
        if value is not None and not isinstance(value, str | int | float | bool):
            raise ValueError(f"filters: the value of {key!r} must be text, a number, a boolean or null.")
    return dict(filters)


def _hit(row: dict) -> Hit:
    from config.db import json_value

    score = float(row["score"] or 0.0)
    return Hit(chunk_id=row["id"], document_id=row["document_id"], document_name=row["document_name"],
               content=row["content"], score=0.0 if math.isnan(score) else score,  # a zero vector's cosine
               metadata=json_value(row["metadata"]) or {}, heading_path=json_value(row["heading_path"]) or [])


def _fused(lexical: list[Hit], semantic: list[Hit]) -> list[Hit]:
    """Reciprocal-rank fusion: each list gives a hit 1 / (60 + its rank)."""
    fused: dict[int, Hit] = {}
    scores: dict[int, float] = {}
    for hits in (lexical, semantic):
        for rank, hit in enumerate(hits, start=1):
            fused.setdefault(hit.chunk_id, hit)
            scores[hit.chunk_id] = scores.get(hit.chunk_id, 0.0) + 1.0 / (RRF_K + rank)
    ordered = sorted(fused, key=lambda chunk_id: (-scores[chunk_id], chunk_id))
    for chunk_id in ordered:
        fused[chunk_id].score = scores[chunk_id]
    return [fused[chunk_id] for chunk_id in ordered]


# --- relevance: the question's content words the chunk holds

def _stemmer(language: str):
    import snowballstemmer

    codes = importlib.import_module("agents.migrations.0003_knowledge_base").ISO_CODES
    base = (language or "").replace("_", "-").split("-")[0].lower()
    name = codes.get(base, base)
    return snowballstemmer.stemmer(name) if name in snowballstemmer.algorithms() else None


_stemmers: dict[str, object] = {}


@functools.lru_cache(maxsize=200_000)
def _stem(word: str, language: str) -> str:
    """One word's stem, remembered: Snowball in pure Python costs ~0.2 ms a word, and every hit's words are stemmed
    (a corpus's vocabulary is far smaller than its words)."""
    if language not in _stemmers:
        _stemmers[language] = _stemmer(language)
    stemmer = _stemmers[language]
    return stemmer.stemWord(word) if stemmer else word


def _stems(text: str, language: str) -> list[str]:
    return [_stem(word, language) for word in re.findall(r"\w\w+", text.lower()) if word not in STOP_WORDS]


def query_terms(query: str, language: str) -> set[str]:
    return set(_stems(query, language))


def coverage(terms: set[str], text: str, language: str) -> float:
    if not terms:
        return 0.0
    return len(terms & set(_stems(text, language))) / len(terms)
