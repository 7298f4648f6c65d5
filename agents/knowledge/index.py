"""Writing a document's chunks with their search entries: the lexical entry is made by the database's own triggers
(migration 0003), the vector here.

Vectors live where each database searches them with a real index, one per dimension (a model change may change it):
- PostgreSQL: the `embedding vector` column (no fixed dimension) and, per dimension d, a partial HNSW cosine index on
  `embedding::vector(d)` WHERE `vector_dims(embedding) = d`, created the first time a vector of d dimensions is
  stored. Deleting a chunk row deletes its vector with it.
- SQLite: a sqlite-vec `vec0` table `knowledge_vec_<d>` (cosine, the project as partition key) whose rowid is the
  chunk's id, created on demand with an AFTER DELETE trigger on `knowledge_chunk` that deletes the vector: so a
  document deleted through the ORM's cascade (or its project) leaves no vector behind.

sqlite-vec is loaded into every SQLite connection when Django opens it (`sqlite_vec_load`, connected in
agents/apps.py). If it cannot be loaded, vectors are unavailable — logged once, the knowledge base is lexical — never
a crash. Without the `vector` extension on PostgreSQL the migration made no `embedding` column: lexical as well
(agents/knowledge/checks.py says so at start-up)."""
import logging
import re
import struct
from collections.abc import Sequence

from django.db import connections, transaction

from agents.knowledge.models import KnowledgeChunk

logger = logging.getLogger(__name__)

VECTOR_BATCH = 500  # vectors written per statement
INSERT_BATCH = 1000  # PostgreSQL: chunks (with their vectors) inserted per statement
HNSW_MAX_DIMENSIONS = 2000  # pgvector indexes `vector` up to this; beyond, semantic search scans exactly

_sqlite_vec_failure: str | None = None  # why sqlite-vec could not be loaded (logged once)
_pg_vectors: dict[str, bool] = {}  # database name → it has the embedding column (read once per process)
_pg_indexed: set[tuple[str, int]] = set()  # (database name, dimensions) whose HNSW index is known to exist


# --- sqlite-vec on every SQLite connection

def sqlite_vec_load(sender, connection, **kwargs) -> None:
    """`connection_created` receiver: loads sqlite-vec into a new SQLite connection, extension loading switched on
    only for that call (so that SQL can never load a library itself)."""
    global _sqlite_vec_failure
    if connection.vendor != "sqlite":
        return
    raw = connection.connection
    try:
        import sqlite_vec

        raw.enable_load_extension(True)
        try:
            sqlite_vec.load(raw)
        finally:
            raw.enable_load_extension(False)
    except Exception as exc:  # a missing module, a library that does not load, a SQLite without extension loading
        connection.conduet_sqlite_vec = False
        if _sqlite_vec_failure is None:
            _sqlite_vec_failure = f"{type(exc).__name__}: {exc}"
            logger.warning("sqlite-vec could not be loaded (%s): the knowledge base's search is lexical only.",
                           _sqlite_vec_failure)
        return
    connection.conduet_sqlite_vec = True


def sqlite_vec_failure() -> str | None:
    """Why sqlite-vec could not be loaded in this process, or None."""
    return _sqlite_vec_failure


# --- can this database store vectors?

def vectors_available(using: str = "default") -> bool:
    """Whether this database stores and searches vectors: sqlite-vec loaded on SQLite; the `embedding` column
    (pgvector) on PostgreSQL."""
    connection = connections[using]
    if connection.vendor == "sqlite":
        connection.ensure_connection()
        return bool(getattr(connection, "conduet_sqlite_vec", False))
    if connection.vendor != "postgresql":
        return False
    name = connection.settings_dict["NAME"]
    if name not in _pg_vectors:
        with connection.cursor() as cursor:
            cursor.execute(PG_HAS_EMBEDDING)
            _pg_vectors[name] = cursor.fetchone() is not None
    return _pg_vectors[name]


async def avectors_available() -> bool:
    """`vectors_available()` for async code (config/db.py: the async pool on PostgreSQL)."""
    from asgiref.sync import sync_to_async

    from config import db

    if not db.is_postgres():
        return await sync_to_async(db.released(vectors_available))()
    name = connections["default"].settings_dict["NAME"]
    if name not in _pg_vectors:
        _pg_vectors[name] = await db.fetch_one(PG_HAS_EMBEDDING) is not None
    return _pg_vectors[name]


def vectors_forget() -> None:
    """Forgets what was learnt of the databases (after the extension or the column changed: tests, re-embedding)."""
    _pg_vectors.clear()
    _pg_indexed.clear()


PG_HAS_EMBEDDING = ("SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('knowledge_chunk') "
                    "AND attname = 'embedding' AND NOT attisdropped")


