"""Reads on projects for the runtime: the frozen AgentSpec of a version, cached in process. A cache hit costs no
query: a turn never reads or parses a document it has already compiled (keys name immutable definitions). The spec
is built from the document with its tool secrets decrypted (`agents/secrets.py`): the only place they are opened."""
import hashlib
import json
import logging
import threading
from collections import OrderedDict

from asgiref.sync import sync_to_async
from django.db.models import QuerySet

from agents.models import DOCUMENT_PARTS, Project, ProjectVersion
from agents.runtime import AgentSpec, DocumentError
from agents.secrets import document_open, document_redact
from config import db
from config.api.errors import ApiError, ErrorCode, NotFound

logger = logging.getLogger(__name__)

DEVELOPMENT = "development"
PRODUCTION = "production"
_CACHE_SIZE = 512


class _SpecCache:
    """A small LRU of built specs. Keys name an immutable definition (a version id, or the development document
    at one `updated_at`), so an entry never goes stale; it only ages out."""

    def __init__(self, size: int):
        self._size = size
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get_or_build(self, key, build):
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        spec = build()
        with self._lock:
            self._items[key] = spec
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return spec

    def get(self, key):
        with self._lock:
            return self._items.get(key)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


spec_cache = _SpecCache(_CACHE_SIZE)


def _spec_key(project: Project, version: str) -> tuple[tuple, str] | None:
    """The cache key and resolved version id, from the project row alone (no document); None when `production` is
    asked of a project that has none."""
    if version == DEVELOPMENT:
        return (project.id, DEVELOPMENT, project.updated_at.isoformat()), DEVELOPMENT
    version_id = project.production_version_id if version == PRODUCTION else version
    if version_id is None:
        return None
    return (project.id, version_id), version_id


def spec_build(document: dict, *, project_id: str, version_id: str) -> AgentSpec:
    """The spec of a stored document (sealed secrets), opened here. A stored document that cannot run — a secret no
    configured key decrypts, or a document an older release accepted — is a 409 naming each fault by location (and
    a warning in the log, without a traceback), never a 500."""
    try:
        return AgentSpec.from_document(document_open(document), project_id=project_id, version_id=version_id)
    except DocumentError as exc:
        logger.warning("Project %s version %s cannot run: %s", project_id, version_id, exc.message)
        raise ApiError(f"This version of the project cannot run: {exc.message}", code=ErrorCode.CONFLICT,
                       details=exc.details) from None


def agent_spec_get(*, project: Project, version: str = DEVELOPMENT) -> tuple[AgentSpec, str]:
    """The spec to run for `version` (development, production or a version id) and the resolved version id."""
    found = _spec_key(project, version)
    if found is None:
        raise NotFound("This project has no production version yet; publish one first.")
    key, version_id = found
    if version == DEVELOPMENT:
        return spec_cache.get_or_build(key, lambda: spec_build(
            project.as_document(sealed=True), project_id=project.id, version_id=DEVELOPMENT)), DEVELOPMENT

    def build() -> AgentSpec:
        row = ProjectVersion.objects.filter(project=project, id=version_id).only("snapshot").first()
        if row is None:
            raise NotFound(f"Version {version} not found.")
        return spec_build(row.snapshot, project_id=project.id, version_id=version_id)

    return spec_cache.get_or_build(key, build), version_id


def _development_build(project_id: str) -> AgentSpec:
    project = Project.objects.get(pk=project_id)
    return agent_spec_get(project=project, version=DEVELOPMENT)[0]


async def agent_spec_aget(*, project: Project, version: str = DEVELOPMENT) -> tuple[AgentSpec, str]:
    """`agent_spec_get` for async callers: a cache hit is pure; a miss builds in a thread (it reads the document or
    the version row)."""
    found = _spec_key(project, version)
    if found is not None:
        key, version_id = found
        spec = spec_cache.get(key)
        if spec is not None:
            return spec, version_id
    if version == DEVELOPMENT and "document" in project.get_deferred_fields():
        return await sync_to_async(db.released(_development_build))(project.id), DEVELOPMENT
    return await sync_to_async(db.released(agent_spec_get))(project=project, version=version)


