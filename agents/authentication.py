"""Bearer authentication for both key kinds (API.md §1). The view gets a `Credential`: whose key, which scope."""
import functools
import hmac
import re
from dataclasses import dataclass
from datetime import timedelta

from asgiref.sync import sync_to_async
from django.db import connections
from django.utils import timezone
from rest_framework import authentication, permissions
from rest_framework.exceptions import AuthenticationFailed

from agents.ids import BASE62, KEY_SECRET_LENGTH, LOOKUP_PREFIX_LENGTH, key_digest
from agents.models import DeveloperToken, Project, ProjectApiKey
from config import db
from config.api.errors import ApiError, ErrorCode, Forbidden, NotFound

_KEY_RE = re.compile(rf"^cdt_(acc_)?([{BASE62}]{{{KEY_SECRET_LENGTH}}})$")
# Writing last_used_at on every request would turn each read into a write; once a minute is precise enough.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class Credential:
    kind: str  # "project" | "developer"
    key_id: str
    scope: str  # "server" | "widget" | "developer"
    project: Project | None = None  # the project of a project key
    user: object | None = None  # the user of a developer token

    @property
    def is_widget(self) -> bool:
        return self.scope == ProjectApiKey.Scope.WIDGET


def _touch(model, key) -> None:
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        model.objects.filter(pk=key.pk).update(last_used_at=now)


def _parse_bearer(header: str) -> tuple[bool, str, str]:
    """(is a developer token, lookup prefix, digest) of a well-formed Bearer key; AuthenticationFailed otherwise."""
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise AuthenticationFailed("Authorization header must be 'Bearer <key>'.")
    key = key.strip()
    match = _KEY_RE.fullmatch(key)
    if not match:
        raise AuthenticationFailed("Malformed API key: expected cdt_… or cdt_acc_… followed by 40 characters.")
    return bool(match.group(1)), match.group(2)[:LOOKUP_PREFIX_LENGTH], key_digest(key)


def _check(found, digest: str):
    if found is None or not hmac.compare_digest(found.digest, digest):
        raise AuthenticationFailed("Unknown API key.")
    if found.revoked_at is not None:
        raise AuthenticationFailed("This API key has been revoked.")
    return found


def credential_from_header(header: str | None) -> Credential | None:
    """None when there is no Authorization header; raises AuthenticationFailed for a bad, unknown or revoked key."""
    if not header:
        return None
    is_developer, prefix, digest = _parse_bearer(header)
    if is_developer:
        candidates = DeveloperToken.objects.select_related("user").filter(prefix=prefix)
    else:
        candidates = ProjectApiKey.objects.select_related("project").filter(prefix=prefix)
    found = _check(next((c for c in candidates if hmac.compare_digest(c.digest, digest)), None), digest)
    if is_developer:
        if not found.user.is_active:
            raise AuthenticationFailed("The user of this token is inactive.")
        _touch(DeveloperToken, found)
        return Credential(kind="developer", key_id=found.id, scope="developer", user=found.user)
    _touch(ProjectApiKey, found)
    return Credential(kind="project", key_id=found.id, scope=found.scope, project=found.project)


# The hot path's key lookup: the key and what a turn needs of its project (id, workspace, production version,
# last change) in one statement; the turn runs the spec cached per version, and any other field of the project
# (its document, its name) is deferred and loads only if something asks for it.
_PROJECT_FIELDS = [Project._meta.get_field(name) for name in ("id", "workspace", "production_version", "updated_at")]
_KEY_SQL = (
    "SELECT k.id AS key_id, k.digest, k.scope, k.revoked_at, k.last_used_at, "
    + ", ".join(f"p.{f.column} AS p_{f.column}" for f in _PROJECT_FIELDS)
    + " FROM agents_projectapikey k JOIN agents_project p ON p.id = k.project_id WHERE k.prefix = %s"
)


_PROJECT_ATTNAMES = [f.attname for f in _PROJECT_FIELDS]


@functools.cache
def _project_converters() -> list[tuple[str, object, list]]:
    """(column alias, column, the database's and the field's converters) of each project field, worked out once."""
    connection = connections["default"]
    found = []
    for f in _PROJECT_FIELDS:
        column = f.get_col(Project._meta.db_table)
        found.append((f"p_{f.column}", column,
                      connection.ops.get_db_converters(column) + column.get_db_converters(connection)))
    return found


def _project_values(row: dict) -> list:
    connection = connections["default"]
    values = []
    for alias, column, converters in _project_converters():
        value = row[alias]
        for converter in converters:
            value = converter(value, column, connection)
        values.append(value)
    return values


