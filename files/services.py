"""Uploading a conversation's files: names made safe, types found from the bytes, each file stored through Django's
storage, and every table file (CSV, TSV, spreadsheet, Parquet, JSON lines) read into data frames in the same
request.

An upload is all or nothing: the bytes of every file are checked (size, count, hash) while the request is parsed
(files/api/uploads.py), before anything is stored; then the files and their frames are written in one transaction,
and any bytes already written are deleted again if it fails."""
import hashlib
import mimetypes
import re
import tempfile
import unicodedata
from pathlib import PurePosixPath

from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction

from config.api.errors import ApiError, ErrorCode, NotFound
from conversations.models import Conversation
from files import frames
from files.models import StoredFile
from files.store import _delete_now, conversation_dir, frame_create, spool_dir

MAX_NAME = 200  # characters of a stored file's name
MAX_SUFFIX = 16
HEAD_BYTES = 8192  # what the type sniffing looks at
_SPACES = re.compile(r"\s+")

# (signature at offset 0, MIME type); ZIP-based office files are told apart by their name below.
_SIGNATURES = (
    (b"%PDF-", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"PAR1", "application/vnd.apache.parquet"),
    (b"\x1f\x8b", "application/gzip"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "application/x-ole-storage"),  # .xls, .doc, .msg
    (b"PK\x03\x04", "application/zip"),
    (b"PK\x05\x06", "application/zip"),
    (b"\x7fELF", "application/x-executable"),
    (b"MZ", "application/x-msdownload"),
    (b"ID3", "audio/mpeg"),
    (b"OggS", "audio/ogg"),
    (b"fLaC", "audio/flac"),
    (b"\x1aE\xdf\xa3", "video/webm"),
    (b"%!PS", "application/postscript"),
    (b"7z\xbc\xaf\x27\x1c", "application/x-7z-compressed"),
)
_EXTRA_TYPES = {".csv": "text/csv", ".tsv": "text/tab-separated-values", ".tab": "text/tab-separated-values",
                ".parquet": "application/vnd.apache.parquet", ".jsonl": "application/jsonl",
                ".ndjson": "application/x-ndjson", ".md": "text/markdown", ".json": "application/json",
                ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                ".xlsm": "application/vnd.ms-excel.sheet.macroEnabled.12", ".xls": "application/vnd.ms-excel",
                ".ods": "application/vnd.oasis.opendocument.spreadsheet",
                ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
                ".webp": "image/webp"}
_ZIP_BASED = {".xlsx", ".xlsm", ".docx", ".pptx", ".ods", ".odt", ".odp", ".jar", ".zip", ".epub"}
_OLE_BASED = {".xls", ".doc", ".ppt", ".msg"}


