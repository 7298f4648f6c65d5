"""v2 API (API.md §7): an agent's named conversations and their messages, under
/tenants/{tenant}/api/v2/agents/{aid}/conversations. DRF views for the REST resources (list, create, get, delete of
conversations), one class per path, each method one operation with its own nested serializers. The messages' path
(its list, and the turn that POST runs) and the stream are async views in `v2_turns.py`.

Who may call: a developer token of a member of the tenant's workspace, or a server key of that agent
(`tenant_agent_get`: another tenant or agent is a 404; a widget key a 403). The v2 API spells fields in snake_case."""
from asgiref.sync import async_to_sync
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_field,
    extend_schema_serializer,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from agents.authentication import tenant_agent_get
from config.api.pagination import page_body, paginate, parse_limit
from config.api.schema import PAGE_PARAMS, TRACE_LIST, error_responses
from config.api.validation import closed_object
from conversations import selectors, services
from conversations.api.serializers import StrictCharField
from conversations.models import Message

NAME_MAX = 200
TENANT_PARAM = OpenApiParameter("tenant", str, OpenApiParameter.PATH, description="The workspace's slug")
AGENT_PARAM = OpenApiParameter("aid", str, OpenApiParameter.PATH, description="The agent (`proj_…`)")
CONVERSATION_PARAM = OpenApiParameter("cid", str, OpenApiParameter.PATH, description="The conversation (`conv_…`)")
SCOPE = ("A developer token of a member of the tenant's workspace, or a server key of the agent; another tenant or "
         "agent is a 404, a widget key a 403.")


class ReplyText:
    """The text of an agent reply as v2 shows it: the messages it said, one line each, a model's streamed reply
    being one message — the stored reply's `content` (`reply_text`, what it had said when it ended). `feed` gives
    each event's part of it, so the stream's deltas concatenate to exactly that `content`: the event's `part` (the
    engine's count of messages said) tells a model's next chunk from a message said right after its reply."""

    def __init__(self):
        self.text = ""
        self._part: int | None = None

    def feed(self, trace: dict, part: int) -> str | None:
        """The delta this trace adds to the text ("" for none); None for a trace that is not text."""
        kind = trace.get("type")
        if kind == "completion-start":  # what the deltas say by themselves
            return ""
        if kind != "text":
            return None
        message = (trace.get("payload") or {}).get("message") or ""
        if not message:
            return ""
        delta = ("\n" if part != self._part and self.text else "") + message
        self._part = part
        self.text += delta
        return delta


def reply_traces(traces: list[dict], content: str) -> list[dict]:
    """A stored reply's traces as v2 shows them, like v1's JSON interact: a model's streamed reply as one `text`
    trace (no `completion-start`), no `tool-call` traces. The stored `content` says where that reply ended: a text
    trace that continues it there is a chunk; one after a newline is a message said after it."""
    whole: list[dict] = []
    current: dict | None = None  # the streamed reply being joined
    streaming, pos = False, 0
    for trace in traces:
        kind = trace.get("type")
        if kind == "completion-start":
            streaming, current = True, None
            continue
        if kind == "tool-call":
            continue
        if kind != "text":
            streaming = False
            whole.append(trace)
            continue
        message = (trace.get("payload") or {}).get("message") or ""
        if not message:
            continue
        if streaming and current is not None and content.startswith(message, pos):
            current["payload"]["message"] += message
        else:  # a new message: a streamed reply's first chunk, or a message said
            streaming = streaming and current is None
            if pos and content.startswith("\n", pos):
                pos += 1
            current = {"type": "text", "payload": {"message": message}}
            whole.append(current)
        pos += len(message)
    return whole


# --- output shapes

@extend_schema_serializer(component_name="Conversation")
class ConversationOutputSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="conv_…")
    name = serializers.CharField()
    agent_id = serializers.CharField(source="project_id", help_text="proj_…")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField(help_text="Its last turn's end (or its creation)")


