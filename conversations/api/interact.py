"""What both interact endpoints (JSON and SSE) do before the turn runs: scope checks, the per-user rate limit and
body validation, turned into a `TurnRequest`. Pure of DRF's request object so the async view can call it."""
from rest_framework.exceptions import ValidationError

from agents.authentication import Credential, project_for_credential
from agents.selectors import PRODUCTION
from config.api.errors import Forbidden
from config.api.ratelimit import interact_rate_limit_hit
from conversations.api.serializers import InteractInputSerializer, validate_user_id
from conversations.services import TurnRequest

WIDGET_USER_PREFIX = "anon_"


def project_for_user_call(credential: Credential, headers, user_id: str, *, widget_allowed: bool):
    """The project a /conversations/{userId}/… call acts on, after the widget key's limits."""
    validate_user_id(user_id)
    project = project_for_credential(credential, headers.get("X-Project-Id"))
    if credential.is_widget:
        if not widget_allowed:
            raise Forbidden("A widget key may only interact and read state.")
        if not user_id.startswith(WIDGET_USER_PREFIX):
            raise Forbidden("A widget key may only act for user ids that start with 'anon_'.")
    return project


def interact_request_build(*, http_request, credential: Credential, user_id: str, data) -> TurnRequest:
    project = project_for_user_call(credential, http_request.headers, user_id, widget_allowed=True)
    interact_rate_limit_hit(http_request, project=project, user_key=user_id)
    if not isinstance(data, dict):
        raise ValidationError({"non_field_errors": ["The body must be a JSON object with an action."]})
    serializer = InteractInputSerializer(data=data)
    serializer.is_valid(raise_exception=True)
    body = serializer.validated_data
    version = body.get("versionId") or (PRODUCTION if credential.is_widget else "development")
    if credential.is_widget and version != PRODUCTION:
        raise Forbidden("A widget key runs the production version only.")
    config = body.get("config") or {}
    return TurnRequest(
        project=project,
        user_id=user_id,
        action=body["action"],
        version=version,
        debug=bool(config.get("debug")),
        exclude_types=frozenset(config.get("excludeTypes") or ()),
        platform="widget" if credential.is_widget else "api",
    )
