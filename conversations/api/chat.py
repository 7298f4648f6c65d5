"""The project chat (API.md §3, endpoints 11–12): a developer tries the project they are building. The same turn
pipeline and formats as v1 interact, on `development` by default, for a developer token of a member of the
project's workspace; the conversation belongs to `userId` (default `dev_<the token user's id>`)."""
import dataclasses

from asgiref.sync import sync_to_async
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.views import APIView

from agents.models import Project
from config import db
from config.api.endpoints import api_endpoint, json_body, json_response, per_user_rate_limit
from config.api.errors import Forbidden, NotFound
from config.api.schema import TRACE_LIST, error_responses
from conversations.api.interact import turn_request_build
from conversations.api.serializers import InteractInputSerializer, interact_input, validate_user_id
from conversations.api.v1 import SSE_RESPONSE, interact_traces, stream_response
from conversations.turns import TurnRequest, turn_start

CHAT_PLATFORM = "chat"


class ChatInputSerializer(InteractInputSerializer):
    userId = serializers.CharField(required=False, max_length=128,
                                   help_text="The conversation's user; default `dev_<your user id>`")


def _member_project(project_id: str, user) -> Project | None:
    return Project.objects.filter(id=project_id, workspace__memberships__user=user).first()


async def _chat_request(request, credential, project_id: str) -> TurnRequest:
    if credential.kind != "developer":
        raise Forbidden("The project chat needs a developer token (cdt_acc_…), not a project key.")
    project = await sync_to_async(db.released(_member_project))(project_id, credential.user)
    if project is None:
        raise NotFound(f"Project {project_id} not found.")
    data = json_body(request)
    if not isinstance(data, dict):
        raise serializers.ValidationError({"non_field_errors": ["The body must be a JSON object with an action."]})
    user_id = data.get("userId", f"dev_{credential.user.pk}")
    if not isinstance(user_id, str):
        raise serializers.ValidationError({"userId": ["Expected a string."]})
    validate_user_id(user_id)
    body = interact_input({key: value for key, value in data.items() if key != "userId"})
    turn_request = await turn_request_build(request=request, credential=credential, project=project,
                                            user_id=user_id, body=body)
    return dataclasses.replace(turn_request, platform=CHAT_PLATFORM)


@per_user_rate_limit
async def chat(request, credential, project_id: str):
    turn_request = await _chat_request(request, credential, project_id)
    return json_response(await interact_traces(turn_request, await turn_start(request=turn_request)))


@per_user_rate_limit
async def chat_stream(request, credential, project_id: str):
    turn_request = await _chat_request(request, credential, project_id)
    return stream_response(turn_request, await turn_start(request=turn_request))


PROJECT_ID_PARAM = OpenApiParameter("project_id", str, OpenApiParameter.PATH, description="The project (`proj_…`)")


class ProjectChatApi(APIView):
    @extend_schema(operation_id="project_chat", summary="Chat with the project (development) and get the traces",
                   parameters=[PROJECT_ID_PARAM], request=ChatInputSerializer,
                   responses={200: TRACE_LIST, **error_responses(400, 401, 403, 404, 409, 413, 415, 429)})
    def post(self, request, project_id: str):
        """Documentation only."""


class ProjectChatStreamApi(APIView):
    @extend_schema(operation_id="project_chat_stream", summary="Chat with the project as Server-Sent Events",
                   description="The same events as `/conversations/{userId}/interact/stream`, ending with `[DONE]`.",
                   parameters=[PROJECT_ID_PARAM], request=ChatInputSerializer,
                   responses={**SSE_RESPONSE, **error_responses(400, 401, 403, 404, 409, 413, 415, 429)})
    def post(self, request, project_id: str):
        """Documentation only."""


chat_view = api_endpoint(POST=chat, doc=ProjectChatApi)
chat_stream_view = api_endpoint(POST=chat_stream, doc=ProjectChatStreamApi)
