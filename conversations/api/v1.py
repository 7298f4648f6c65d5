"""v1 Conversations API (API.md §2): JSON endpoints. The SSE endpoint is in `stream.py`."""
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api.errors import NotFound
from config.api.schema import TRACE_LIST, error_responses
from conversations import services
from conversations.api.interact import interact_request_build, project_for_user_call
from conversations.api.serializers import USER_ID_RE, InteractInputSerializer, StateInputSerializer
from conversations.selectors import conversation_open_get

USER_ID_PARAM = OpenApiParameter("user_id", str, OpenApiParameter.PATH, pattern=f"^{USER_ID_RE.pattern}$",
                                 description="1–128 characters of [A-Za-z0-9_.:@-]")
PROJECT_HEADER = OpenApiParameter("X-Project-Id", str, OpenApiParameter.HEADER, required=False,
                                  description="The project, when authenticating with a developer token")
STATE = inline_serializer("State", {
    "versionId": serializers.CharField(),
    "status": serializers.ChoiceField(choices=["active", "ended", "handoff"]),
    "turn": serializers.IntegerField(),
    "variables": serializers.DictField(),
    "stack": serializers.ListField(child=serializers.DictField()),
    "waiting": serializers.DictField(allow_null=True),
    "history": serializers.ListField(child=serializers.DictField()),
    "updatedAt": serializers.DateTimeField(),
})


class ConversationInteractApi(APIView):
    per_user_rate_limit = True

    @extend_schema(
        operation_id="conversation_interact",
        summary="Run one turn and return its traces",
        parameters=[USER_ID_PARAM, PROJECT_HEADER],
        request=InteractInputSerializer,
        responses={200: TRACE_LIST, **error_responses(400, 401, 403, 404, 409, 413, 415, 429)},
    )
    def post(self, request, user_id: str):
        turn_request = interact_request_build(
            http_request=request._request, credential=request.auth, user_id=user_id, data=request.data
        )
        _turn, traces = services.turn_run(request=turn_request)
        return Response(traces)


class ConversationStateApi(APIView):
    """GET, PUT and DELETE of one path; each method is one operation calling one selector or service."""

    @extend_schema(operation_id="conversation_state_get", summary="The session state",
                   parameters=[USER_ID_PARAM, PROJECT_HEADER], responses={200: STATE, **error_responses(400, 401, 404)})
    def get(self, request, user_id: str):
        project = project_for_user_call(request.auth, request.headers, user_id, widget_allowed=True)
        conversation = conversation_open_get(project=project, user_id=user_id)
        if conversation is None:
            raise NotFound(f"User {user_id} has no session.")
        return Response(services.state_view(conversation))

    @extend_schema(operation_id="conversation_state_replace", summary="Replace the whole state (created if absent)",
                   parameters=[USER_ID_PARAM, PROJECT_HEADER], request=StateInputSerializer,
                   responses={200: STATE, **error_responses(400, 401, 403, 404, 409)})
    def put(self, request, user_id: str):
        project = project_for_user_call(request.auth, request.headers, user_id, widget_allowed=False)
        serializer = StateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        state = services.conversation_state_replace(project=project, user_id=user_id, state=serializer.validated_data)
        return Response(state)

    @extend_schema(operation_id="conversation_state_delete",
                   summary="End the session; its transcript is kept and the next interact starts fresh",
                   parameters=[USER_ID_PARAM, PROJECT_HEADER], responses={204: None, **error_responses(400, 401, 403)})
    def delete(self, request, user_id: str):
        project = project_for_user_call(request.auth, request.headers, user_id, widget_allowed=False)
        services.conversation_end(project=project, user_id=user_id)
        return Response(status=204)


class ConversationVariablesUpdateApi(APIView):
    @extend_schema(operation_id="conversation_variables_update", summary="Merge variables into the state",
                   parameters=[USER_ID_PARAM, PROJECT_HEADER],
                   request={"application/json": {"type": "object", "additionalProperties": True}},
                   responses={200: STATE, **error_responses(400, 401, 403, 409)})
    def patch(self, request, user_id: str):
        project = project_for_user_call(request.auth, request.headers, user_id, widget_allowed=False)
        if not isinstance(request.data, dict):
            raise serializers.ValidationError({"non_field_errors": ["The body must be a JSON object of variables."]})
        state = services.conversation_variables_merge(project=project, user_id=user_id, variables=request.data)
        return Response(state)