def file_name_clean(raw: str) -> str:
    """A name safe to store and to show: the last path part only, no control or format characters (a right-to-left
    override could disguise `exe.txt`), spaces collapsed, no leading dots, at most MAX_NAME characters with the
    extension kept; `file` when nothing is left."""
    name = unicodedata.normalize("NFC", raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(" " if ch in "\t\n\r" else ch for ch in name
                   if unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co", "Cn") or ch in "\t\n\r")
    name = _SPACES.sub(" ", name).strip().lstrip(".").strip()
    if name in ("", "..", "."):
        return "file"
    if len(name) > MAX_NAME:
        suffix = PurePosixPath(name).suffix
        suffix = suffix if 1 < len(suffix) <= MAX_SUFFIX else ""
        name = name[: MAX_NAME - len(suffix)].rstrip() + suffix
    return name


def _looks_like_text(head: bytes) -> bool:
    if not head:
        return True
    if b"\x00" in head and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return False
    try:
        head[: max(0, len(head) - 3)].decode("utf-8")
        return True
    except UnicodeDecodeError:
        controls = sum(1 for byte in head if byte < 32 and byte not in (9, 10, 12, 13))
        return controls / len(head) < 0.05  # another 8-bit encoding (Latin-1, Windows-1252)


def mime_type_for(name: str, head: bytes) -> str:
    """The type from the bytes first (a PNG named invoice.pdf is image/png), then from the name; the client's
    Content-Type is never trusted. Text is only given the name's type when that type is textual."""
    suffix = PurePosixPath(name).suffix.lower()
    by_name = _EXTRA_TYPES.get(suffix) or mimetypes.guess_type(f"x{suffix}", strict=False)[0]
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "image/webp"
    for signature, mime in _SIGNATURES:
        if head.startswith(signature):
            if mime == "application/zip" and suffix in _ZIP_BASED and by_name:
                return by_name
            if mime == "application/x-ole-storage":
                return by_name if suffix in _OLE_BASED and by_name else "application/octet-stream"
            return mime
    if _looks_like_text(head):
        textual = by_name and (by_name.startswith("text/") or by_name in (
            "application/json", "application/jsonl", "application/x-ndjson", "application/xml"))
        return by_name if textual else "text/plain"
    return "application/octet-stream"


def _hashed(upload) -> tuple[str, int, bytes]:
    """sha256, size and first bytes: computed while the request was parsed (files/api/uploads.py), else now."""
    if getattr(upload, "sha256", None):
        return upload.sha256, upload.size, upload.head
    digest, size, head = hashlib.sha256(), 0, b""
    upload.seek(0)
    for chunk in upload.chunks():
        digest.update(chunk)
        size += len(chunk)
        head = head or chunk[:HEAD_BYTES]
    upload.seek(0)
    return digest.hexdigest(), size, head[:HEAD_BYTES]


def _tables(upload, *, name: str, kind: str) -> list:
    """The upload's tables, read from its temporary file (a copy for an upload held in memory)."""
    if hasattr(upload, "temporary_file_path"):
        return frames.tables_read(upload.temporary_file_path(), name=name, kind=kind)
    with tempfile.NamedTemporaryFile(suffix=PurePosixPath(name).suffix, dir=spool_dir()) as copy:
        upload.seek(0)
        for chunk in upload.chunks():
            copy.write(chunk)
        copy.flush()
        return frames.tables_read(copy.name, name=name, kind=kind)


def files_upload(*, conversation: Conversation, uploads: list) -> list[StoredFile]:
    """Stores the uploads (Django UploadedFiles, already within the size and count limits) as files of the
    conversation and makes a data frame of every table among them. All or nothing."""
    from django.conf import settings

    if not uploads:
        raise ApiError("No files: send them in the multipart field `files`.", details={"files": ["Required."]})
    if len(uploads) > settings.CONDUET_FILE_MAX_COUNT:
        raise ApiError(f"At most {settings.CONDUET_FILE_MAX_COUNT} files a request.", code=ErrorCode.PAYLOAD_TOO_LARGE)
    prepared = []
    for upload in uploads:
        sha256, size, head = _hashed(upload)
        if size > settings.CONDUET_FILE_MAX_BYTES:
            raise ApiError(f"{upload.name}: larger than the limit of {settings.CONDUET_FILE_MAX_BYTES:,} bytes.",
                           code=ErrorCode.PAYLOAD_TOO_LARGE, details={"files": ["Too large."]})
        name = file_name_clean(upload.name)
        mime = mime_type_for(name, head)
        row = StoredFile(conversation=conversation, name=name, mime_type=mime, size=size, sha256=sha256)
        kind = frames.table_kind(name, mime)
        # Read before the transaction: parsing a large table holds no row lock.
        tables = _tables(upload, name=name, kind=kind) if kind else []
        prepared.append((row, upload, tables))
    written: list[str] = []
    try:
        with transaction.atomic():
            for row, upload, tables in prepared:
                suffix = PurePosixPath(row.name).suffix.lower()
                suffix = suffix if 1 < len(suffix) <= MAX_SUFFIX and suffix[1:].isalnum() else ""
                upload.seek(0)
                row.stored_name = default_storage.save(
                    f"{conversation_dir(conversation.id)}/files/{row.id}{suffix}", File(upload.file, name=row.name))
                written.append(row.stored_name)
                row.save(force_insert=True)
                for table in tables:
                    frame = frame_create(conversation_id=conversation.id, name=table.name, table=table.table,
                                         error=table.error, file=row, sheet_name=table.sheet_name)
                    written.append(frame.stored_name)
    except BaseException:
        for name in written:
            if name:
                _delete_now(name)
        raise
    return [row for row, _upload, _tables in prepared]


def file_refs_check(*, conversation_id: str, file_refs) -> list[StoredFile]:
    """The files named by `file_refs` (in that order), each of this conversation, else a 404 naming the first
    unknown one (a ref of another conversation is unknown here)."""
    refs = [str(ref) for ref in file_refs]
    found = {f.id: f for f in StoredFile.objects.filter(conversation_id=conversation_id, id__in=refs)}
    for ref in refs:
        if ref not in found:
            raise NotFound(f"File {ref} not found in this conversation.", details={"files": [f"Unknown: {ref}"]})
    return [found[ref] for ref in refs]