def pg_vectors_enable(using: str = "default") -> bool:
    """On PostgreSQL, creates the `vector` extension and the `embedding` column when the migration could not (the
    extension was installed later); True if the column exists afterwards. For `knowledge_reembed`."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return vectors_available(using)
    vectors_forget()
    if vectors_available(using):
        return True
    from django.db import DatabaseError

    try:
        with transaction.atomic(using=using), connection.cursor() as cursor:
            cursor.execute("CREATE EXTENSION IF NOT EXISTS vector")
            cursor.execute("ALTER TABLE knowledge_chunk ADD COLUMN IF NOT EXISTS embedding vector")
    except DatabaseError as exc:
        logger.warning("pgvector could not be enabled: %s", exc)
    vectors_forget()
    return vectors_available(using)


# --- writing chunks

def chunks_replace(*, document, drafts: Sequence, embedded=None) -> int:
    """Replaces the document's chunks by `drafts` (agents.knowledge.chunking.ChunkDraft) and stores their vectors
    (`embedded`: agents.knowledge.embeddings.Embedded, one vector per draft, or None: lexical only). Runs inside the
    caller's transaction, so a document is never half-indexed; returns the number of chunks. Vectors are dropped
    (with a log line) when this database cannot store them."""
    if embedded is not None and len(embedded.vectors) != len(drafts):
        raise ValueError(f"{len(embedded.vectors)} vectors for {len(drafts)} chunks.")
    using = KnowledgeChunk.objects.db
    connection = connections[using]
    vectors = embedded.vectors if embedded is not None and drafts else None
    if vectors is not None and not vectors_available(using):
        logger.info("Document %s: this database stores no vectors; its chunks are searched lexically.", document.pk)
        vectors = None
    # No savepoint of its own (two round trips): a failure here fails the caller's transaction anyway.
    with transaction.atomic(using=using, savepoint=False):
        KnowledgeChunk.objects.filter(document_id=document.pk).delete()  # the triggers drop their index entries
        if connection.vendor == "postgresql":
            return _pg_chunks_insert(connection, document, drafts, vectors)
        rows = KnowledgeChunk.objects.bulk_create([
            KnowledgeChunk(document_id=document.pk, project_id=document.project_id, position=draft.position,
                           content=draft.content, heading_path=list(draft.heading_path),
                           metadata=dict(draft.metadata), word_count=draft.word_count)
            for draft in drafts], batch_size=1000)
        if vectors is not None:
            vectors_store(chunk_ids=[row.pk for row in rows], vectors=vectors, project_id=document.project_id,
                          using=using)
    return len(rows)


def _pg_chunks_insert(connection, document, drafts: Sequence, vectors: Sequence | None) -> int:
    """The rows and their vectors in one INSERT per batch: written once, so that each row's heap tuple, GIN entries
    and HNSW node are made once (an UPDATE that adds the vector afterwards writes a second version of the row and
    indexes it again: that doubled the cost of an embedded document)."""
    from psycopg.types.json import Jsonb

    if vectors is not None:
        _dimensions_check(vectors)
    with connection.cursor() as cursor:
        if vectors is not None:
            _pg_index_ensure(cursor, len(vectors[0]), connection.settings_dict["NAME"])
        # Each row's lexical entry is made here (migration 0003's trigger keeps an entry an INSERT brings), with
        # the project's text search configuration and the document's name looked up once for the document.
        entry = ("(SELECT knowledge_regconfig(p.language) AS config, d.name AS title FROM knowledge_document d "
                 "JOIN agents_project p ON p.id = d.project_id WHERE d.id = %s) AS k")
        inserted = 0
        for start in range(0, len(drafts), INSERT_BATCH):
            batch = drafts[start:start + INSERT_BATCH]
            params = [document.pk, document.project_id, document.pk, [draft.position for draft in batch],
                      [draft.content for draft in batch], [Jsonb(list(draft.heading_path)) for draft in batch],
                      [Jsonb(dict(draft.metadata)) for draft in batch], [draft.word_count for draft in batch]]
            vector, vectors_in = "", ""
            if vectors is not None:
                vector, vectors_in = ", t.e::vector", ", %s::text[]"
                params.append([vector_text(item) for item in vectors[start:start + INSERT_BATCH]])
            cursor.execute("INSERT INTO knowledge_chunk (document_id, project_id, position, content, heading_path, "
                           f"metadata, word_count, search{', embedding' if vector else ''}) "
                           "SELECT %s, %s, t.p, t.c, t.h, t.m, t.w, knowledge_chunk_vector(k.config, k.title, t.h, "
                           f"t.c){vector} FROM {entry}, unnest(%s::integer[], %s::text[], %s::jsonb[], %s::jsonb[], "
                           f"%s::integer[]{vectors_in}) AS t(p, c, h, m, w{', e' if vector else ''})", params)
            inserted += cursor.rowcount
    return inserted


def vectors_store(*, chunk_ids: Sequence[int], vectors: Sequence[Sequence[float]], project_id: str,
                  using: str = "default") -> None:
    """Stores (or replaces) the vectors of existing chunks, all of one dimension, in batches."""
    if not chunk_ids:
        return
    dimensions = _dimensions_check(vectors)
    connection = connections[using]
    with transaction.atomic(using=using), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            _pg_index_ensure(cursor, dimensions, connection.settings_dict["NAME"])
            for start in range(0, len(chunk_ids), VECTOR_BATCH):
                ids = list(chunk_ids[start:start + VECTOR_BATCH])
                texts = [vector_text(vector) for vector in vectors[start:start + VECTOR_BATCH]]
                cursor.execute("UPDATE knowledge_chunk AS c SET embedding = v.e::vector "
                               "FROM unnest(%s::bigint[], %s::text[]) AS v(id, e) WHERE c.id = v.id", [ids, texts])
        else:
            table = sqlite_vec_table_ensure(cursor, dimensions)
            tables = [sqlite_vec_table(d) for d in sqlite_vec_tables(cursor)]  # a model change leaves old ones
            for start in range(0, len(chunk_ids), VECTOR_BATCH):
                ids = chunk_ids[start:start + VECTOR_BATCH]
                for old in tables:
                    cursor.execute(f"DELETE FROM {old} WHERE rowid IN ({', '.join(['%s'] * len(ids))})", list(ids))
                cursor.executemany(f"INSERT INTO {table} (rowid, embedding, project_id) VALUES (%s, %s, %s)",
                                   [(chunk_id, vector_blob(vector), project_id)
                                    for chunk_id, vector in zip(ids, vectors[start:start + VECTOR_BATCH],
                                                                strict=True)])


def _dimensions_check(vectors: Sequence[Sequence[float]]) -> int:
    dimensions = len(vectors[0])
    if not dimensions or any(len(vector) != dimensions for vector in vectors):
        raise ValueError("Vectors of one document must all have the same, non-zero dimension.")
    return dimensions


def vector_text(vector: Sequence[float]) -> str:
    """pgvector's text form, `[0.1,0.2,…]`."""
    return "[" + ",".join(map(repr, map(float, vector))) + "]"


