"""Tables in and out of data frames: reading an uploaded CSV, TSV, spreadsheet, Parquet or JSON-lines file into polars
tables, and reading a page of a stored frame back (`frame_slice`, `frame_sample`) without loading the whole frame.

A page ordered by a column is the expensive case: sorting every column of a million rows to keep a hundred costs
seconds. `frame_slice` reads only the sort keys (plus a row index), finds the page's row numbers — by a full sort of
the keys for a small frame, else by selection: a sorted sample of the first key brackets the values the page can
hold, one comparison pass counts the rows before the bracket and keeps the few inside it, and only those are sorted —
then reads the page's rows alone. Ties keep the file's order (the row index is the last key), nulls come last in
either direction, so a page is deterministic and the pages of one ordering tile the frame."""
import codecs
import csv
import io
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import PurePosixPath

import polars as pl

from files.models import DataFrame
from files.store import frame_local_path

CSV_SUFFIXES = {".csv": ",", ".tsv": "\t", ".tab": "\t"}
EXCEL_SUFFIXES = {".xlsx", ".xlsm", ".xls", ".ods"}
JSONL_SUFFIXES = {".jsonl", ".ndjson"}
TABLE_MIME_TYPES = {"text/csv": "csv", "text/tab-separated-values": "tsv", "application/vnd.apache.parquet": "parquet",
                    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "excel",
                    "application/vnd.ms-excel": "excel", "application/vnd.oasis.opendocument.spreadsheet": "excel",
                    "application/x-ndjson": "jsonl", "application/jsonl": "jsonl"}
INFER_ROWS = 1000  # rows polars guesses a CSV column's type from (dates make more costly: 10,000 cost 10× the read)
MAX_OVERRIDES = 64  # columns read as text because a later row broke their guessed type
_UNPARSED_COLUMN = re.compile(r"could not parse .*? at column '([^']*)'", re.DOTALL)
ENCODING_SAMPLE = 1024 * 1024
WESTERN = ("cp1252", "latin_1", "iso8859_15")
SELECTION_MIN_ROWS = 100_000  # below this, a page's rows are found by sorting the keys outright
SAMPLE_SIZE = 16_384  # values of the first key sampled to bracket a page
SAMPLE_MARGIN = 4.0  # standard deviations of a sampled rank's error kept on each side of the bracket
MAX_ERROR = 500  # characters of a reader's message kept in a failed frame's error
# Columns of a frame: an Excel sheet's width. A 2 MiB CSV line of commas is two million columns, which took polars
# 25 s and 3.8 GB (a 25 MiB one would exhaust the host), so a CSV's header is counted before it is read.
MAX_COLUMNS = 16_384
_QUOTED = re.compile(rb'"(?:[^"]|"")*"')


@dataclass(frozen=True)
class Table:
    """One table read from a file: `table` a polars DataFrame, or `error` why it could not be read."""
    name: str
    sheet_name: str = ""
    table: pl.DataFrame | None = None
    error: str = ""


def table_kind(name: str, mime_type: str) -> str | None:
    """csv, tsv, excel, parquet or jsonl for a file that is a table (by its name's suffix, else its type), or None."""
    suffix = PurePosixPath(name).suffix.lower()
    if suffix in CSV_SUFFIXES:
        return "tsv" if CSV_SUFFIXES[suffix] == "\t" else "csv"
    if suffix in EXCEL_SUFFIXES:
        return "excel"
    if suffix == ".parquet":
        return "parquet"
    if suffix in JSONL_SUFFIXES:
        return "jsonl"
    return TABLE_MIME_TYPES.get(mime_type)


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= MAX_ERROR else text[: MAX_ERROR - 1] + "…"


