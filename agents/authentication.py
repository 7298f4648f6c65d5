"""Bearer authentication for both key kinds (API.md §1). The view gets a `Credential`: whose key, which scope."""
import hmac
import re
from dataclasses import dataclass
from datetime import timedelta

from django.utils import timezone
from rest_framework import authentication, permissions
from rest_framework.exceptions import AuthenticationFailed

from agents.ids import BASE62, KEY_SECRET_LENGTH, LOOKUP_PREFIX_LENGTH, key_digest
from agents.models import DeveloperToken, Project, ProjectApiKey
from config.api.errors import ApiError, ErrorCode, NotFound

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


def credential_from_header(header: str | None) -> Credential | None:
    """None when there is no Authorization header; raises AuthenticationFailed for a bad, unknown or revoked key."""
    if not header:
        return None
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise AuthenticationFailed("Authorization header must be 'Bearer <key>'.")
    key = key.strip()
    match = _KEY_RE.fullmatch(key)
    if not match:
        raise AuthenticationFailed("Malformed API key: expected cdt_… or cdt_acc_… followed by 40 characters.")
    is_developer, secret = bool(match.group(1)), match.group(2)
    prefix, digest = secret[:LOOKUP_PREFIX_LENGTH], key_digest(key)
    if is_developer:
        candidates = DeveloperToken.objects.select_related("user").filter(prefix=prefix)
    else:
        candidates = ProjectApiKey.objects.select_related("project").filter(prefix=prefix)
    found = next((c for c in candidates if hmac.compare_digest(c.digest, digest)), None)
    if found is None:
        raise AuthenticationFailed("Unknown API key.")
    if found.revoked_at is not None:
        raise AuthenticationFailed("This API key has been revoked.")
    if is_developer:
        if not found.user.is_active:
            raise AuthenticationFailed("The user of this token is inactive.")
        _touch(DeveloperToken, found)
        return Credential(kind="developer", key_id=found.id, scope="developer", user=found.user)
    _touch(ProjectApiKey, found)
    return Credential(kind="project", key_id=found.id, scope=found.scope, project=found.project)


class BearerKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        credential = credential_from_header(request.META.get("HTTP_AUTHORIZATION"))
        if credential is None:
            return None
        return credential.user, credential

    def authenticate_header(self, request) -> str:
        # Makes DRF answer 401 (not 403) to a missing key.
        return 'Bearer realm="api"'


class HasApiKey(permissions.BasePermission):
    def has_permission(self, request, view) -> bool:
        return isinstance(request.auth, Credential)


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
