"""SQL over a conversation's data frames (the `data_query` step and the agent's `query_data` tool): one read-only
`SELECT` in DuckDB, its result stored as a new frame with its SQL and the frames it read.

The sandbox, in layers:
1. The text is exactly one statement, and a SELECT (`duckdb.extract_statements`): COPY, ATTACH, INSTALL, LOAD,
   PRAGMA, SET, CREATE, INSERT… and a second statement are refused before anything runs.
2. Its syntax tree (`json_serialize_sql`) reads only tables that are the conversation's ready frames (or its own
   CTEs) and no table function but `range`, `generate_series` and `unnest`: `read_csv('/etc/passwd')`,
   `FROM '/etc/passwd'`, `duckdb_settings()` (which shows server paths) and the catalogue are refused by name. A few
   scalar functions that read the server's settings are refused too.
3. DuckDB itself runs in memory with `enable_external_access = false` (no file system, no network, no extension
   loading), the memory and thread limits of the settings, then `lock_configuration` so the query cannot undo them.
   Only the frames the query names are registered, each as a pyarrow dataset over its Parquet (scanned lazily).
4. A watchdog interrupts the query after `CONDUET_DATA_QUERY_TIMEOUT_SECONDS`; the result is read in batches and a
   result over `CONDUET_DATA_QUERY_MAX_ROWS` rows is REFUSED, not truncated: a silently cut table would give wrong
   sums, so the message asks for an aggregate or a LIMIT.

Every refusal or failure is a `DataQueryError` whose message is meant for the agent (and the user): DuckDB's own
message, with any server path replaced. The query is CPU-bound: async callers use `adata_query_run`, which runs it
in a worker thread (never the thread the ORM shares) and interrupts it when the turn is cancelled."""
import asyncio
import base64
import contextlib
import datetime
import decimal
import json
import math
import tempfile
import threading
import time
from collections.abc import Iterable

import duckdb
import pyarrow as pa
from asgiref.sync import sync_to_async
from django.conf import settings

from config import db
from files.models import DataFrame
from files.store import frame_create, frame_local_path

MAX_SQL_CHARS = 20_000
RESULT_SAMPLE_ROWS = 10  # rows of a result the trace and the agent see
SAMPLE_CELL_CHARS = 200  # of a text value in a sample row
BATCH_ROWS = 65_536
TABLE_FUNCTIONS = frozenset({"range", "generate_series", "unnest"})
DENIED_FUNCTIONS = frozenset({"current_setting", "getvariable", "which_secret", "current_database",
                              "current_schema", "current_schemas", "query", "query_table"})
DENIED_PREFIXES = ("duckdb_", "pragma_")


class DataQueryError(ValueError):
    """A query refused or failed; the message says why, in words the agent can act on (never a server path)."""

    code = "DATA_QUERY_ERROR"


# --- what the query may do


def single_select(sql: str) -> str:
    """The one SELECT statement of `sql`, or a `DataQueryError` saying what else it is."""
    if not isinstance(sql, str) or not sql.strip():
        raise DataQueryError("Give one SELECT query over the conversation's data frames.")
    if len(sql) > MAX_SQL_CHARS:
        raise DataQueryError(f"The SQL is longer than {MAX_SQL_CHARS} characters.")
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise DataQueryError(f"The SQL does not parse: {_first_line(exc)}") from None
    if not statements:
        raise DataQueryError("Give one SELECT query over the conversation's data frames.")
    if len(statements) > 1:
        raise DataQueryError(f"Only one statement may be run; this SQL has {len(statements)}. Send one SELECT.")
    [statement] = statements
    if statement.type != duckdb.StatementType.SELECT:
        keyword = (statement.query.split() or ["?"])[0].upper()
        raise DataQueryError(f"Only a read-only SELECT query may be run: {keyword} statements are refused.")
    return statement.query.strip().rstrip(";")


