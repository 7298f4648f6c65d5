"""Where a conversation's bytes live: Django's storage (the file system by default, any backend by setting).

The shared core of files and data frames: a frame is written as Parquet to storage and recorded in one row
(`frame_create`); readers get a local path to its Parquet (`frame_local_path`), which polars and pyarrow scan lazily;
bytes are deleted only once the rows that named them are gone (`conversations_bytes_delete_on_commit`,
`stored_delete_on_commit`)."""
import contextlib
import logging
import os
import re
import tempfile
from collections.abc import Iterable, Iterator

from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction

from files.models import DataFrame, StoredFile

log = logging.getLogger("conduet.files")

MAX_NAME = 120  # characters of a frame's name (SQL identifiers stay readable)
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_]+")


CONVERSATIONS_DIR = "conversations"


def conversation_dir(conversation_id: str) -> str:
    return f"{CONVERSATIONS_DIR}/{conversation_id}"


def spool_dir() -> str:
    """FILE_UPLOAD_TEMP_DIR, made if missing: where uploads are parsed to and tables spooled through, so that what
    a killed process leaves there is swept (files/sweep.py)."""
    from django.conf import settings

    os.makedirs(settings.FILE_UPLOAD_TEMP_DIR, mode=0o700, exist_ok=True)
    return settings.FILE_UPLOAD_TEMP_DIR


def frame_base_name(raw: str) -> str:
    """A frame's name from a file's or sheet's name: a plain SQL identifier (`Q3 sales.csv` → `q3_sales`)."""
    stem = raw.rsplit(".", 1)[0] if "." in raw else raw
    name = _NAME_UNSAFE.sub("_", stem).strip("_").lower()[:MAX_NAME] or "frame"
    return f"t_{name}" if name[0].isdigit() else name


def _unique_name(conversation_id: str, base: str) -> str:
    taken = set(DataFrame.objects.filter(conversation_id=conversation_id, name__startswith=base)
                .values_list("name", flat=True))
    if base not in taken:
        return base
    n = 2
    while f"{base}_{n}" in taken:
        n += 1
    return f"{base}_{n}"


def frame_create(*, conversation_id: str, name: str, table=None, error: str = "", file: StoredFile | None = None,
                 sheet_name: str = "", sql_query: str = "", parent_ids: Iterable[str] = ()) -> DataFrame:
    """A new frame of the conversation named `name` (made a unique identifier: `sales`, `sales_2`, …): `table` (a
    polars DataFrame) written as Parquet to storage, or, with `error`, a failed frame saying why its file could not
    be read. The bytes are written first and deleted again if the row cannot be."""
    import polars as pl

    frame = DataFrame(conversation_id=conversation_id, file=file, sheet_name=sheet_name, sql_query=sql_query,
                      parent_data_frame_ids=list(parent_ids))
    if error:
        frame.status, frame.error = DataFrame.Status.FAILED, error
    else:
        if not isinstance(table, pl.DataFrame):
            table = pl.from_arrow(table)
        frame.num_rows, frame.num_columns = table.height, table.width
        frame.columns = [{"name": column, "dtype": str(dtype)} for column, dtype in table.schema.items()]
        with tempfile.NamedTemporaryFile(suffix=".parquet", dir=spool_dir()) as spool:
            table.write_parquet(spool.name, statistics=True)
            frame.size = os.path.getsize(spool.name)
            with open(spool.name, "rb") as parquet:
                frame.stored_name = default_storage.save(
                    f"{conversation_dir(conversation_id)}/frames/{frame.id}.parquet", parquet)
    base = frame_base_name(name)
    try:
        for _attempt in range(5):  # a concurrent frame may take the same name between our read and our write
            frame.name = _unique_name(conversation_id, base)
            try:
                with transaction.atomic():
                    frame.save(force_insert=True)
                return frame
            except IntegrityError:
                if not DataFrame.objects.filter(conversation_id=conversation_id, name=frame.name).exists():
                    raise
        raise IntegrityError(f"Could not find a free name for the frame {base}.")
    except BaseException:
        if frame.stored_name:
            _delete_now(frame.stored_name)
        raise


@contextlib.contextmanager
def frame_local_path(frame: DataFrame) -> Iterator[str]:
    """A local path to the frame's Parquet for the time of the block: the file itself on the file-system storage
    (scanned lazily, nothing copied), else a temporary copy."""
    try:
        local = default_storage.path(frame.stored_name)
    except NotImplementedError:  # a storage without local paths (object storage)
        local = None
    if local is not None:
        yield local
        return
    with (tempfile.NamedTemporaryFile(suffix=".parquet", dir=spool_dir()) as copy,
          default_storage.open(frame.stored_name, "rb") as src):
        for chunk in iter(lambda: src.read(1024 * 1024), b""):
            copy.write(chunk)
        copy.flush()
        yield copy.name


def _delete_now(name: str) -> None:
    try:
        default_storage.delete(name)
    except OSError:
        log.warning("Could not delete the stored bytes %s", name, exc_info=True)


def stored_delete_on_commit(names: Iterable[str]) -> None:
    """Deletes these bytes once the current transaction commits (at once outside one); a rollback keeps them. A
    conversation's bytes go by its directory instead (`conversations_bytes_delete_on_commit`)."""
    names = [name for name in names if name]
    if names:
        transaction.on_commit(lambda: [_delete_now(name) for name in names])


def storage_tree_delete(prefix: str) -> None:
    """Deletes every name under `prefix` through the storage API (the file system or object storage alike), then
    the directories themselves where the storage has them."""
    try:
        dirs, names = default_storage.listdir(prefix)
    except FileNotFoundError:
        return
    for sub in dirs:
        storage_tree_delete(f"{prefix}/{sub}")
    for name in names:
        _delete_now(f"{prefix}/{name}")
    _delete_now(prefix)  # the file system's (now empty) directory; nothing on object storage


def conversations_bytes_delete_on_commit(*, conversation_ids: Iterable[str]) -> None:
    """Deletes these conversations' whole directories (`conversations/<id>/`) once the current transaction
    commits — with the bytes their rows name, any a killed upload left without a row — and the local Arrow copies
    of their frames. Called before the delete, while the frames' rows can still be read."""
    ids = list(conversation_ids)
    if not ids:
        return
    frame_ids = list(DataFrame.objects.filter(conversation_id__in=ids).values_list("id", flat=True))

    def delete() -> None:
        from files.frame_cache import frame_cache_forget

        for conversation_id in ids:
            storage_tree_delete(conversation_dir(conversation_id))
        if frame_ids:
            frame_cache_forget(frame_ids)

    transaction.on_commit(delete)
