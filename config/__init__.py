"""Conduet's configuration package.

This Python's own `sqlite3` can neither load extensions (sqlite-vec) nor is it new; `pysqlite3` (SQLite 3.51, FTS5,
extension loading) takes its name before Django's SQLite backend is imported, so that every part of the process,
Django included, uses the one module (`manage.py`, `config/asgi.py` and the tests all import this package first)."""
import sys

try:
    import pysqlite3
except ImportError:  # pragma: no cover - the dependency is pinned; without it the knowledge base has no vectors
    pass
else:
    sys.modules["sqlite3"] = pysqlite3
    sys.modules["sqlite3.dbapi2"] = pysqlite3.dbapi2
