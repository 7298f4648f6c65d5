"""Async SQL for the turn's hot path (DESIGN.md "Scale"): a connection is held only around a statement, never
across awaited I/O.

On PostgreSQL the statements run on psycopg's async pool (one per event loop, opened lazily, each connection
checked when taken so that a restarted server costs no request). Elsewhere (SQLite, or `CONDUET_DB_ASYNC_POOL`
off, as the in-process tests do so that they see their own transaction) they run on Django's connection in the
thread that asgiref keeps for sync work. The SQL text is the same for both: `%s` placeholders, and the helpers
below adapt JSON and datetimes to the database in use."""
import asyncio
import contextlib
import functools
import json
import select
import weakref
from collections.abc import Sequence
from datetime import UTC, datetime

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

Statement = tuple[str, Sequence]


@functools.cache
def is_postgres() -> bool:
    """The default database's vendor (read once: the connection handler is slow to reach on the hot path)."""
    return connections["default"].vendor == "postgresql"


def quote(name: str) -> str:
    return connections["default"].ops.quote_name(name)


def json_param(value):
    """A JSON value as a statement parameter (jsonb on PostgreSQL, text on SQLite)."""
    if is_postgres():
        from psycopg.types.json import Jsonb

        return Jsonb(value)
    return json.dumps(value, separators=(",", ":"))


def json_value(value):
    """A JSON column as read back (PostgreSQL decodes jsonb itself)."""
    return json.loads(value) if isinstance(value, str | bytes) else value


def when(value: datetime):
    return value if is_postgres() else connections["default"].ops.adapt_datetimefield_value(value)


def datetime_value(value) -> datetime | None:
    """A datetime column as read back: SQLite gives naive UTC (or text), PostgreSQL aware values."""
    if isinstance(value, str):
        value = parse_datetime(value)
    if value is not None and timezone.is_naive(value):
        value = value.replace(tzinfo=UTC)
    return value


def _use_pool() -> bool:
    return is_postgres() and settings.CONDUET_DB_ASYNC_POOL


# --- PostgreSQL: psycopg's async pool, one per event loop (a pool's connections belong to the loop that made them)

_pools: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, object]" = weakref.WeakKeyDictionary()
_pool_locks: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock]" = weakref.WeakKeyDictionary()


def _conninfo() -> dict:
    db = connections["default"].settings_dict
    options = {k: v for k, v in (db.get("OPTIONS") or {}).items() if k not in ("pool", "server_side_binding")}
    params = {"dbname": db["NAME"], "user": db.get("USER") or None, "password": db.get("PASSWORD") or None,
              "host": db.get("HOST") or None, "port": db.get("PORT") or None, **options}
    return {k: v for k, v in params.items() if v not in (None, "")}