def vector_blob(vector: Sequence[float]) -> bytes:
    """sqlite-vec's float32 form."""
    return struct.pack(f"{len(vector)}f", *vector)


def pg_index_name(dimensions: int) -> str:
    return f"knowledge_chunk_embedding_{int(dimensions)}"


def _pg_index_ensure(cursor, dimensions: int, name: str) -> None:
    """The partial HNSW index of one dimension. Two first documents of a new dimension may be indexed at once: an
    advisory lock makes the second wait for the first's index instead of failing on its name."""
    if (name, dimensions) in _pg_indexed or dimensions > HNSW_MAX_DIMENSIONS:
        return
    index = pg_index_name(dimensions)
    cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [index])
    if not cursor.fetchone()[0]:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [index])
        # CREATE INDEX refuses a table with pending trigger events: the foreign keys' deferred checks of the rows
        # just written. They are run now rather than at commit, then deferred again.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(f"CREATE INDEX IF NOT EXISTS {index} ON knowledge_chunk USING hnsw "
                       f"((embedding::vector({int(dimensions)})) vector_cosine_ops) "
                       f"WHERE vector_dims(embedding) = {int(dimensions)}")
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")
    # Known only once committed; an index made in a transaction that rolls back is made again by the next one.
    transaction.on_commit(lambda: _pg_indexed.add((name, dimensions)), using=cursor.db.alias)


def sqlite_vec_table(dimensions: int) -> str:
    return f"knowledge_vec_{int(dimensions)}"


def sqlite_vec_table_ensure(cursor, dimensions: int) -> str:
    """The vec0 table of one dimension and the trigger that deletes a chunk's vector with the chunk."""
    table = sqlite_vec_table(dimensions)
    cursor.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS {table} USING vec0("
                   f"embedding float[{int(dimensions)}] distance_metric=cosine, project_id text partition key)")
    cursor.execute(f"CREATE TRIGGER IF NOT EXISTS {table}_delete AFTER DELETE ON knowledge_chunk BEGIN "
                   f"DELETE FROM {table} WHERE rowid = OLD.id; END")
    return table


def sqlite_vec_tables(cursor) -> list[int]:
    """The dimensions that have a vec0 table on this SQLite database."""
    cursor.execute("SELECT name FROM sqlite_master WHERE name LIKE 'knowledge_vec_%'")
    names = [name for (name,) in cursor.fetchall()]
    return sorted(int(match[1]) for name in names if (match := re.fullmatch(r"knowledge_vec_(\d+)", name)))
