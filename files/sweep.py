"""Removing what a killed process leaves behind: local temporary files, and stored bytes no row names.

A process killed mid-upload (SIGKILL, the OOM killer, a host going down) never reaches the code that cleans up after
it: Django's temporary upload files (deleted on close), the Parquet spools and copies of files/store.py, the
spreadsheet reader's directory, and bytes already written to storage whose row's transaction never committed (an
upload writes its bytes first, then its rows). None of these is reachable from a row, so without a sweep they would
stay for ever. Everything local is spooled under one directory, FILE_UPLOAD_TEMP_DIR (`spool_dir()`), so that it
can be swept; storage is swept conversation by conversation, under `conversations/<id>/`.

The one rule that keeps the sweep from racing live work is age: nothing modified in the last
CONDUET_FILES_SWEEP_AGE_SECONDS is touched (an upload in flight writes its bytes moments before its row commits),
except the directories of conversations that no longer exist, which nothing can still be writing to usefully. Runs
in `manage.py worker` every CONDUET_FILES_SWEEP_INTERVAL_SECONDS and as `manage.py files_sweep`; every step is
idempotent, so concurrent sweeps (two workers) are harmless."""
import contextlib
import logging
import os
import shutil
import time
from datetime import timedelta

from django.conf import settings
from django.core.files.storage import default_storage
from django.utils import timezone

from conversations.models import Conversation
from files.models import DataFrame, StoredFile
from files.store import CONVERSATIONS_DIR, conversation_dir, spool_dir, storage_tree_delete

log = logging.getLogger("conduet.files")

SWEPT_DIRS = ("files", "frames")  # under a live conversation's directory; anything else there is left alone
BATCH = 500  # conversation ids a query asks about


def temp_sweep(*, older_than: float) -> list[str]:
    """Removes the entries of the spool directory (and the frame cache's unfinished `.building-` copies) last
    modified more than `older_than` seconds ago; returns their paths."""
    from files.frame_cache import cache_dir

    cutoff = time.time() - older_than
    removed = []
    candidates = []
    with contextlib.suppress(FileNotFoundError):
        candidates += list(os.scandir(spool_dir()))
    with contextlib.suppress(FileNotFoundError):
        candidates += [entry for entry in os.scandir(cache_dir()) if entry.name.startswith(".building-")]
    for entry in candidates:
        try:
            if entry.stat(follow_symlinks=False).st_mtime >= cutoff:
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
        except FileNotFoundError:  # removed meanwhile (its request ended, another sweep)
            continue
        except OSError:
            log.warning("Could not remove the temporary %s", entry.path, exc_info=True)
            continue
        removed.append(entry.path)
    return removed


def _listdir(path: str) -> tuple[list[str], list[str]]:
    try:
        return default_storage.listdir(path)
    except FileNotFoundError:  # the file system storage, for a directory never made
        return [], []


def _old(name: str, cutoff) -> bool:
    try:
        return default_storage.get_modified_time(name) < cutoff
    except FileNotFoundError:
        return False  # deleted meanwhile
    except NotImplementedError:  # a storage that cannot tell: never guess an upload in flight is old
        return False


def _orphans_delete(directory: str, *, named: set[str], cutoff) -> list[str]:
    """Deletes the names in the storage directory that are not in `named` and were last modified before `cutoff`;
    returns them."""
    _dirs, names = _listdir(directory)
    removed = []
    for name in (f"{directory}/{name}" for name in names):
        if name not in named and _old(name, cutoff):
            try:
                default_storage.delete(name)
            except OSError:
                log.warning("Could not delete the orphan %s", name, exc_info=True)
                continue
            removed.append(name)
    return removed


def storage_sweep(*, older_than: float) -> list[str]:
    """Deletes the stored bytes no row names: under each live conversation's `files/` and `frames/`, the names no
    StoredFile or DataFrame row holds and last modified more than `older_than` seconds ago; and the whole directory
    of each conversation that no longer exists. Returns the names deleted (a directory's with a trailing `/`)."""
    from files.frame_cache import frame_cache_forget

    cutoff = timezone.now() - timedelta(seconds=older_than)
    ids, _files = _listdir(CONVERSATIONS_DIR)
    removed = []
    for start in range(0, len(ids), BATCH):
        batch = ids[start: start + BATCH]
        alive = set(Conversation.objects.filter(id__in=batch).values_list("id", flat=True))
        named = set(StoredFile.objects.filter(conversation_id__in=alive).values_list("stored_name", flat=True))
        named |= set(DataFrame.objects.filter(conversation_id__in=alive).values_list("stored_name", flat=True))
        for conversation_id in batch:
            prefix = conversation_dir(conversation_id)
            if conversation_id not in alive:
                storage_tree_delete(prefix)
                removed.append(f"{prefix}/")
                continue
            for sub in SWEPT_DIRS:
                removed += _orphans_delete(f"{prefix}/{sub}", named=named, cutoff=cutoff)
    frame_cache_forget([name.rsplit("/", 1)[-1].removesuffix(".parquet") for name in removed if "/frames/" in name])
    return removed


KNOWLEDGE_DIR = "knowledge"  # agents/knowledge/services.py: knowledge/<project>/<document>/<name>


def knowledge_sweep(*, older_than: float) -> list[str]:
    """Deletes a knowledge document's stored bytes that no row names, once older than `older_than` seconds: an upload
    writes its bytes before its row commits (a killed process leaves them), and a document whose row is gone by any
    other way than its services leaves them too. Age alone decides, as a document's directory is made before its
    row exists."""
    from agents.knowledge.models import KnowledgeDocument

    cutoff = timezone.now() - timedelta(seconds=older_than)
    projects, _files = _listdir(KNOWLEDGE_DIR)
    removed = []
    for project_id in projects:
        documents, _files = _listdir(f"{KNOWLEDGE_DIR}/{project_id}")
        for start in range(0, len(documents), BATCH):
            batch = documents[start: start + BATCH]
            named = set(KnowledgeDocument.objects.filter(id__in=batch).values_list("stored_path", flat=True))
            for document_id in batch:
                removed += _orphans_delete(f"{KNOWLEDGE_DIR}/{project_id}/{document_id}", named=named, cutoff=cutoff)
    return removed


def files_sweep(*, older_than: float | None = None) -> dict[str, list[str]]:
    """Every sweep, with CONDUET_FILES_SWEEP_AGE_SECONDS unless told: {"storage": names (conversations' and the
    knowledge base's), "temporary": paths}."""
    if older_than is None:
        older_than = settings.CONDUET_FILES_SWEEP_AGE_SECONDS
    return {"storage": storage_sweep(older_than=older_than) + knowledge_sweep(older_than=older_than),
            "temporary": temp_sweep(older_than=older_than)}