def tables_read(path: str, *, name: str, kind: str) -> list[Table]:
    """The tables of the file at `path` (one, or one per sheet of a spreadsheet). A file that cannot be read gives a
    Table with an `error` a person can act on: it is still stored, and its frame shows why it failed."""
    try:
        if kind in ("csv", "tsv"):
            return [Table(name, table=_read_csv(path, separator="\t" if kind == "tsv" else None))]
        if kind == "parquet":
            _check_width(len(pl.read_parquet_schema(path)))
            return [Table(name, table=pl.read_parquet(path))]
        if kind == "jsonl":
            table = pl.read_ndjson(path, infer_schema_length=INFER_ROWS)
            _check_width(table.width)
            return [Table(name, table=table)]
        if kind == "excel":
            return _read_excel(path, name)
    except BaseException as exc:  # an untrusted file: any reader failure (a Rust panic included) fails the frame
        if isinstance(exc, KeyboardInterrupt | SystemExit | GeneratorExit | MemoryError):
            raise
        label = {"csv": "CSV", "tsv": "TSV", "parquet": "Parquet", "jsonl": "JSON lines", "excel": "a spreadsheet"}
        return [Table(name, error=f"{name} could not be read as {label[kind]}: {_short(exc)}")]
    raise ValueError(f"Unknown table kind {kind!r}")


def _utf8_source(path: str) -> str | bytes:
    """The path itself when the file is UTF-8 (polars reads it there, in parallel); else its text re-encoded as UTF-8,
    its encoding found by charset-normalizer (Latin-1, Windows-1252, UTF-16… as spreadsheet programs export)."""
    from charset_normalizer import from_bytes

    with open(path, "rb") as source:
        head = source.read(ENCODING_SAMPLE)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    else:
        try:
            # A multi-byte character may be cut at the sample's end: drop up to three trailing bytes.
            head[: len(head) - 3 if len(head) == ENCODING_SAMPLE else len(head)].decode("utf-8")
            return path
        except UnicodeDecodeError:
            matches = from_bytes(head)
            best = matches.best()
            if best is None:
                raise ValueError("the file is not text in any encoding we recognise") from None
            # On a short sample many code pages fit as well; prefer Windows-1252, what Western spreadsheets export.
            western = [m for m in matches if m.encoding in WESTERN and m.chaos <= best.chaos + 0.1
                       and m.coherence >= best.coherence - 0.05]
            encoding = (western[0] if western else best).encoding
    with open(path, "rb") as source:
        return source.read().decode(encoding).encode("utf-8")


def _separator(source: str | bytes) -> str:
    """The delimiter of a CSV: the most frequent of , ; | and tab in its first line (Excel in many locales uses ;)."""
    if isinstance(source, str):
        with open(source, "rb") as handle:
            first = handle.readline(64 * 1024)
    else:
        first = source[: 64 * 1024].split(b"\n", 1)[0]
    counts = {sep: first.count(sep.encode()) for sep in (",", ";", "\t", "|")}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def _check_width(columns: int) -> None:
    if columns > MAX_COLUMNS:
        raise ValueError(f"it has {columns:,} columns, more than the {MAX_COLUMNS:,} a data frame may have")


def _header_width(source: str | bytes, separator: str) -> int:
    """The columns of a CSV's first line (separators inside quotes not counted), read without parsing the file."""
    if isinstance(source, str):
        with open(source, "rb") as handle:
            first = handle.readline()
    else:
        first = source.split(b"\n", 1)[0]
    sep = separator.encode()
    if first.count(sep) < MAX_COLUMNS:
        return first.count(sep) + 1
    return _QUOTED.sub(b"", first).count(sep) + 1