async def credential_from_header_async(header: str | None) -> Credential | None:
    """`credential_from_header` for async views: a project key costs one statement on the async path."""
    if not header:
        return None
    is_developer, prefix, digest = _parse_bearer(header)
    if is_developer:
        return await sync_to_async(db.released(credential_from_header))(header)
    rows = await db.fetch(_KEY_SQL, [prefix])
    row = next((r for r in rows if hmac.compare_digest(r["digest"], digest)), None)
    if row is None:
        raise AuthenticationFailed("Unknown API key.")
    if row["revoked_at"] is not None:
        raise AuthenticationFailed("This API key has been revoked.")
    project = Project.from_db("default", _PROJECT_ATTNAMES, _project_values(row))
    last_used = db.datetime_value(row["last_used_at"])
    now = timezone.now()
    if last_used is None or now - last_used > LAST_USED_RESOLUTION:
        await db.fetch("UPDATE agents_projectapikey SET last_used_at = %s WHERE id = %s",
                       [db.when(now), row["key_id"]])
    return Credential(kind="project", key_id=row["key_id"], scope=row["scope"], project=project)


class BearerKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        credential = credential_from_header(request.META.get("HTTP_AUTHORIZATION"))
        if credential is None:
            return None
        return credential.user, credential

    def authenticate_header(self, request) -> str:
        # Makes DRF answer 401 (not 403) to a missing key.
        return 'Bearer realm="api"'


# API.md §1's table of who may call what, by family of paths: it holds for every DRF view (this is their default
# permission), whichever module defines it, so that a new endpoint is in scope from its first line. The async turn
# views apply the finer rules of v1 Conversations (`conversations/api/interact.py`) and the project chat its own.
MANAGEMENT_API = "/api/v1/projects"
PUBLIC_PROJECT_API = "/api/v1/project"
CONVERSATIONS_API = "/api/v1/conversations/"
TENANTS_API = "/tenants/"


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root + "/")


def scope_refusal(credential: Credential, path: str) -> str | None:
    """Why this key's kind may not call `path` at all (a 403), or None. A widget key (public, in web pages) reaches
    only the Project API and the v1 Conversations turn endpoints; a project key never the Project Management API;
    a developer token never the public Project API."""
    if _under(path, MANAGEMENT_API):
        if credential.kind != "developer":
            return "The Project Management API needs a developer token (cdt_acc_…), not a project key."
        return None
    if _under(path, PUBLIC_PROJECT_API):
        if credential.kind != "project":
            return "The Project API takes a project key (cdt_…), not a developer token."
        return None
    if credential.is_widget and not path.startswith(CONVERSATIONS_API):
        return "A widget key may only use the Project API and interact; use a server key."
    return None


class HasApiKey(permissions.BasePermission):
    """A key, used within its kind's reach (`scope_refusal`: 403 naming the rule)."""

    def has_permission(self, request, view) -> bool:
        if not isinstance(request.auth, Credential):
            return False
        refusal = scope_refusal(request.auth, request.path_info)
        if refusal:
            raise Forbidden(refusal)
        return True


def project_for_credential(credential: Credential, project_header: str | None) -> Project:
    """The project a request acts on: a project key's own, or the `X-Project-Id` of a developer token's user."""
    if credential.kind == "project":
        return credential.project
    if not project_header:
        raise ApiError("A developer token needs the X-Project-Id header to name the project.",
                       code=ErrorCode.BAD_REQUEST)
    project = Project.objects.filter(id=project_header, workspace__memberships__user=credential.user).first()
    if project is None:
        raise NotFound(f"Project {project_header} not found.")
    return project


def developer_project_get(credential: Credential, project_id: str, *, lock: bool = False) -> Project:
    """A project of the Project Management API: one of the developer token's user's workspaces (any other, or none,
    is a 404: its existence is not revealed). `lock=True` takes its row lock (inside a transaction), so that a
    publish or an update reads the document no concurrent write is changing."""
    if credential.kind != "developer":
        raise Forbidden("The Project Management API needs a developer token (cdt_acc_…), not a project key.")
    projects = Project.objects.filter(id=project_id, workspace__memberships__user=credential.user)
    if lock:
        # The membership join only filters: the lock is the project row's (PostgreSQL's FOR UPDATE OF).
        projects = Project.objects.select_for_update().filter(pk__in=projects.values("pk"))
    project = projects.first()
    if project is None:
        raise NotFound(f"Project {project_id} not found.")
    return project


def tenant_agent_get(credential: Credential, tenant: str, agent_id: str) -> Project:
    """The agent a v2 call (`/tenants/{tenant}/api/v2/agents/{aid}/…`, API.md §7) acts on: `tenant` is its
    workspace's slug. A developer token reaches the agents of the workspaces its user belongs to; a server key
    only its own agent, in its own workspace. Anything else is a 404 (its existence is not revealed); a widget key
    is refused before this (`scope_refusal`: 403)."""
    if credential.is_widget:
        raise Forbidden("A widget key may only use the Project API and interact; use a server key.")
    projects = Project.objects.filter(id=agent_id, workspace__slug=tenant)
    if credential.kind == "developer":
        projects = projects.filter(workspace__memberships__user=credential.user)
    elif credential.project is None or credential.project.id != agent_id:
        projects = projects.none()
    project = projects.first()
    if project is None:
        raise NotFound(f"Agent {agent_id} not found in tenant {tenant}.")
    return project


async def tenant_agent_aget(credential: Credential, tenant: str, agent_id: str) -> Project:
    """`tenant_agent_get` from an async view."""
    return await sync_to_async(db.released(tenant_agent_get))(credential, tenant, agent_id)
