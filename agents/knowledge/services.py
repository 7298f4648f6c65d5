"""Knowledge-base writes: documents created (text, upload, URL), processed off the request path, recovered, deleted.

A request only validates and stores: the row (status `processing`) and, for an upload or a text body, its bytes in
Django's default storage; processing is enqueued on commit (`tasks.py`, run by `manage.py worker`). The worker's
`document_process` takes the document with a lease (a conditional UPDATE of `lease_until`, whose value is also the
token that proves the lease is still ours), extracts, chunks and embeds it renewing the lease between stages, then
writes every chunk and marks it ready in ONE transaction: a worker that dies leaves the document `processing` with
its old chunks (none, the first time), never half-indexed, and `documents_recover` enqueues it again once the lease
has run out."""
import hashlib
import logging
import math
import posixpath
import re
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.text import get_valid_filename

from agents.knowledge.models import KnowledgeDocument
from config.api.errors import ApiError, ErrorCode

log = logging.getLogger("conduet.knowledge")

MAX_NAME = 300
MAX_URL = 2048
MAX_METADATA_KEYS = 32
# The keys search filters accept (search.filters_clean): a metadata key is always filterable.
METADATA_KEY_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\- ]{0,63}")
MAX_METADATA_TEXT = 500
HEAD_BYTES = 4096  # what kind_for_upload sniffs
# A document created but never taken (its task lost with a queue that was cleared, say) is enqueued again after this.
UNLEASED_GRACE = timedelta(minutes=1)
# An embedding endpoint that failed is tried again after this many seconds times the attempt number.
RETRY_DELAY_SECONDS = 10
Status = KnowledgeDocument.Status


# --- validation --------------------------------------------------------------------------------------------------

def _bad(field: str, message: str, code: ErrorCode = ErrorCode.BAD_REQUEST) -> ApiError:
    return ApiError(f"Invalid request: {field}: {message}", code=code, details={field: [message]})


def document_name_clean(name) -> str:
    if not isinstance(name, str) or not name.strip():
        raise _bad("name", "A name of 1 to 300 characters is required.")
    name = name.strip()
    if len(name) > MAX_NAME:
        raise _bad("name", f"At most {MAX_NAME} characters.")
    return name


def document_metadata_clean(metadata) -> dict:
    """A flat JSON object of scalars (text up to 500 characters, numbers, booleans, null), at most 32 keys: it is
    copied onto every chunk and matched by search filters, so it stays small and comparable."""
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise _bad("metadata", "Must be a JSON object.")
    if len(metadata) > MAX_METADATA_KEYS:
        raise _bad("metadata", f"At most {MAX_METADATA_KEYS} keys.")
    for key, value in metadata.items():
        if not METADATA_KEY_RE.fullmatch(key):
            raise _bad("metadata", f"{key!r} is not a valid key: 1 to 64 letters, digits, '_', '-', '.' or spaces.")
        if isinstance(value, str):
            if len(value) > MAX_METADATA_TEXT:
                raise _bad("metadata", f"{key}: text values are at most {MAX_METADATA_TEXT} characters.")
        elif isinstance(value, float) and not math.isfinite(value):
            raise _bad("metadata", f"{key}: numbers must be finite.")
        elif value is not None and not isinstance(value, bool | int | float):
            raise _bad("metadata", f"{key}: values must be text, numbers, booleans or null (no objects or lists).")
    return dict(metadata)


def _too_large() -> ApiError:
    limit = settings.CONDUET_KB_MAX_DOCUMENT_BYTES
    return ApiError(f"The document is larger than the limit of {limit:,} bytes.", code=ErrorCode.PAYLOAD_TOO_LARGE)


def _storage_path(document: KnowledgeDocument, file_name: str) -> str:
    try:
        safe = get_valid_filename(posixpath.basename(file_name.replace("\\", "/")))[-120:]
    except Exception:  # noqa: BLE001 (SuspiciousFileOperation: nothing usable is left of the name)
        safe = "document"
    return f"knowledge/{document.project_id}/{document.id}/{safe or 'document'}"