def tables_read(con: duckdb.DuckDBPyConnection, query: str, frame_names: Iterable[str]) -> list[str]:
    """The frames the query reads (lower-case names, in order of appearance), after checking its syntax tree: every
    table it names is a frame or one of its CTEs, and it calls no table function that reads files or the catalogue
    nor a function that reads the server's settings."""
    frames = sorted({name.lower() for name in frame_names})
    tree = json.loads(con.execute("SELECT json_serialize_sql(?)", [query]).fetchall()[0][0])
    if tree.get("error"):
        message = tree.get("error_message") or "unsupported query"
        raise DataQueryError(f"The SQL cannot be run: {message}")
    read: list[str] = []

    def no_frame(name: str) -> DataQueryError:
        listed = ", ".join(frames) or "none yet"
        return DataQueryError(f"There is no data frame named {name!r}: SQL reads only the conversation's data "
                              f"frames ({listed}), never files, URLs or the database catalogue.")

    def walk(node, ctes: frozenset[str]) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item, ctes)
            return
        if not isinstance(node, dict):
            return
        cte_map = node.get("cte_map")
        if isinstance(cte_map, dict) and cte_map.get("map"):
            ctes = ctes | {str(entry.get("key", "")).lower() for entry in cte_map["map"]}
        kind = node.get("type")
        if kind == "BASE_TABLE":
            name = str(node.get("table_name", ""))
            qualified = node.get("schema_name") or node.get("catalog_name")
            if qualified or (name.lower() not in ctes and name.lower() not in frames):
                raise no_frame(".".join(part for part in (node.get("catalog_name"), node.get("schema_name"), name)
                                        if part))
            if name.lower() in frames and name.lower() not in ctes and name.lower() not in read:
                read.append(name.lower())
        elif kind == "TABLE_FUNCTION":
            function = str((node.get("function") or {}).get("function_name", "")).lower()
            if function not in TABLE_FUNCTIONS:
                raise DataQueryError(f"{function} is not available: SQL reads only the conversation's data frames "
                                     f"({', '.join(frames) or 'none yet'}), never files, URLs or the catalogue.")
        elif kind == "SHOW_REF" and not node.get("query"):
            raise DataQueryError("SHOW is not available; the data frames and their columns are listed for you.")
        if node.get("class") == "FUNCTION" and kind != "TABLE_FUNCTION":
            function = str(node.get("function_name", "")).lower()
            if function in DENIED_FUNCTIONS or function.startswith(DENIED_PREFIXES):
                raise DataQueryError(f"The function {function} is not available here.")
        for value in node.values():
            if isinstance(value, dict | list):
                walk(value, ctes)

    walk(tree.get("statements"), frozenset())
    return read


# --- running it


def sandbox() -> duckdb.DuckDBPyConnection:
    """A DuckDB in memory with no file system or network access and the settings' limits; not yet locked (the
    frames are registered first)."""
    con = duckdb.connect(":memory:", config={
        "enable_external_access": False, "autoload_known_extensions": False, "autoinstall_known_extensions": False,
        "threads": settings.CONDUET_DATA_QUERY_THREADS, "memory_limit": f"{settings.CONDUET_DATA_QUERY_MEMORY_MB}MB"})
    con.execute("SET enable_progress_bar = false")
    return con


