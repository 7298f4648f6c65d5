"""Writes on workspaces, projects, versions and keys."""
import copy
import hashlib
import json

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from agents.ids import KEY_SECRET_LENGTH, LOOKUP_PREFIX_LENGTH, key_digest, random_base62
from agents.models import (
    DeveloperToken,
    Membership,
    Project,
    ProjectApiKey,
    ProjectVersion,
    Workspace,
    default_document,
)
from agents.runtime import validate_document


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
    return Project.objects.create(
        workspace=workspace,
        name=name,
        slug=slug or source.get("slug") or slugify(name) or "project",
        description=description if description is not None else source.get("description"),
        framework=framework,
        language=source.get("language", language),
        document=parts,
    )


def project_snapshot(project: Project) -> dict:
    """What a published version freezes: the document without the row's timestamps."""
    return {key: value for key, value in project.as_document().items() if key not in ("createdAt", "updatedAt")}


def snapshot_digest(snapshot: dict) -> str:
    canonical = json.dumps(snapshot, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def version_publish(*, project: Project, name: str = "", user: AbstractBaseUser | None = None) -> ProjectVersion:
    """Freezes `development` into an immutable version and makes it `production`."""
    snapshot = project_snapshot(project)
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
    key, prefix, digest = _new_key("cdt_")
    row = ProjectApiKey.objects.create(project=project, name=name, scope=scope, prefix=prefix, digest=digest)
    return row, key


def developer_token_create(*, user: AbstractBaseUser, name: str = "") -> tuple[DeveloperToken, str]:
    key, prefix, digest = _new_key("cdt_acc_")
    row = DeveloperToken.objects.create(user=user, name=name, prefix=prefix, digest=digest)
    return row, key


def key_revoke(*, key: ProjectApiKey | DeveloperToken) -> None:
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