def _read_csv(path: str, *, separator: str | None) -> pl.DataFrame:
    source = _utf8_source(path)
    separator = separator or _separator(source)
    _check_width(_header_width(source, separator))
    overrides: dict[str, type[pl.DataType]] = {}
    while True:
        try:
            table = pl.read_csv(source, separator=separator, try_parse_dates=True, encoding="utf8",
                                infer_schema_length=INFER_ROWS, schema_overrides=overrides)
            break
        except pl.exceptions.ComputeError as exc:
            # A row past the ones the types were guessed from disagrees ("could not parse `n/a` as dtype `i64` at
            # column 'qty'"): that column is read as text. Guessing from every row instead costs ~100× the read.
            column = _UNPARSED_COLUMN.search(str(exc))
            if column is None or column.group(1) in overrides or len(overrides) >= MAX_OVERRIDES:
                raise
            overrides[column.group(1)] = pl.String
    if table.width == 0:
        raise ValueError("the file is empty")
    return table


def _read_excel(path: str, name: str) -> list[Table]:
    """One table per sheet, read by calamine in a child process of bounded memory and time (files/spreadsheet.py);
    an empty or unreadable sheet gives a failed table saying so."""
    from files.spreadsheet import sheets_read

    tables = []
    stem = PurePosixPath(name).stem
    sheets = sheets_read(path)
    for sheet, table, error in sheets:
        frame_name = stem if len(sheets) == 1 else f"{stem}_{sheet}".replace(".", "_")
        if table is not None:
            try:
                _check_width(table.width)
            except ValueError as exc:
                table, error = None, str(exc)
        if table is None:
            tables.append(Table(frame_name, sheet_name=sheet,
                                error=f"Sheet {sheet!r} of {name} could not be read: {_short(error)}"))
        else:
            tables.append(Table(frame_name, sheet_name=sheet, table=table))
    if not tables:
        raise ValueError("the workbook has no sheets")
    return tables


# --- reading a stored frame -----------------------------------------------------------------------------------------

def _row_column(columns: Iterable[str]) -> str:
    name = "__row"
    taken = set(columns)
    while name in taken:
        name += "_"
    return name


def frame_sample(frame: DataFrame, n: int) -> pl.DataFrame:
    """The frame's first `n` rows (only they are read)."""
    with frame_local_path(frame) as path:
        return pl.scan_parquet(path).head(n).collect()


def frame_slice(frame: DataFrame, *, offset: int = 0, limit: int = 100, columns: list[str] | None = None,
                order_by: list[tuple[str, bool]] = ()) -> pl.DataFrame:
    """Rows [offset, offset + limit) of the frame in `order_by` ((column, descending) pairs; the file's order when
    empty), with `columns` (all when None). Names must have been checked against `frame.columns`. An ordered page
    of a large frame reads its memory-mapped Arrow copy (files/frame_cache.py), else the Parquet."""
    from files import frame_cache

    names = columns or [column["name"] for column in frame.columns]
    row = _row_column(column["name"] for column in frame.columns)
    if order_by and offset < frame.num_rows and frame.num_rows >= frame_cache.MIN_ROWS:
        mapped = frame_cache.frame_mapped(frame)
        if mapped is not None:
            keys = mapped.select([name for name, _ in order_by]).with_row_index(row)
            rows = _page_rows(keys, order_by, offset=offset, limit=limit, row=row)
            return mapped.select(pl.col(names).gather(rows))
    with frame_local_path(frame) as path:
        scan = pl.scan_parquet(path)
        if not order_by:
            return scan.select(names).slice(offset, limit).collect()
        if offset >= frame.num_rows:
            return scan.select(names).head(0).collect()
        keys = scan.select([name for name, _ in order_by]).with_row_index(row).collect()
        rows = _page_rows(keys, order_by, offset=offset, limit=limit, row=row)
        picked = scan.select(names).with_row_index(row).filter(pl.col(row).is_in(rows.implode())).collect()
        position = pl.DataFrame({row: rows, "__position": pl.int_range(rows.len(), eager=True)},
                                schema_overrides={row: picked.schema[row]})
        return picked.join(position, on=row).sort("__position").select(names)