# --- the Project Management API's reads (a developer token's user: the projects of their workspaces) ---------------

def projects_of_user(*, user) -> QuerySet:
    """The projects of every workspace `user` is a member of, without their documents (a listing shows none). One
    membership per (workspace, user), so the join yields each project once."""
    return Project.objects.filter(workspace__memberships__user=user).defer("document")


def project_of_user(*, user, project_id: str, document: bool = True) -> Project:
    """One project of `user`'s workspaces; 404 for any other (never saying that it exists). `document=False` defers
    the document, for a write that reads it again under its row lock."""
    projects = Project.objects.filter(workspace__memberships__user=user, id=project_id)
    project = (projects if document else projects.defer("document")).first()
    if project is None:
        raise NotFound(f"Project {project_id} not found.")
    return project


def project_document(project: Project) -> dict:
    """`Project.as_document()` with the redaction applied to the `tools` part only, where header values live: the
    whole document is not deep-copied (a large project holds megabytes of workflows)."""
    document = project.as_document(sealed=True)
    document["tools"] = document_redact({"tools": document["tools"]})["tools"]
    return document


class _DocumentTexts:
    """The JSON text of each part of recently written or read development documents, as the API shows them
    (redacted), keyed by (project, `updated_at`) like the spec cache: an entry never goes stale. A write stores the
    texts it made for its UPDATE, so that its answer, and the GETs after it, serialize only the project's own
    fields, not megabytes of workflows. Bounded by size; least recently used first out."""

    def __init__(self, max_bytes: int):
        self._max_bytes = max_bytes
        self._bytes = 0
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key) -> dict | None:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, key, texts: dict) -> None:
        size = sum(len(text) for text in texts.values())
        if size > self._max_bytes // 4:
            return
        with self._lock:
            if key in self._items:
                return
            self._items[key] = texts
            self._bytes += size
            while self._bytes > self._max_bytes:
                _key, dropped = self._items.popitem(last=False)
                self._bytes -= sum(len(text) for text in dropped.values())

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0


document_texts = _DocumentTexts(64 * 1024 * 1024)


def document_texts_remember(project: Project, texts: dict[str, str]) -> None:
    """What a write made: each part's JSON text, redacted (`project_document_json` serves them)."""
    document_texts.put((project.pk, project.updated_at.isoformat()), texts)


def project_document_json(project: Project) -> bytes:
    """`project_document(project)` as JSON. The parts' texts come from the process's cache when this version of
    the document was written or read here before (then the document is not even loaded, if it was deferred)."""
    key = (project.pk, project.updated_at.isoformat())
    texts = document_texts.get(key)
    if texts is None:
        if "document" in project.get_deferred_fields():
            project.refresh_from_db(fields=["document"])
        document = project_document(project)
        texts = {part: json.dumps(document[part]) for part in DOCUMENT_PARTS}
        document_texts.put(key, texts)
    head = {"id": project.id, "name": project.name, "description": project.description,
            "framework": project.framework, "language": project.language, "slug": project.slug}
    tail = {"createdAt": _timestamp(project.created_at), "updatedAt": _timestamp(project.updated_at)}
    members = [f"{json.dumps(name)}: {json.dumps(value)}" for name, value in head.items()]
    members += [f"{json.dumps(part)}: {texts[part]}" for part in DOCUMENT_PARTS]
    members += [f"{json.dumps(name)}: {json.dumps(value)}" for name, value in tail.items()]
    return ("{" + ", ".join(members) + "}").encode()


def _timestamp(value) -> str:
    return value.isoformat().replace("+00:00", "Z")


def project_etag(project: Project) -> str:
    """The project's entity tag: it changes with every write (each sets `updated_at`), without reading the
    document."""
    raw = f"{project.pk}:{project.updated_at.isoformat()}".encode()
    return f'"{hashlib.blake2b(raw, digest_size=12).hexdigest()}"'


def etag_matches(if_match: str, etag: str) -> bool:
    """RFC 9110 If-Match: `*`, or a list of entity tags one of which is `etag` (strong comparison: a weak tag never
    matches)."""
    candidates = [candidate.strip() for candidate in if_match.split(",")]
    return "*" in candidates or etag in candidates
