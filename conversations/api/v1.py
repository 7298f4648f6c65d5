"""v1 Conversations API (API.md §2). The endpoints are async views (`config/api/endpoints.py`); each turn runs
through the pipeline of `conversations/turns.py` and the view only formats its events. The APIView classes below
only document the paths for drf-spectacular."""
from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.views import APIView

from config.api.endpoints import api_endpoint, json_body, json_response, per_user_rate_limit
from config.api.errors import NotFound
from config.api.schema import TRACE_LIST, error_responses
from config.api.sse import PING, event_stream_response, sse_event
from conversations import services
from conversations.api.interact import interact_request_build, project_for_user_call
from conversations.api.serializers import (
    USER_ID_RE,
    InteractInputSerializer,
    StateInputSerializer,
    last_event_seq,
    validate_turn_id,
)
from conversations.lease import ConversationKey
from conversations.remote_turns import turn_find, turn_follow, turn_stop
from conversations.selectors import conversation_aget
from conversations.turns import turn_start

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
STOPPED = inline_serializer("StoppedTurn", {
    "turnId": serializers.CharField(),
    "status": serializers.ChoiceField(choices=["interrupted", "complete", "failed", "stopping"],
                                      help_text="stopping: the turn's process has not answered yet"),
    "traces": TRACE_LIST,
})
SSE_RESPONSE = {(200, "text/event-stream"): {"description": "Events whose data is a trace object, then [DONE]"}}


def _key(project, user_id: str) -> ConversationKey:
    return ConversationKey(project_id=project.id, user_id=user_id)


def _visible(turn_request, event) -> bool:
    return event.done or event.data.get("type") not in turn_request.exclude_types


# --- interact (JSON) and interact/stream (SSE): one pipeline, two formats

def whole_replies(traces: list[dict], *, debug: bool, parts: list[int] | None = None) -> list[dict]:
    """The traces of a JSON answer (API.md §2): a model's streamed reply — `completion-start`, then its chunks as
    `text` traces — becomes one `text` trace with the whole reply; `tool-call` traces appear only with debug.
    `parts` (each trace's `TurnEvent.part`) tells a message said right after a streamed reply from one more of its
    chunks: without them the two would read as one."""
    whole: list[dict] = []
    streaming: int | None = None  # the part of the `completion-start` whose chunks are being joined (theirs + 1)
    for index, trace in enumerate(traces):
        kind = trace.get("type")
        part = parts[index] if parts is not None else 0
        if kind == "completion-start":
            streaming = part
            whole.append({"type": "text", "payload": {"message": ""}})
        elif kind == "text" and streaming is not None and (parts is None or part == streaming + 1):
            whole[-1]["payload"]["message"] += trace["payload"].get("message", "")
        elif kind == "tool-call" and not debug:
            continue
        else:
            streaming = None
            whole.append(trace)
    return [trace for trace in whole if trace["type"] != "text" or trace["payload"].get("message")]


async def interact_traces(turn_request, turn) -> list[dict]:
    events = [event async for event in turn.follow() if not event.done and _visible(turn_request, event)]
    return whole_replies([event.data for event in events], debug=turn_request.debug,
                         parts=[event.part for event in events])


@per_user_rate_limit
async def interact(request, credential, user_id: str):
    turn_request = await interact_request_build(request=request, credential=credential, user_id=user_id,
                                                data=json_body(request))
    return json_response(await interact_traces(turn_request, await turn_start(request=turn_request)))


def _sse(turn_id: str, followed, *, keep=lambda event: True):
    """The events as SSE (`id: <turnId>:<seq>`), `: ping` whenever the turn was quiet, ending with [DONE]."""
    async def body():
        async for event in followed:
            if event is None:
                yield PING
            elif keep(event):
                yield sse_event(event.data, id=f"{turn_id}:{event.seq}")

    return event_stream_response(body())


@per_user_rate_limit
async def interact_stream(request, credential, user_id: str):
    turn_request = await interact_request_build(request=request, credential=credential, user_id=user_id,
                                                data=json_body(request))
    return stream_response(turn_request, await turn_start(request=turn_request))


def stream_response(turn_request, turn):
    return _sse(turn.id, turn.follow(idle=settings.CONDUET_SSE_PING_SECONDS),
                keep=lambda event: _visible(turn_request, event))


async def interact_resume(request, credential, user_id: str):
    """GET …/interact/stream?turn=<turnId> with Last-Event-ID: the events after it, live or replayed."""
    project = await project_for_user_call(credential, request, user_id, widget_allowed=True)
    turn_id = validate_turn_id(request.GET.get("turn"))
    after = last_event_seq(request.headers.get("Last-Event-ID"), turn_id)
    conversation_id = await turn_find(key=_key(project, user_id), turn_id=turn_id)
    return _sse(turn_id, turn_follow(conversation_id=conversation_id, turn_id=turn_id, after=after,
                                     idle=settings.CONDUET_SSE_PING_SECONDS))


async def interact_stop(request, credential, user_id: str):
    project = await project_for_user_call(credential, request, user_id, widget_allowed=False)
    stopped = await turn_stop(key=_key(project, user_id))
    return json_response(stopped, status=202 if stopped["status"] == "stopping" else 200)


# --- session state

async def state_get(request, credential, user_id: str):
    project = await project_for_user_call(credential, request, user_id, widget_allowed=True)
    row = await conversation_aget(key=_key(project, user_id))
    if row is None:
        raise NotFound(f"User {user_id} has no session.")
    return json_response(services.state_view(row))


async def state_put(request, credential, user_id: str):
    project = await project_for_user_call(credential, request, user_id, widget_allowed=False)
    serializer = StateInputSerializer(data=json_body(request))
    serializer.is_valid(raise_exception=True)
    state = await services.conversation_state_replace(key=_key(project, user_id), state=serializer.validated_data)
    return json_response(state)