def _page_rows(table: pl.DataFrame, order_by, *, offset: int, limit: int, row: str) -> pl.Series:
    """The row numbers of the page, in page order, from `table`: the key columns and the row index."""
    keys = [name for name, _ in order_by]
    descending = [desc for _, desc in order_by]
    page = None
    if table.height >= SELECTION_MIN_ROWS:
        page = _select_page(table, keys, descending, offset=offset, limit=limit, row=row)
    if page is None:
        page = _sorted(table, keys, descending, row).slice(offset, limit)
    return page[row]


def _sorted(table: pl.DataFrame, keys: list[str], descending: list[bool], row: str) -> pl.DataFrame:
    return table.sort([*keys, row], descending=[*descending, False], nulls_last=True)


def _select_page(table: pl.DataFrame, keys, descending, *, offset: int, limit: int, row: str) -> pl.DataFrame | None:
    """The page by selection on the first key (see the module's docstring), or None when it does not apply: a key
    that cannot be compared, NaN values (they break comparisons), or a page reaching the nulls at the end."""
    key, desc = keys[0], descending[0]
    values = table[key]
    if not (values.dtype.is_numeric() or values.dtype.is_temporal() or values.dtype == pl.String):
        return None  # booleans (two values: ties everywhere), nested and binary values: sorting is as good
    if values.dtype.is_float() and values.is_nan().any():
        return None
    present = values.len() - values.null_count()
    if offset + limit > present:
        return None
    sample = values.drop_nulls().sample(min(SAMPLE_SIZE, present), seed=0).sort()
    size = sample.len()
    # The page's ranks among the present values, counted in ascending order.
    first, last = (present - offset - limit, present - offset) if desc else (offset, offset + limit)
    spread = SAMPLE_MARGIN * math.sqrt(size) * 0.5 + 2
    for attempt in range(3):
        margin = int(spread * 2 ** attempt)
        low_at, high_at = math.floor(first / present * size) - margin, math.ceil(last / present * size) + margin
        low = sample[low_at] if low_at > 0 else None
        high = sample[high_at] if high_at < size else None
        inside = pl.lit(True)
        if low is not None:
            inside = inside & (pl.col(key) >= low)
        if high is not None:
            inside = inside & (pl.col(key) <= high)
        candidates = table.filter(inside)
        if desc:
            before = int((values > high).sum()) if high is not None else 0
        else:
            before = int((values < low).sum()) if low is not None else 0
        if before <= offset and before + candidates.height >= offset + limit:
            return _sorted(candidates, keys, descending, row).slice(offset - before, limit)
    return None


# --- JSON-safe values -----------------------------------------------------------------------------------------------

def json_value(value):
    """A value JSON can carry: dates and times in ISO 8601, durations in seconds, NaN and infinities as null,
    decimals as strings (exact), bytes as hex, nested lists and structs recursively. Integers stay integers."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        return str(value) if value.is_finite() else None
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(item) for item in value]
    return str(value)


def _plain(dtype) -> bool:
    return dtype.is_integer() or dtype in (pl.String, pl.Boolean, pl.Null)


def json_rows(table: pl.DataFrame) -> list[list]:
    """The table's rows as JSON-safe lists; only the columns that need it are converted value by value."""
    rows = table.rows()
    convert = [i for i, dtype in enumerate(table.dtypes) if not _plain(dtype)]
    if not convert:
        return [list(r) for r in rows]
    out = []
    for r in rows:
        values = list(r)
        for i in convert:
            values[i] = json_value(values[i])
        out.append(values)
    return out


def json_records(table: pl.DataFrame) -> list[dict]:
    names = table.columns
    return [dict(zip(names, values, strict=True)) for values in json_rows(table)]


def csv_text(table: pl.DataFrame) -> str:
    """CSV with a header; values as in JSON (null empty, nested values as JSON text)."""
    import json

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(table.columns)
    for values in json_rows(table):
        writer.writerow(["" if v is None else json.dumps(v) if isinstance(v, list | dict) else v for v in values])
    return buffer.getvalue()


def parquet_bytes(table: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    table.write_parquet(buffer)
    return buffer.getvalue()
