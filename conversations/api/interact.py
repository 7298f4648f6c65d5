"""What the v1 turn endpoints do before a turn runs: scope checks, body validation, the version's spec and the
per-user rate limit, turned into a `TurnRequest` (shared by the JSON and the SSE endpoints)."""
from asgiref.sync import sync_to_async
from rest_framework.exceptions import ValidationError

from agents.authentication import Credential, project_for_credential
from agents.models import Project
from agents.selectors import PRODUCTION, agent_spec_aget
from config import db
from config.api.errors import Forbidden
from config.api.ratelimit import interact_rate_limit_hit
from conversations.api.serializers import interact_input, validate_user_id
from conversations.lease import ConversationKey
from conversations.turns import TurnRequest

WIDGET_USER_PREFIX = "anon_"


async def project_for_user_call(credential: Credential, request, user_id: str, *, widget_allowed: bool) -> Project:
    """The project a /conversations/{userId}/… call acts on, after the widget key's limits."""
    validate_user_id(user_id)
    if credential.kind == "project":
        project = credential.project
    else:
        project = await sync_to_async(db.released(project_for_credential))(
            credential, request.headers.get("X-Project-Id"))
    if credential.is_widget:
        if not widget_allowed:
            raise Forbidden("A widget key may only interact and read state.")
        if not user_id.startswith(WIDGET_USER_PREFIX):
            raise Forbidden("A widget key may only act for user ids that start with 'anon_'.")
    return project


async def interact_request_build(*, request, credential: Credential, user_id: str, data) -> TurnRequest:
    project = await project_for_user_call(credential, request, user_id, widget_allowed=True)
    if not isinstance(data, dict):
        raise ValidationError({"non_field_errors": ["The body must be a JSON object with an action."]})
    return await turn_request_build(request=request, credential=credential, project=project, user_id=user_id,
                                    body=interact_input(data))


async def turn_request_build(*, request, credential: Credential, project: Project, user_id: str,
                             body: dict) -> TurnRequest:
    """A validated interact body (`interact_input`) on a project → the turn to run: the version's spec, the widget's
    rules, the per-user rate limit at the version's rate."""
    version = body.get("versionId") or (PRODUCTION if credential.is_widget else "development")
    config = body.get("config") or {}
    if credential.is_widget:
        # Production only: by name, or by the id of the version production runs now (never development, nor
        # another version, which may be unpublished work or an old one rolled back for a reason).
        if version != PRODUCTION and (project.production_version_id is None
                                      or version != project.production_version_id):
            raise Forbidden("A widget key runs the production version only.")
        if config.get("debug"):
            raise Forbidden("A widget key may not ask for debug traces.")
    spec, version_id = await agent_spec_aget(project=project, version=version)
    await interact_rate_limit_hit(request, project_id=project.id, user_key=user_id,
                                  per_minute=spec.rate_limit_per_minute,
                                  widget_key_id=credential.key_id if credential.is_widget else None)
    return TurnRequest(
        project=project,
        key=ConversationKey(project_id=project.id, user_id=user_id),
        action=body["action"],
        spec=spec,
        version_id=version_id,
        debug=bool(config.get("debug")),
        exclude_types=frozenset(config.get("excludeTypes") or ()),
        platform="widget" if credential.is_widget else "api",
    )