@extend_schema_serializer(component_name="Message")
class MessageOutputSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="msg_…")
    role = serializers.SerializerMethodField()
    content = serializers.SerializerMethodField(
        help_text="A user message: the content sent (empty when only files were sent). An agent message: the text "
                  "of its text traces, one line per message said (a model's streamed reply, however many chunks, is "
                  "one message); for a stopped or failed turn what it had said by then. The stream's deltas "
                  "concatenate to it.")
    traces = serializers.SerializerMethodField(
        help_text="An agent message's traces as v1's JSON interact shows them (a streamed reply as one text trace, "
                  "no tool-call traces); empty for a user message")
    files = serializers.SerializerMethodField(help_text="The file_refs attached to a user message")
    created_at = serializers.DateTimeField()

    @extend_schema_field(serializers.ChoiceField(choices=["user", "agent"]))
    def get_role(self, message: Message) -> str:
        return "user" if message.role == Message.Role.USER else "agent"

    def get_content(self, message: Message) -> str:
        if message.role != Message.Role.USER:
            return message.content
        action = message.action or {}
        if action.get("type") == "media" and message.files:
            return ""  # only files were sent: the media action's url is not something the user wrote
        return message.content

    @extend_schema_field(TRACE_LIST)
    def get_traces(self, message: Message) -> list[dict]:
        if message.role == Message.Role.USER:
            return []
        return reply_traces(message.traces or [], message.content)

    def get_files(self, message: Message) -> list[str]:
        return list(message.files or [])


def conversation_body(conversation) -> dict:
    return ConversationOutputSerializer(conversation).data


def message_body(message: Message) -> dict:
    return MessageOutputSerializer(message).data


def _paged(name: str, item) -> object:
    return inline_serializer(name, {"data": item(many=True), "next": serializers.CharField(allow_null=True),
                                    "has_more": serializers.BooleanField()})


# --- the views

class ConversationListCreateApi(APIView):
    @extend_schema_serializer(component_name="ConversationCreate")
    class CreateInputSerializer(serializers.Serializer):
        name = StrictCharField(max_length=NAME_MAX, help_text="1–200 characters, not only spaces")

    @extend_schema(operation_id="v2_conversation_list", summary="The agent's conversations, newest first",
                   description=f"Keyset pages on (created_at, id): a conversation created while paging appears "
                               f"on no later page, none is seen twice. {SCOPE}",
                   parameters=[TENANT_PARAM, AGENT_PARAM, *PAGE_PARAMS],
                   responses={200: _paged("ConversationList", ConversationOutputSerializer),
                              **error_responses(400, 401, 403, 404, 429)})
    def get(self, request, tenant: str, aid: str):
        agent = tenant_agent_get(request.auth, tenant, aid)
        page = paginate(selectors.conversations_v2_list(agent=agent),
                        limit=parse_limit(request.query_params.get("limit")),
                        cursor=request.query_params.get("next"), newest_first=True)
        return Response(page_body(page, ConversationOutputSerializer(page.items, many=True).data))

    @extend_schema(operation_id="v2_conversation_create", summary="Start a named conversation with the agent",
                   description=SCOPE, parameters=[TENANT_PARAM, AGENT_PARAM], request=CreateInputSerializer,
                   responses={201: ConversationOutputSerializer, **error_responses(400, 401, 403, 404, 413, 415, 429)})
    def post(self, request, tenant: str, aid: str):
        agent = tenant_agent_get(request.auth, tenant, aid)
        data = closed_object(self.CreateInputSerializer, request.data)
        conversation = services.conversation_v2_create(agent=agent, name=data["name"])
        return Response(conversation_body(conversation), status=201)


class ConversationDetailApi(APIView):
    @extend_schema(operation_id="v2_conversation_get", summary="One conversation", description=SCOPE,
                   parameters=[TENANT_PARAM, AGENT_PARAM, CONVERSATION_PARAM],
                   responses={200: ConversationOutputSerializer, **error_responses(401, 403, 404, 429)})
    def get(self, request, tenant: str, aid: str, cid: str):
        agent = tenant_agent_get(request.auth, tenant, aid)
        return Response(conversation_body(selectors.conversation_v2_get(agent=agent, conversation_id=cid)))

    @extend_schema(operation_id="v2_conversation_delete",
                   summary="Delete a conversation with its messages, files and data frames; returns it",
                   description="Their stored bytes are deleted once the delete has committed. A running turn is "
                               "never cut short: the delete waits for it (up to 10 s), then answers 409. "
                               f"{SCOPE}",
                   parameters=[TENANT_PARAM, AGENT_PARAM, CONVERSATION_PARAM],
                   responses={200: ConversationOutputSerializer, **error_responses(401, 403, 404, 409, 429)})
    def delete(self, request, tenant: str, aid: str, cid: str):
        agent = tenant_agent_get(request.auth, tenant, aid)
        conversation = selectors.conversation_v2_get(agent=agent, conversation_id=cid)
        deleted = async_to_sync(services.conversation_adelete)(conversation=conversation)
        return Response(conversation_body(deleted))