async def state_delete(request, credential, user_id: str):
    project = await project_for_user_call(credential, request, user_id, widget_allowed=False)
    await services.conversation_end(key=_key(project, user_id))
    return HttpResponse(status=204)


async def variables_patch(request, credential, user_id: str):
    project = await project_for_user_call(credential, request, user_id, widget_allowed=False)
    variables = json_body(request)
    if not isinstance(variables, dict):
        raise serializers.ValidationError({"non_field_errors": ["The body must be a JSON object of variables."]})
    state = await services.conversation_variables_merge(key=_key(project, user_id), variables=variables)
    return json_response(state)


# --- documentation of the paths (drf-spectacular reads DRF views; these are never routed)

class ConversationInteractApi(APIView):
    @extend_schema(operation_id="conversation_interact", summary="Run one turn and return its traces",
                   parameters=[USER_ID_PARAM, PROJECT_HEADER], request=InteractInputSerializer,
                   responses={200: TRACE_LIST, **error_responses(400, 401, 403, 404, 409, 413, 415, 429)})
    def post(self, request, user_id: str):
        """Documentation only."""


class ConversationInteractStreamApi(APIView):
    @extend_schema(
        operation_id="conversation_interact_stream",
        summary="Run one turn, streaming its traces as Server-Sent Events",
        description="Each trace is `id: <turnId>:<seq>` + `data: <trace JSON>`, flushed as produced; "
                    "`: ping` every 15 s; the last event is `data: [DONE]`. A fault after the stream began is "
                    '`data: {"type": "error", "payload": {"error", "code"}}` then `[DONE]`. The turn runs to its '
                    "end even if the client goes away; resume it with GET.",
        parameters=[USER_ID_PARAM, PROJECT_HEADER], request=InteractInputSerializer,
        responses={**SSE_RESPONSE, **error_responses(400, 401, 403, 404, 409, 413, 415, 429)},
    )
    def post(self, request, user_id: str):
        """Documentation only."""

    @extend_schema(
        operation_id="conversation_interact_stream_resume",
        summary="Resume a turn's stream after a disconnect, from any server process",
        description="Replays the events after `Last-Event-ID` (`<turnId>:<seq>`; none: from the start) and follows "
                    "the turn live if it is still running; a finished turn replays from its stored reply. Ends with "
                    "`[DONE]`.",
        parameters=[USER_ID_PARAM, PROJECT_HEADER,
                    OpenApiParameter("turn", str, OpenApiParameter.QUERY, required=True, pattern="^turn_[0-9a-f]{20}$",
                                     description="The turn id (the part of an event id before the colon)"),
                    OpenApiParameter("Last-Event-ID", str, OpenApiParameter.HEADER, required=False,
                                     description="The id of the last event received")],
        responses={**SSE_RESPONSE, **error_responses(400, 401, 403, 404, 429)},
    )
    def get(self, request, user_id: str):
        """Documentation only."""


class ConversationInteractStopApi(APIView):
    @extend_schema(operation_id="conversation_interact_stop",
                   summary="Stop the user's running turn; what it produced is kept (status interrupted)",
                   description="Cancels the turn wherever it runs and waits (up to 5 s) for it to store its reply "
                               "and free the conversation: 200 with what it produced. 202 (status `stopping`) when "
                               "its process has not answered in that time: the stop stays asked, and a process that "
                               "died frees the conversation when its lease expires. 409 when no turn is running.",
                   parameters=[USER_ID_PARAM, PROJECT_HEADER], request=None,
                   responses={200: STOPPED, 202: STOPPED, **error_responses(400, 401, 403, 404, 409, 429)})
    def post(self, request, user_id: str):
        """Documentation only."""


class ConversationStateApi(APIView):
    @extend_schema(operation_id="conversation_state_get", summary="The session state",
                   parameters=[USER_ID_PARAM, PROJECT_HEADER], responses={200: STATE, **error_responses(400, 401, 404)})
    def get(self, request, user_id: str):
        """Documentation only."""

    @extend_schema(operation_id="conversation_state_replace", summary="Replace the whole state (created if absent)",
                   parameters=[USER_ID_PARAM, PROJECT_HEADER], request=StateInputSerializer,
                   responses={200: STATE, **error_responses(400, 401, 403, 404, 409, 413, 415)})
    def put(self, request, user_id: str):
        """Documentation only."""

    @extend_schema(operation_id="conversation_state_delete",
                   summary="End the session; its transcript is kept and the next interact starts fresh",
                   parameters=[USER_ID_PARAM, PROJECT_HEADER], responses={204: None, **error_responses(400, 401, 403)})
    def delete(self, request, user_id: str):
        """Documentation only."""


class ConversationVariablesUpdateApi(APIView):
    @extend_schema(operation_id="conversation_variables_update", summary="Merge variables into the state",
                   parameters=[USER_ID_PARAM, PROJECT_HEADER],
                   request={"application/json": {"type": "object", "additionalProperties": True}},
                   responses={200: STATE, **error_responses(400, 401, 403, 409, 413, 415)})
    def patch(self, request, user_id: str):
        """Documentation only."""


interact_view = api_endpoint(POST=interact, doc=ConversationInteractApi)
interact_stream_view = api_endpoint(POST=interact_stream, GET=interact_resume, doc=ConversationInteractStreamApi)
interact_stop_view = api_endpoint(POST=interact_stop, doc=ConversationInteractStopApi)
state_view = api_endpoint(GET=state_get, PUT=state_put, DELETE=state_delete, doc=ConversationStateApi)
variables_view = api_endpoint(PATCH=variables_patch, doc=ConversationVariablesUpdateApi)
