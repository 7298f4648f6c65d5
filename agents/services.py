"""Writes on workspaces, projects, versions and keys. Every project document written here has its tool secrets
(header values) sealed — encrypted, `agents/secrets.py` — and a redacted value sent back keeps the stored one."""
import copy
import hashlib
import json
import secrets
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
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
from agents.secrets import document_open, document_seal


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
    validate_document({**parts, "framework": framework})
    parts = document_seal(parts)
    return Project.objects.create(
        workspace=workspace,
        name=name,
        slug=slug or source.get("slug") or slugify(name) or "project",
        description=description if description is not None else source.get("description"),
        framework=framework,
        language=source.get("language", language),
        document=parts,
    )


PROJECT_FIELDS = ("name", "description", "language")


def project_update(*, project: Project, document: dict, replace: bool = False) -> Project:
    """Writes a project document (the API's shape, `Project.as_document`): the parts it has replace the stored ones
    (`replace=True`: the parts it lacks take a blank project's), as do `name`, `description`, `language` and
    `framework` when present. The result is validated as a whole (`DocumentError`, nothing stored) and its secrets
    sealed: a header value sent back redacted keeps the stored value."""
    source = copy.deepcopy(document)
    stored = project.document
    parts = {part: source[part] if part in source else default if replace else stored.get(part, default)
             for part, default in default_document().items()}
    framework = source.get("framework") or project.framework
    validate_document({**parts, "framework": framework})
    parts = document_seal(parts, previous=stored)
    for field in PROJECT_FIELDS:
        if field in source:
            setattr(project, field, source[field])
    project.framework = framework
    project.document = parts
    project.save()
    return project


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
    snapshot = document_seal(stored, previous=stored)
    with transaction.atomic():
        version = ProjectVersion.objects.create(
            project=project, name=name, snapshot=snapshot, digest=snapshot_digest(snapshot), created_by=user
        )
        project.production_version = version
        project.save(update_fields=["production_version", "updated_at"])
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
