"""A memory-mapped Arrow copy of a large frame's Parquet, for ordered pages.

Parquet is compressed by column chunk: gathering the hundred rows of a page ordered by a column means decoding every
chunk of every column the rows fall in — all of them, for rows scattered by the order — which costs about what
reading the whole frame does (~100 ms for a million rows of twelve columns). An uncompressed Arrow IPC file mapped
into memory is read in place: the sort keys are a zero-copy view, and gathering the page touches only the pages of
the rows it takes (a few milliseconds). The copy is made on the first ordered page of the frame (streamed from the
Parquet, bounded memory), in a local directory shared by the processes of the host; frames never change (a new
frame has a new id), so a copy never goes stale. It is a cache: least recently used copies go past
CONDUET_FRAME_CACHE_MB, and copies of frames no longer in the database go at the next sweep (`frame_cache_forget`
drops them at once)."""
import contextlib
import hashlib
import logging
import os
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import polars as pl
from django.conf import settings

from files.models import DataFrame
from files.store import frame_local_path

log = logging.getLogger("conduet.files")

MIN_ROWS = 100_000  # smaller frames are read from their Parquet directly: fast enough, no copy
SWEEP_SECONDS = 60.0  # how often a process sweeps the directory (after a copy is made, at least that often)
SUFFIX = ".arrow"
_last_sweep = 0.0


def cache_dir() -> Path:
    """CONDUET_FRAME_CACHE_DIR, else a directory of the temporary directory per database: the sweep drops the
    copies of frames its database does not hold, so two installations (or test runs) on one host must not share
    one."""
    if settings.CONDUET_FRAME_CACHE_DIR:
        return Path(settings.CONDUET_FRAME_CACHE_DIR)
    return database_cache_dir(settings.DATABASES["default"])


def database_cache_dir(database: dict) -> Path:
    where = "|".join(str(database.get(key) or "") for key in ("ENGINE", "HOST", "PORT", "NAME"))
    return Path(tempfile.gettempdir()) / "conduet-frames" / hashlib.sha256(where.encode()).hexdigest()[:16]


def _path(frame: DataFrame) -> Path:
    return cache_dir() / f"{frame.id}-{frame.size}{SUFFIX}"


def frame_mapped(frame: DataFrame) -> pl.DataFrame | None:
    """The frame as a polars DataFrame over its memory-mapped Arrow copy (made now if missing), or None when the
    cache is off or the copy cannot be made (the caller reads the Parquet instead)."""
    import pyarrow as pa

    if settings.CONDUET_FRAME_CACHE_MB <= 0 or not frame.stored_name:
        return None
    path = _path(frame)
    try:
        if not path.exists():
            _build(frame, path)
            _sweep(force=True)
        else:
            _touch(path)
            _sweep()
        # Not closed here: the table's buffers point into the mapping, which goes when the last of them does.
        table = pa.ipc.open_file(pa.memory_map(str(path))).read_all()
        return pl.from_arrow(table)
    except (OSError, pa.ArrowException, pl.exceptions.PolarsError):
        log.warning("Could not use the Arrow copy of frame %s; reading its Parquet", frame.id, exc_info=True)
        return None


def _build(frame: DataFrame, path: Path) -> None:
    """Streams the Parquet into an uncompressed IPC file under a temporary name, then renames it into place (a
    concurrent build of the same frame writes its own temporary file; the last rename wins, both are whole)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".building-", suffix=SUFFIX)
    os.close(handle)
    try:
        with frame_local_path(frame) as parquet:
            pl.scan_parquet(parquet).sink_ipc(temporary, compression="uncompressed")
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _touch(path: Path) -> None:
    """Marks the copy used (its mtime orders the eviction), at most once a minute."""
    with contextlib.suppress(OSError):
        if time.time() - path.stat().st_mtime > SWEEP_SECONDS:
            os.utime(path)


def _entries() -> list[tuple[float, int, Path]]:
    entries = []
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(cache_dir()):
            if entry.name.endswith(SUFFIX) and not entry.name.startswith("."):
                with contextlib.suppress(OSError):
                    stat = entry.stat()
                    entries.append((stat.st_mtime, stat.st_size, Path(entry.path)))
    return entries


def _sweep(*, force: bool = False) -> None:
    """Removes the copies of frames gone from the database, then the least recently used ones past the budget."""
    global _last_sweep
    now = time.monotonic()
    if not force and now - _last_sweep < SWEEP_SECONDS:
        return
    _last_sweep = now
    entries = _entries()
    ids = {path.name.split("-", 1)[0] for _mtime, _size, path in entries}
    alive = set(DataFrame.objects.filter(id__in=ids).values_list("id", flat=True)) if ids else set()
    budget = settings.CONDUET_FRAME_CACHE_MB * 1024 * 1024
    kept = 0
    for _mtime, size, path in sorted(entries, reverse=True):  # newest first: the oldest go past the budget
        if path.name.split("-", 1)[0] in alive and kept + size <= budget:
            kept += size
            continue
        with contextlib.suppress(OSError):
            path.unlink()


def frame_cache_forget(frame_ids: Iterable[str]) -> None:
    """Drops the copies of these frames now (after their delete commits), rather than at the next sweep."""
    ids = set(frame_ids)
    for _mtime, _size, path in _entries():
        if path.name.split("-", 1)[0] in ids:
            with contextlib.suppress(OSError):
                path.unlink()