class _HashingFile(File):
    """The upload as storage reads it, chunk by chunk (a temporary file past FILE_UPLOAD_MAX_MEMORY_SIZE), hashed
    and measured on the way: the bytes are never read whole at the request. No `temporary_file_path`, so that the
    file system storage copies it through `chunks()` rather than moving the temporary file past the hash."""

    def __init__(self, upload):
        super().__init__(upload.file, name=upload.name)
        self.digest = hashlib.sha256()
        self.read_bytes = 0

    def chunks(self, chunk_size=None):
        for chunk in super().chunks(chunk_size):
            self.read_bytes += len(chunk)
            if self.read_bytes > settings.CONDUET_KB_MAX_DOCUMENT_BYTES:
                raise _too_large()
            self.digest.update(chunk)
            yield chunk


def _enqueue_on_commit(document_id: str) -> None:
    from agents.knowledge.tasks import document_process_task

    transaction.on_commit(lambda: document_process_task.enqueue(document_id=document_id))


def _create_with_bytes(document: KnowledgeDocument, content: File, file_name: str) -> KnowledgeDocument:
    """Stores the bytes, then the row; bytes whose row could not be written (or that were cut short) are deleted."""
    stored = default_storage.get_available_name(_storage_path(document, file_name))
    try:
        stored = default_storage.save(stored, content)
        if isinstance(content, _HashingFile):
            document.size_bytes, document.sha256 = content.read_bytes, content.digest.hexdigest()
        with transaction.atomic():
            document.stored_path = stored
            document.save(force_insert=True)
            _enqueue_on_commit(document.id)
    except BaseException:
        default_storage.delete(stored)
        raise
    return document


# --- creation ----------------------------------------------------------------------------------------------------