class _Watchdog:
    """Interrupts the connection when the time limit passes or `stop` is set (the turn was cancelled)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, seconds: float, stop: threading.Event):
        self.con, self.seconds, self.stop = con, seconds, stop
        self.done = threading.Event()
        self.fired: str | None = None
        self.thread = threading.Thread(target=self._watch, name="data-query-watchdog", daemon=True)

    def _watch(self) -> None:
        deadline = time.monotonic() + self.seconds
        while not self.done.wait(min(0.05, self.seconds)):
            if self.stop.is_set() or time.monotonic() >= deadline:
                self.fired = "stopped" if self.stop.is_set() else "timeout"
                self.con.interrupt()
                return

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.done.set()
        self.thread.join()


def data_query_table(frames: list[DataFrame], sql: str, *, stop: threading.Event | None = None
                     ) -> tuple[pa.Table, list[DataFrame]]:
    """The result of `sql` over `frames` (the conversation's ready frames), and the frames it read. No ORM here: it
    runs in any thread."""
    query = single_select(sql)
    by_name = {frame.name.lower(): frame for frame in frames}
    con = sandbox()
    paths: list[str] = []
    try:
        read = tables_read(con, query, by_name)
        with contextlib.ExitStack() as stack:
            import pyarrow.dataset as ds

            for name in read:
                path = stack.enter_context(frame_local_path(by_name[name]))
                paths.append(path)
                try:
                    con.register(name, ds.dataset(path, format="parquet"))
                except (duckdb.Error, pa.ArrowException, OSError) as exc:
                    raise DataQueryError(f"The frame {name} cannot be read: {_clean(_message(exc), paths)}") from None
            con.execute("SET lock_configuration = true").fetchall()
            table = _run_limited(con, query, stop or threading.Event(), paths)
        return table, [by_name[name] for name in read]
    finally:
        con.close()


def _run_limited(con: duckdb.DuckDBPyConnection, query: str, stop: threading.Event, paths: list[str]) -> pa.Table:
    max_rows, seconds = settings.CONDUET_DATA_QUERY_MAX_ROWS, settings.CONDUET_DATA_QUERY_TIMEOUT_SECONDS
    batches, rows = [], 0
    with _Watchdog(con, seconds, stop) as watchdog:
        try:
            reader = con.sql(query).to_arrow_reader(BATCH_ROWS)
            for batch in reader:
                rows += batch.num_rows
                if rows > max_rows:
                    raise DataQueryError(
                        f"The result has more than {max_rows} rows (CONDUET_DATA_QUERY_MAX_ROWS); it was refused, "
                        "not truncated. Aggregate it, filter it or add a LIMIT.")
                batches.append(batch)
            schema = reader.schema
        except (duckdb.Error, pa.ArrowException, OSError) as exc:
            if watchdog.fired == "timeout":
                raise DataQueryError(f"The query ran longer than {seconds:g} s (CONDUET_DATA_QUERY_TIMEOUT_SECONDS) "
                                     "and was stopped. Simplify it or filter the frames first.") from None
            if watchdog.fired == "stopped":
                raise DataQueryError("The query was stopped.") from None
            raise DataQueryError(_clean(_message(exc), paths)) from None
    names = schema.names
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise DataQueryError(f"The result has several columns named {', '.join(duplicates)}: give each column its "
                             "own name (AS).")
    return pa.Table.from_batches(batches, schema=schema)


def _message(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.split("\n\nLINE ", 1)[0].strip() if "\n\nLINE " in text else text


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _clean(message: str, paths: list[str]) -> str:
    """DuckDB's or pyarrow's message without the server's paths (a frame's Parquet, the storage, temp files)."""
    roots = [*paths, str(settings.MEDIA_ROOT), tempfile.gettempdir()]
    for root in sorted({r for r in roots if r and len(r) > 1}, key=len, reverse=True):
        message = message.replace(root, "…")
    return message[:1000] or "The query failed."


# --- the stored result


def frames_ready(conversation_id: str) -> list[DataFrame]:
    return list(DataFrame.objects.filter(conversation_id=conversation_id, status=DataFrame.Status.READY)
                .order_by("created_at", "id"))


def result_store(*, conversation_id: str, sql: str, name: str, table: pa.Table, parents: list[DataFrame]
                 ) -> DataFrame:
    """The result as a new frame (its SQL and the frames it read recorded), with its first rows in `sample_rows`."""
    import polars as pl

    try:
        frame_table = pl.from_arrow(table)
    except Exception as exc:  # a type polars cannot hold (an interval, a union): the agent can CAST it
        raise DataQueryError(f"The result cannot be stored as a frame ({_first_line(exc)}); CAST the column to a "
                             "plain type.") from None
    if not isinstance(frame_table, pl.DataFrame):
        frame_table = frame_table.to_frame()
    frame = frame_create(conversation_id=conversation_id, name=(name or "").strip() or "result", table=frame_table,
                         sql_query=sql.strip(), parent_ids=[parent.id for parent in parents])
    frame.sample_rows = rows_of(table.slice(0, RESULT_SAMPLE_ROWS))
    return frame


def data_query_run(*, conversation_id: str, sql: str, name: str, stop: threading.Event | None = None) -> DataFrame:
    """Runs `sql` over the conversation's ready frames into a new frame named `name` (made unique)."""
    table, parents = data_query_table(frames_ready(conversation_id), sql, stop=stop)
    return result_store(conversation_id=conversation_id, sql=sql, name=name, table=table, parents=parents)


