"""Writes on workspaces, projects, versions and keys. Every project document written here has its tool secrets
(header values) sealed — encrypted, `agents/secrets.py` — and a redacted value sent back keeps the stored one."""
import copy
import hashlib
import json
import logging
import re
import secrets
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.utils import timezone
from django.utils.text import slugify

from agents.ids import (
    DEVELOPER_TOKEN_PREFIX,
    KEY_SECRET_LENGTH,
    LOOKUP_PREFIX_LENGTH,
    PROJECT_KEY_PREFIX,
    key_digest,
    random_base62,
)
from agents.models import (
    DeveloperToken,
    Membership,
    Project,
    ProjectApiKey,
    ProjectVersion,
    Workspace,
    default_document,
)
from agents.runtime import DocumentError, validate_document
from agents.secrets import document_open, document_redact, document_seal

logger = logging.getLogger(__name__)


def workspace_create(*, name: str, slug: str | None = None, owner: AbstractBaseUser | None = None) -> Workspace:
    with transaction.atomic():
        workspace = Workspace.objects.create(name=name, slug=slug or slugify(name))
        if owner is not None:
            Membership.objects.create(workspace=workspace, user=owner, role=Membership.Role.OWNER)
    return workspace


def project_create(*, workspace: Workspace, name: str, document: dict | None = None, framework: str | None = None,
                   description: str | None = None, language: str = "en", slug: str | None = None) -> Project:
    """Creates a project from a (validated) document: its parts default to a blank project's."""
    source = copy.deepcopy(document or {})  # the row must not share nested objects with the caller's dict
    parts = {part: source.get(part, default) for part, default in default_document().items()}
    framework = framework or source.get("framework") or Project.Framework.CONVERSATION_FLOW
    fields = {"name": name, "description": description if description is not None else source.get("description"),
              "language": source.get("language", language)}
    _validate(parts, fields, framework)
    parts = _sealed(parts, previous=None)
    return Project.objects.create(
        workspace=workspace,
        slug=slug or source.get("slug") or slugify(name) or "project",
        framework=framework,
        document=parts,
        **fields,
    )


PROJECT_FIELDS = ("name", "description", "language")
MAX_NAME = 200
LANGUAGE_RE = re.compile(r"[A-Za-z]{2,8}(?:-[A-Za-z0-9]{1,8}){0,3}")  # a BCP 47 tag, roughly; fullmatch
MAX_LANGUAGE = 16


def project_update(*, project: Project, document: dict, replace: bool = False, if_match: str | None = None
                   ) -> Project:
    """Writes a project document (the API's shape, `Project.as_document`): the parts it has replace the stored ones
    (`replace=True`: the parts it lacks take a blank project's), as do `name`, `description`, `language` and
    `framework` when present. The result is validated as a whole (`DocumentError`, nothing stored) and its secrets
    sealed: a header value sent back redacted keeps the stored value.

    The merge is made onto the row as it is under a row lock (`SELECT … FOR UPDATE`), so two writers that change
    different parts both keep their change. `if_match` (an `If-Match` header: ETags of `project_etag`, or `*`)
    makes the write conditional: a stale one is `412 PRECONDITION_FAILED` and nothing is written. `project` is
    refreshed with what was stored."""
    source = _json_copy(document)  # the row must not share nested objects with the caller's dict
    return _project_write(project=project, if_match=if_match, change=lambda _row: source, replace=replace)


def _project_write(*, project: Project, if_match: str | None, change, replace: bool = False) -> Project:
    """The one write path of a development document: lock the row, check the precondition, merge `change(row)` (a
    partial document computed from the locked row) onto it, validate the whole, seal, store."""
    from agents.selectors import document_texts_remember, etag_matches, project_etag
    from config.api.errors import ApiError, ErrorCode, NotFound

    with transaction.atomic():
        row = Project.objects.select_for_update().filter(pk=project.pk).first()
        if row is None:
            raise NotFound(f"Project {project.pk} not found.")
        if if_match is not None and not etag_matches(if_match, project_etag(row)):
            raise ApiError("The project changed since you read it (If-Match does not match its ETag): read it again "
                           "and re-apply your change.", code=ErrorCode.PRECONDITION_FAILED)
        source = change(row)
        stored = row.document
        parts = {part: source[part] if part in source else default if replace else stored.get(part, default)
                 for part, default in default_document().items()}
        fields = {field: source[field] if field in source else getattr(row, field) for field in PROJECT_FIELDS}
        framework = source.get("framework") or row.framework
        _validate(parts, fields, framework)
        parts = _sealed(parts, previous=stored)
        for field, value in fields.items():
            setattr(row, field, value)
        row.framework = framework
        row.document = parts
        texts = {part: json.dumps(value) for part, value in parts.items()}
        _store(row, texts)
        texts["tools"] = json.dumps(document_redact({"tools": parts["tools"]})["tools"])
    document_texts_remember(row, texts)
    for model_field in Project._meta.concrete_fields:
        setattr(project, model_field.attname, getattr(row, model_field.attname))
    return project