def has_data(fd: int) -> bool:
    """Whether the socket has something to read (or was closed by its peer), without waiting. `poll`, not
    `select`: a process holding thousands of streams has descriptors past select's limit of 1,024, where `select`
    raises."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


async def _check(conn) -> None:
    """The pool's check of a connection it hands out, without a round trip on the hot path: an idle connection
    whose socket is readable has heard from the server — after a restart, its goodbye and EOF — so only then is
    it pinged (and discarded by the pool if the ping fails)."""
    if conn.closed or conn.broken:
        raise OSError("connection closed")
    if has_data(conn.fileno()):
        from psycopg_pool import AsyncConnectionPool

        await AsyncConnectionPool.check_connection(conn)


async def _pool():
    loop = asyncio.get_running_loop()
    pool = _pools.get(loop)
    if pool is not None:
        return pool
    lock = _pool_locks.setdefault(loop, asyncio.Lock())
    async with lock:
        if loop not in _pools:
            from psycopg.rows import dict_row
            from psycopg_pool import AsyncConnectionPool

            pool = AsyncConnectionPool(
                kwargs={**_conninfo(), "autocommit": True, "row_factory": dict_row},
                min_size=settings.CONDUET_DB_POOL_MIN, max_size=settings.CONDUET_DB_POOL_MAX,
                timeout=settings.CONDUET_DB_POOL_TIMEOUT, check=_check,
                name="conduet-async", open=False,
            )
            await pool.open()
            _pools[loop] = pool
    return _pools[loop]


async def _pool_run(statements: Sequence[Statement], atomic: bool) -> list[list[dict]]:
    pool = await _pool()
    async with pool.connection() as conn:
        if len(statements) == 1:
            return [await _pool_fetch(conn, *statements[0])]
        # Pipeline mode sends the statements (and BEGIN/COMMIT) together: one round trip, not four.
        async with conn.pipeline() as pipeline:
            async with conn.transaction() if atomic else contextlib.nullcontext():
                cursors = [await conn.execute(sql, params) for sql, params in statements]
            await pipeline.sync()
            return [await cursor.fetchall() if cursor.description else [] for cursor in cursors]


async def _pool_fetch(conn, sql: str, params) -> list[dict]:
    cursor = await conn.execute(sql, params)
    return await cursor.fetchall() if cursor.description else []


# --- Django's connection, in asgiref's sync thread

def _django_run(statements: Sequence[Statement], atomic: bool) -> list[list[dict]]:
    connection = connections["default"]
    results = []
    with transaction.atomic() if atomic and len(statements) > 1 else contextlib.nullcontext():
        with connection.cursor() as cursor:
            for sql, params in statements:
                cursor.execute(sql, params)
                if cursor.description:
                    names = [column[0] for column in cursor.description]
                    results.append([dict(zip(names, row, strict=True)) for row in cursor.fetchall()])
                else:
                    results.append([])
    return results


_django_run_async = sync_to_async(_django_run, thread_sensitive=True)


# --- the API

def released(func):
    """`func` for `sync_to_async`, giving its thread's Django connection back to the pool when it returns (on
    PostgreSQL, outside a transaction). A turn's request lives as long as its turn — an LLM stream, minutes — and
    Django closes a request thread's connection only when the response ends: without this, every open stream whose
    request once read through the ORM (a spec cache miss, a developer token) pinned a pooled connection, and a
    dozen slow turns starved the pool."""
    @functools.wraps(func)
    def run(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        finally:
            connection = connections["default"]
            if (connection.connection is not None and not connection.in_atomic_block
                    and getattr(connection, "pool", None) is not None):
                connection.close()

    return run


async def run(statements: Sequence[Statement], *, atomic: bool = False) -> list[list[dict]]:
    """Runs the statements on one connection (in one transaction if `atomic`); returns each one's rows.

    Every statement is shielded: a caller cancelled (its client left, its turn was stopped) must not cancel the
    work in flight. A pipeline cancelled half-read would leave wrong results on a pooled connection for its next
    user; and under many cancellations at once (the streaming benchmark: 1,000 open turns) psycopg_pool lost count
    of its connections — it believed it held all 40 while none existed, and every later statement waited for the
    pool timeout. Shielded, the statement runs to its end and returns its connection; the caller still gets its
    `CancelledError` at once."""
    if _use_pool():
        work = asyncio.ensure_future(_pool_run(statements, atomic))
        work.add_done_callback(_retrieved)  # its caller may be gone: its failure is the caller's, not a stray log
        return await asyncio.shield(work)
    return await _django_run_async(statements, atomic)  # a thread's statements run to their end anyway


def _retrieved(work: asyncio.Future) -> None:
    if not work.cancelled():
        work.exception()


async def fetch(sql: str, params: Sequence = ()) -> list[dict]:
    return (await run([(sql, params)]))[0]


async def fetch_one(sql: str, params: Sequence = ()) -> dict | None:
    rows = await fetch(sql, params)
    return rows[0] if rows else None


async def ping() -> None:
    await fetch("SELECT 1")