def document_create_text(*, project, name: str, content: str, metadata: dict | None = None) -> KnowledgeDocument:
    name = document_name_clean(name)
    metadata = document_metadata_clean(metadata)
    if not isinstance(content, str) or not content.strip():
        raise _bad("content", "The document's text is required.")
    data = content.encode("utf-8")
    if len(data) > settings.CONDUET_KB_MAX_DOCUMENT_BYTES:
        raise _too_large()
    document = KnowledgeDocument(project=project, name=name, type=KnowledgeDocument.Type.TEXT, metadata=metadata,
                                 size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    return _create_with_bytes(document, ContentFile(data), "content.md")


def document_create_upload(*, project, upload, metadata: dict | None = None) -> KnowledgeDocument:
    """`upload` is a Django UploadedFile: its kind is sniffed from its name, content type and first bytes."""
    from agents.knowledge.extract import kind_for_upload

    metadata = document_metadata_clean(metadata)
    if upload.size is not None and upload.size > settings.CONDUET_KB_MAX_DOCUMENT_BYTES:
        raise _too_large()
    name = document_name_clean(posixpath.basename((upload.name or "").replace("\\", "/"))[-MAX_NAME:] or "upload")
    upload.seek(0)
    head = upload.read(HEAD_BYTES)
    upload.seek(0)
    kind = kind_for_upload(name=name, content_type=upload.content_type, head=head)
    if kind is None:
        raise ApiError(f"{name}: unsupported file type. Upload a PDF, DOCX, HTML, Markdown, text or CSV file.",
                       code=ErrorCode.UNSUPPORTED_MEDIA_TYPE)
    document = KnowledgeDocument(project=project, name=name, type=kind, metadata=metadata)
    return _create_with_bytes(document, _HashingFile(upload), name)


def document_create_url(*, project, name: str | None, url: str, metadata: dict | None = None) -> KnowledgeDocument:
    """Checks the URL now (scheme, addresses) so that an obvious refusal is a 400; the worker fetches it, through
    the outbound guard on every redirect hop."""
    from agents.knowledge.fetch import url_refusal

    if not isinstance(url, str) or not url.strip():
        raise _bad("url", "An http(s) URL is required.")
    url = url.strip()
    if len(url) > MAX_URL:
        raise _bad("url", f"At most {MAX_URL} characters.")
    if urlsplit(url).scheme.lower() not in ("http", "https"):
        raise _bad("url", "Only http and https URLs can be fetched.")
    name = document_name_clean(url[:MAX_NAME] if name is None else name)
    metadata = document_metadata_clean(metadata)
    refusal = url_refusal(url)
    if refusal:
        raise _bad("url", f"This URL cannot be fetched: {refusal}")
    with transaction.atomic():
        document = KnowledgeDocument.objects.create(project=project, name=name, type=KnowledgeDocument.Type.URL,
                                                    source_url=url, metadata=metadata)
        _enqueue_on_commit(document.id)
    return document


def document_reprocess(*, document: KnowledgeDocument) -> None:
    """Processes a document again from its stored bytes (or its URL): the admin's "process again"."""
    with transaction.atomic():
        KnowledgeDocument.objects.filter(pk=document.pk).update(
            status=Status.PROCESSING, error="", attempts=0, lease_until=None, updated_at=timezone.now())
        _enqueue_on_commit(document.pk)


def document_delete(*, document: KnowledgeDocument) -> None:
    """The row goes with its chunks (cascade) and their vectors (the index's triggers); the bytes once committed."""
    stored = document.stored_path
    with transaction.atomic():
        document.delete()
        if stored:
            transaction.on_commit(lambda: _stored_delete(stored))


def _stored_delete(stored: str) -> None:
    try:
        default_storage.delete(stored)
    except OSError:
        log.warning("Could not delete the stored bytes %s", stored, exc_info=True)


# --- processing (the worker) ------------------------------------------------------------------------------------

class _LeaseLost(Exception):
    """Another worker took the document (ours ran out) or it was deleted: stop without writing."""


def _lease_seconds() -> timedelta:
    return timedelta(seconds=settings.CONDUET_KB_LEASE_SECONDS)


class _Lease:
    """A worker's hold on one document. `until` is both the expiry and the token: each write is conditional on the
    row still carrying it, so a worker whose lease ran out and was taken over writes nothing."""

    def __init__(self, document_id: str, until):
        self.document_id, self.until = document_id, until

    @classmethod
    def take(cls, document_id: str) -> "_Lease | None":
        """The lease if we took the document, else None (ready, failed, deleted, or leased by a live worker)."""
        now = timezone.now()
        until = now + _lease_seconds()
        taken = (KnowledgeDocument.objects
                 .filter(Q(lease_until__isnull=True) | Q(lease_until__lte=now), id=document_id,
                         status=Status.PROCESSING)
                 .update(lease_until=until, attempts=F("attempts") + 1, updated_at=now))
        return cls(document_id, until) if taken else None

    def _ours(self):
        return KnowledgeDocument.objects.filter(id=self.document_id, status=Status.PROCESSING, lease_until=self.until)

    def renew(self) -> None:
        """Pushes the expiry back a full lease, unless that was done moments ago (a tenth of a lease: most stages of
        a small document take milliseconds, and a write each is a tenth of its processing); the next stage still
        has at least 90% of a lease. A lease lost meanwhile is found by the next renewal or by `lock()`."""
        now = timezone.now()
        if self.until - now > _lease_seconds() * 0.9:
            return
        renewed = now + _lease_seconds()
        if not self._ours().update(lease_until=renewed):
            raise _LeaseLost
        self.until = renewed

    def lock(self) -> KnowledgeDocument:
        """Inside the final transaction: the row locked, if it is still ours."""
        document = self._ours().select_for_update().first()
        if document is None:
            raise _LeaseLost
        return document

    def finish(self, **fields) -> bool:
        """Writes the outcome if the lease is still ours."""
        return bool(self._ours().update(updated_at=timezone.now(), **fields))


def _document_bytes(document: KnowledgeDocument) -> tuple[str, bytes, str]:
    """(extractor kind, bytes, source) of a document: its stored bytes, or its URL fetched now."""
    from agents.knowledge.extract import ExtractionError, kind_for_upload
    from agents.knowledge.fetch import fetch_document

    if document.type == KnowledgeDocument.Type.URL:
        fetched = fetch_document(document.source_url)
        path_name = posixpath.basename(urlsplit(fetched.url).path) or "index.html"
        kind = kind_for_upload(name=path_name, content_type=fetched.content_type, head=fetched.data[:HEAD_BYTES])
        if kind is None:
            raise ExtractionError(f"The page's content type ({fetched.content_type or 'none'}) is not supported.")
        return kind, fetched.data, document.source_url
    try:
        with default_storage.open(document.stored_path, "rb") as stored:
            data = stored.read()
    except (OSError, ValueError):
        raise ExtractionError("The document's stored file is missing; upload it again.") from None
    return document.type, data, document.name


def document_process(*, document_id: str) -> None:
    """The task body: idempotent (a document no longer `processing`, or leased by a live worker, is skipped)."""
    from agents.knowledge import index
    from agents.knowledge.embeddings import EmbeddingError
    from agents.knowledge.extract import ExtractionError

    lease = _Lease.take(document_id)
    if lease is None:
        return
    document = KnowledgeDocument.objects.filter(id=document_id).first()
    if document is None:
        return
    if document.attempts > settings.CONDUET_KB_MAX_ATTEMPTS:
        lease.finish(status=Status.FAILED, lease_until=None,
                     error=f"Processing did not finish after {settings.CONDUET_KB_MAX_ATTEMPTS} attempts.")
        return
    try:
        drafts, embedded = _prepare(document, lease)
        with transaction.atomic():
            count = index.chunks_replace(document=lease.lock(), drafts=drafts, embedded=embedded)
            lease.finish(status=Status.READY, chunk_count=count, error="", lease_until=None,
                         embedding_model=embedded.model if embedded else "",
                         embedding_dimensions=embedded.dimensions if embedded else None)
    except _LeaseLost:
        log.info("Document %s: the lease was lost; another worker has it", document_id)
    except ExtractionError as exc:
        lease.finish(status=Status.FAILED, error=str(exc)[:2000], lease_until=None)
    except EmbeddingError as exc:
        _embedding_failed(document, lease, exc)
    except Exception as exc:
        log.exception("Document %s: processing failed", document_id)
        lease.finish(status=Status.FAILED, error=f"Processing failed: {type(exc).__name__}", lease_until=None)


def _prepare(document: KnowledgeDocument, lease: _Lease):
    """Extract → chunk → embed, the lease renewed after each stage. Nothing is written but the lease."""
    from agents.knowledge import index
    from agents.knowledge.chunking import chunk_document
    from agents.knowledge.embeddings import embed_texts, embeddings_configured
    from agents.knowledge.extract import ExtractionError, extract

    kind, data, source = _document_bytes(document)
    lease.renew()
    extracted = extract(kind=kind, data=data, name=document.name)
    lease.renew()
    drafts = chunk_document(extracted.text, size_words=settings.CONDUET_KB_CHUNK_WORDS,
                            overlap_words=settings.CONDUET_KB_CHUNK_OVERLAP_WORDS,
                            metadata={**document.metadata, "source": source})
    if not drafts:
        raise ExtractionError("No text could be found in the document.")
    lease.renew()
    embedded = None
    if embeddings_configured() and index.vectors_available():
        embedded = embed_texts([draft.content for draft in drafts])
        lease.renew()
    return drafts, embedded


def _embedding_failed(document: KnowledgeDocument, lease: _Lease, exc: Exception) -> None:
    """An embedding endpoint that failed (after its own retries) is tried again later, up to the attempts limit;
    the lease is held until then so that recovery does not take it earlier."""
    from agents.knowledge.tasks import document_process_task

    attempts, limit = document.attempts, settings.CONDUET_KB_MAX_ATTEMPTS
    if attempts >= limit:
        lease.finish(status=Status.FAILED, lease_until=None,
                     error=f"Embedding failed after {attempts} attempts: {exc}"[:2000])
        return
    retry_at = timezone.now() + timedelta(seconds=RETRY_DELAY_SECONDS * attempts)
    if lease.finish(lease_until=retry_at,
                    error=f"Embedding failed (attempt {attempts} of {limit}), trying again: {exc}"[:2000]):
        document_process_task.using(run_after=retry_at).enqueue(document_id=document.id)


def documents_recover() -> int:
    """Enqueues again the documents a dead worker left `processing` (lease run out), and those never taken after a
    minute. Each is marked (lease cleared, `updated_at` now) in the same conditional UPDATE that finds it, so that
    two recovering workers do not both enqueue it; a duplicate task is harmless anyway (the lease)."""
    now = timezone.now()
    stale = Q(status=Status.PROCESSING) & (Q(lease_until__lte=now)
                                           | Q(lease_until__isnull=True, updated_at__lte=now - UNLEASED_GRACE))
    recovered = 0
    for document_id in KnowledgeDocument.objects.filter(stale).values_list("id", flat=True):
        with transaction.atomic():
            if KnowledgeDocument.objects.filter(stale, id=document_id).update(lease_until=None, updated_at=now):
                _enqueue_on_commit(document_id)
                recovered += 1
    if recovered:
        log.info("Recovered %d knowledge document(s) left processing", recovered)
    return recovered