def _store(row: Project, texts: dict[str, str]) -> None:
    """Saves the row. On PostgreSQL the document goes as the JSON text already made of its parts (which the API's
    answer reuses) in a statement whose parameters are bound by the server: a document of megabytes is neither
    serialized again nor escaped into the SQL text (Django's cursors bind on the client)."""
    if connection.vendor != "postgresql":
        row.save()
        return
    import psycopg

    row.updated_at = timezone.now()
    document = "{" + ", ".join(f"{json.dumps(part)}: {text}" for part, text in texts.items()) + "}"
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(
            "UPDATE agents_project SET name = %s, description = %s, language = %s, framework = %s, "
            "document = %s::jsonb, updated_at = %s WHERE id = %s",
            [row.name, row.description, row.language, row.framework, document, row.updated_at, row.pk])


def _validate(parts: dict, fields: dict, framework: str) -> None:
    """The document's parts (the engine's validation) and the project's own fields, every fault named at once."""
    problems: dict[str, list[str]] = {}
    name = fields.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
        problems["name"] = [f"Expected a name of 1 to {MAX_NAME} characters."]
    if fields.get("description") is not None and not isinstance(fields["description"], str):
        problems["description"] = ["Expected text or null."]
    language = fields.get("language")
    if not isinstance(language, str) or len(language) > MAX_LANGUAGE or not LANGUAGE_RE.fullmatch(language):
        problems["language"] = ["Expected a language tag such as en or pt-BR."]
    try:
        validate_document({**parts, "framework": framework})
    except DocumentError as exc:
        problems.update(exc.details)
    if problems:
        raise DocumentError.listing(problems)


def _sealed(parts: dict, previous: dict | None) -> dict:
    """`document_seal` of the `tools` part alone: header values live only there, and sealing the whole document
    would deep-copy every workflow of a large project for nothing."""
    tools = parts.get("tools")
    if not isinstance(tools, list):
        return parts
    kept = {"tools": previous.get("tools")} if isinstance(previous, dict) else None
    return {**parts, "tools": document_seal({"tools": tools}, previous=kept)["tools"]}


def _json_copy(value):
    """A deep copy of JSON data (a JSON round trip is several times faster than `copy.deepcopy`)."""
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError):
        return copy.deepcopy(value)


def project_snapshot(project: Project) -> dict:
    """What a published version freezes: the document (secrets sealed) without the row's timestamps."""
    document = project.as_document(sealed=True)
    return {key: value for key, value in document.items() if key not in ("createdAt", "updatedAt")}


def snapshot_digest(snapshot: dict) -> str:
    canonical = json.dumps(snapshot, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def version_publish(*, project: Project, name: str = "", user: AbstractBaseUser | None = None) -> ProjectVersion:
    """Freezes `development` into an immutable version and makes it `production`. A header value stored before
    secrets were sealed is sealed in the snapshot (`DocumentError` if a sealed one no longer decrypts)."""
    stored = project_snapshot(project)
    snapshot = _sealed(stored, previous=stored)
    with transaction.atomic():
        version = ProjectVersion.objects.create(
            project=project, name=name, snapshot=snapshot, digest=snapshot_digest(snapshot), created_by=user
        )
        project.production_version = version
        # Not `updated_at`: the development document did not change, so its ETag (and a client's If-Match) holds.
        project.save(update_fields=["production_version"])
    return version


def _new_key(type_prefix: str) -> tuple[str, str, str]:
    secret = random_base62(KEY_SECRET_LENGTH)
    key = f"{type_prefix}{secret}"
    return key, secret[:LOOKUP_PREFIX_LENGTH], key_digest(key)


def project_api_key_create(*, project: Project, name: str = "", scope: str = ProjectApiKey.Scope.SERVER
                           ) -> tuple[ProjectApiKey, str]:
    """Returns the row and the key itself, which is shown once and never stored."""
    key, prefix, digest = _new_key(PROJECT_KEY_PREFIX)
    row = ProjectApiKey.objects.create(project=project, name=name, scope=scope, prefix=prefix, digest=digest)
    return row, key


def developer_token_create(*, user: AbstractBaseUser, name: str = "") -> tuple[DeveloperToken, str]:
    key, prefix, digest = _new_key(DEVELOPER_TOKEN_PREFIX)
    row = DeveloperToken.objects.create(user=user, name=name, prefix=prefix, digest=digest)
    return row, key


def key_revoke(*, key: ProjectApiKey | DeveloperToken) -> None:
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])