async def adata_query_run(*, conversation_id: str, sql: str, name: str) -> DataFrame:
    """`data_query_run` from async code: the ORM on Django's sync thread, the query in a worker thread of its own,
    interrupted when the caller is cancelled (a user's stop, a turn timeout)."""
    frames = await sync_to_async(db.released(frames_ready))(conversation_id)
    stop = threading.Event()
    try:
        table, parents = await asyncio.to_thread(data_query_table, frames, sql, stop=stop)
    except asyncio.CancelledError:
        stop.set()
        raise
    return await sync_to_async(db.released(result_store))(conversation_id=conversation_id, sql=sql, name=name,
                                                          table=table, parents=parents)


# --- what the agent sees


def cell(value):
    """A value as JSON shows it (dates as ISO text, decimals as numbers, long text clipped)."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return value if len(value) <= SAMPLE_CELL_CHARS else value[:SAMPLE_CELL_CHARS] + "…"
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value[:60]).decode() + ("…" if len(value) > 60 else "")
    if isinstance(value, list | tuple):
        return [cell(item) for item in value]
    if isinstance(value, dict):
        return {str(key): cell(item) for key, item in value.items()}
    return str(value)


def rows_of(table: pa.Table) -> list[list]:
    """Rows as lists of JSON values, in the columns' order."""
    columns = [table.column(i).to_pylist() for i in range(table.num_columns)]
    return [[cell(column[i]) for column in columns] for i in range(table.num_rows)]


def frame_rows(frame: DataFrame, n: int) -> list[list]:
    """The frame's first `n` rows, read from the start of its Parquet (one row group, not the whole file)."""
    if n <= 0 or frame.status != DataFrame.Status.READY or not frame.num_rows:
        return []
    import pyarrow.parquet as pq

    with frame_local_path(frame) as path:
        batch = next(pq.ParquetFile(path).iter_batches(batch_size=n), None)
    return rows_of(pa.Table.from_batches([batch])) if batch is not None else []


def frames_describe(*, conversation_id: str, sample_rows: int = 3) -> list[dict]:
    """What the agent sees of the conversation's ready frames, oldest first: `{"name", "numRows", "columns":
    [{"name", "dtype"}], "sampleRows": [[…]]}`."""
    return [{"name": frame.name, "numRows": frame.num_rows, "columns": list(frame.columns),
             "sampleRows": frame_rows(frame, sample_rows)} for frame in frames_ready(conversation_id)]


def frame_payload(frame: DataFrame) -> dict:
    """The `data_frame` trace (API.md: `{"name", "numRows", "columns": [str]}`), with the v2 DataFrame's other
    facts in the traces' camelCase: its id, column types, SQL, parents and first rows."""
    return {"name": frame.name, "numRows": frame.num_rows,
            "columns": [column["name"] for column in frame.columns],
            "dataFrameId": frame.id, "numColumns": frame.num_columns,
            "dtypes": [column["dtype"] for column in frame.columns], "sqlQuery": frame.sql_query,
            "parentDataFrameIds": list(frame.parent_data_frame_ids),
            "sampleRows": list(getattr(frame, "sample_rows", None) or [])}