def user_create(*, username: str, email: str = "", password: str | None = None, superuser: bool = False
                ) -> tuple[AbstractBaseUser, str]:
    """A Django user; returns it with its password (generated when not given), which is shown once."""
    password = password or secrets.token_urlsafe(12)
    User = get_user_model()
    make = User.objects.create_superuser if superuser else User.objects.create_user
    return make(username=username, email=email, password=password), password


def membership_add(*, workspace: Workspace, user: AbstractBaseUser, role: str = Membership.Role.MEMBER
                   ) -> Membership:
    membership, _created = Membership.objects.update_or_create(workspace=workspace, user=user,
                                                                defaults={"role": role})
    return membership


@dataclass(frozen=True)
class DemoSetup:
    project: Project
    version: ProjectVersion
    key: str
    username: str
    password: str
    copilot: Project
    copilot_key: str


DEMO_WORKSPACE = ("Acme Inc.", "acme")
DEMO_USERNAME = "demo"


def demo_setup(*, base_url: str = "http://127.0.0.1:8000") -> DemoSetup:
    """What `rundemo` needs, idempotently: the Acme workspace, a `demo` superuser (a new password each time), the
    two demo projects kept equal to `agents.demo` — Acme Support (`DEMO_PROJECT`, conversation-flow) and Acme
    Copilot (agentic; its tool calls the demo order service at `base_url`) — each with a production version of
    its document and a fresh server key."""
    from agents.demo import DEMO_PROJECT, copilot_project

    with transaction.atomic():
        workspace = Workspace.objects.filter(slug=DEMO_WORKSPACE[1]).first()
        if workspace is None:
            workspace = workspace_create(name=DEMO_WORKSPACE[0], slug=DEMO_WORKSPACE[1])
        User = get_user_model()
        user = User.objects.filter(username=DEMO_USERNAME).first()
        password = secrets.token_urlsafe(12)
        if user is None:
            user, password = user_create(username=DEMO_USERNAME, password=password, superuser=True)
        else:
            user.set_password(password)
            user.save(update_fields=["password"])
        membership_add(workspace=workspace, user=user, role=Membership.Role.OWNER)
        project, version, key = _demo_project(workspace, user, DEMO_PROJECT)
        copilot, _copilot_version, copilot_key = _demo_project(workspace, user, copilot_project(base_url))
    return DemoSetup(project=project, version=version, key=key, username=user.get_username(), password=password,
                     copilot=copilot, copilot_key=copilot_key)


def _demo_project(workspace: Workspace, user, document: dict) -> tuple[Project, ProjectVersion, str]:
    project = Project.objects.filter(workspace=workspace, slug=document["slug"]).first()
    wanted = {part: copy.deepcopy(document.get(part, default)) for part, default in default_document().items()}
    if project is None:
        project = project_create(workspace=workspace, name=document["name"], document=document)
    elif _opened_or_none(project.document) != wanted:
        project_update(project=project, document=wanted)
    version = project.production_version
    if version is None or version.digest != snapshot_digest(project_snapshot(project)):
        version = version_publish(project=project, name=f"demo {timezone.now():%Y-%m-%d %H:%M}", user=user)
    _row, key = project_api_key_create(project=project, name=f"rundemo {timezone.now().isoformat()}")
    return project, version, key


def _opened_or_none(document: dict) -> dict | None:
    try:
        return document_open(document)
    except DocumentError:  # a secret the keys no longer open: the demo document is written again
        return None


def version_promote(*, project: Project, version: ProjectVersion) -> ProjectVersion:
    """Makes a published version of the project `production` again (a rollback); the snapshot is not touched, so
    production runs exactly what it ran when that version was published."""
    if version.project_id != project.pk:
        raise ValueError("The version belongs to another project.")
    project.production_version = version
    project.save(update_fields=["production_version"])  # development, and its ETag, unchanged
    return version


def project_create_for_user(*, user: AbstractBaseUser, name: str, document: dict | None = None,
                            workspace_id: str | None = None, framework: str | None = None,
                            description: str | None = None) -> Project:
    """A project made through the API by a developer token's user (templates, import, generate): in the workspace
    `workspace_id` names, which must be one of theirs (404 otherwise), else in their first one (the oldest
    membership) — a user in no workspace is a 400. Its slug is the document's own `slug`, else the name's, made
    free in that workspace (`-2`, `-3`, …). The document is validated as on every write (`DocumentError`, nothing
    stored)."""
    from config.api.errors import ApiError, NotFound

    memberships = Membership.objects.filter(user=user).select_related("workspace").order_by("created_at", "pk")
    if workspace_id is not None:
        membership = memberships.filter(workspace_id=workspace_id).first()
        if membership is None:
            raise NotFound(f"Workspace {workspace_id} not found.")
    else:
        membership = memberships.first()
        if membership is None:
            raise ApiError("Your user belongs to no workspace; ask an admin to add you to one.")
    workspace = membership.workspace
    wanted = (document or {}).get("slug")
    base = (slugify(wanted if isinstance(wanted, str) else "") or slugify(name) or "project")[:90]
    with transaction.atomic():
        taken = set(Project.objects.filter(workspace=workspace, slug__startswith=base).values_list("slug", flat=True))
        slug = base
        for n in range(2, len(taken) + 3):
            if slug not in taken:
                break
            slug = f"{base}-{n}"
        return project_create(workspace=workspace, name=name, document=document, framework=framework,
                              description=description, slug=slug)


# --- the Project Management API's writes of one part (each merged onto the locked row: `_project_write`) ----------

def _by_id(items, item_id: str) -> int | None:
    return next((i for i, item in enumerate(items) if isinstance(item, dict) and item.get("id") == item_id), None)


def _list_part(row: Project, part: str) -> list:
    items = row.document.get(part)
    return list(items) if isinstance(items, list) else []


def project_item_upsert(*, project: Project, part: str, item: dict, if_match: str | None = None
                        ) -> tuple[Project, bool]:
    """Puts one workflow or tool (`part`: `workflows` or `tools`) by its `id`: it replaces the one with that id, in
    place, or is added at the end. The whole document is validated as on every write. Returns the project and
    whether the item was added."""
    item = _json_copy(item)
    added = False

    def change(row: Project) -> dict:
        nonlocal added
        items = _list_part(row, part)
        position = _by_id(items, item["id"])
        added = position is None
        if added:
            items.append(item)
        else:
            items[position] = item
        return {part: items}

    return _project_write(project=project, if_match=if_match, change=change), added


def project_item_delete(*, project: Project, part: str, item_id: str, if_match: str | None = None) -> Project:
    """Removes one workflow or tool by id (404 when there is none); the rest must still validate (a jump to a
    deleted workflow is a 400 naming the jump)."""
    from config.api.errors import NotFound

    def change(row: Project) -> dict:
        items = _list_part(row, part)
        position = _by_id(items, item_id)
        if position is None:
            raise NotFound(f"{part[:-1].capitalize()} {item_id} not found.")
        del items[position]
        return {part: items}

    return _project_write(project=project, if_match=if_match, change=change)


def projects_delete(*, projects) -> None:
    """Deletes the projects (a queryset) with all their data — versions, keys, conversations and their messages,
    files and data frames, knowledge documents with their chunks and vectors (the ORM's cascade and the index's
    triggers) — and, once that is committed, the stored bytes of their knowledge documents and of their
    conversations' files and data frames. The admin's deletes of projects and workspaces come here too, so that no
    delete leaves bytes behind."""
    from agents.knowledge.models import KnowledgeDocument
    from conversations.models import Conversation
    from files.store import conversations_bytes_delete_on_commit, stored_delete_on_commit

    with transaction.atomic():
        ids = list(projects.values_list("id", flat=True))
        stored = list(KnowledgeDocument.objects.filter(project_id__in=ids).exclude(stored_path="")
                      .values_list("stored_path", flat=True))
        conversations_bytes_delete_on_commit(  # its conversations' files and data frames
            conversation_ids=Conversation.objects.filter(project_id__in=ids).values_list("id", flat=True))
        Project.objects.filter(id__in=ids).delete()
        stored_delete_on_commit(stored)


def project_delete(*, project: Project) -> None:
    projects_delete(projects=Project.objects.filter(id=project.id))


def workspace_delete(*, workspace: Workspace) -> None:
    """Deletes the workspace, its memberships and its projects with their stored bytes (`projects_delete`)."""
    with transaction.atomic():
        projects_delete(projects=Project.objects.filter(workspace=workspace))
        workspace.delete()


def project_document_validate(*, document: dict, fields: dict, framework: str) -> None:
    """The validation `project_update` applies — the whole document as the runtime reads it (missing parts take a
    blank project's) and the project's own fields (`name`, `description`, `language`) — for a writer that is not the
    API (the admin's form), so that both refuse the same things. Raises `DocumentError` naming every fault."""
    parts = {part: document.get(part, default) for part, default in default_document().items()}
    _validate(parts, fields, framework)
