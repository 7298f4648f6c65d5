"""v2 turns (API.md §7): POST …/{cid}/messages (waits for the agent's reply) and POST …/{cid}/stream (SSE), and the
messages' list on the same path. Async views (`config/api/endpoints.py`): a v2 turn is a turn of the one pipeline
(`turn_start`, `ConversationKey(conversation_id=…)`, platform `v2`) and the view only formats its events.

Which version runs: the body is the contract's `{"content", "files"?}` and nothing else (an unknown key is a 400),
so the key decides — a developer token runs `development` (the agent being built), a server key `production`
(what was published; `development` while nothing has been). A turn is rate-limited per (agent, conversation) at
that version's `settings.rateLimit.perMinute`."""
from urllib.parse import quote

from asgiref.sync import sync_to_async
from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_serializer, inline_serializer
from rest_framework import serializers
from rest_framework.views import APIView

from agents.authentication import Credential, tenant_agent_aget
from agents.runtime import Action
from agents.selectors import DEVELOPMENT, PRODUCTION, agent_spec_aget
from config import db
from config.api.endpoints import api_endpoint, json_body, json_response, per_user_rate_limit
from config.api.pagination import page_body, parse_limit
from config.api.ratelimit import interact_rate_limit_hit
from config.api.schema import PAGE_PARAMS, error_responses
from config.api.sse import PING, event_stream_response, sse_event
from config.api.validation import closed_object
from conversations import selectors
from conversations.api.serializers import MAX_TEXT, StrictCharField
from conversations.api.v2 import (
    AGENT_PARAM,
    CONVERSATION_PARAM,
    SCOPE,
    TENANT_PARAM,
    ConversationOutputSerializer,
    MessageOutputSerializer,
    ReplyText,
    conversation_body,
    message_body,
)
from conversations.lease import ConversationKey
from conversations.models import Conversation
from conversations.services import V2_PLATFORM
from conversations.turns import RunningTurn, TurnRequest, turn_start

FILE_REF_MAX = 32  # a file_ref is a StoredFile id (`file_…`)


@extend_schema_serializer(component_name="MessageCreate")
class MessageInputSerializer(serializers.Serializer):
    content = StrictCharField(allow_blank=True, trim_whitespace=False, max_length=MAX_TEXT,
                              help_text="The user's text, up to 4,000 characters; may be empty when files are sent")
    files = serializers.ListField(child=StrictCharField(max_length=FILE_REF_MAX), required=False, default=list,
                                  max_length=100, help_text="file_refs of files uploaded to this conversation")

    def validate(self, attrs):
        if not attrs["content"].strip() and not attrs["files"]:
            raise serializers.ValidationError({"content": ["Send some content, or files, or both."]})
        attrs["files"] = list(dict.fromkeys(attrs["files"]))  # a ref named twice is attached once
        return attrs


def download_path(tenant: str, agent_id: str, conversation_id: str, file_ref: str) -> str:
    return (f"/tenants/{quote(tenant, safe='')}/api/v2/agents/{quote(agent_id, safe='')}/conversations/"
            f"{quote(conversation_id, safe='')}/files/download/?file_ref={quote(file_ref, safe='')}")


def _files_checked(conversation_id: str, file_refs: list[str]) -> list:
    from files.services import file_refs_check  # the files app's (it validates each ref: 404 for another's)

    return file_refs_check(conversation_id=conversation_id, file_refs=file_refs)


async def _action(body: dict, *, tenant: str, agent_id: str, conversation_id: str) -> Action:
    """A text action for content; for files alone a `media` action of the first file, as v1's media action with
    the file named: `url` (its download path on this server), `mimeType`, `fileRef` and `name` — what the engine
    keeps in `last_media`. Every ref is checked first (404 for one that is not of this conversation)."""
    stored = []
    if body["files"]:
        stored = await sync_to_async(db.released(_files_checked))(conversation_id, body["files"])
    if body["content"].strip():
        return Action(type="text", payload=body["content"])
    first = stored[0]
    return Action(type="media", payload={
        "url": download_path(tenant, agent_id, conversation_id, first.id), "mimeType": first.mime_type,
        "fileRef": first.id, "name": first.name})


async def v2_turn_request(request, credential: Credential, tenant: str, aid: str, cid: str) -> TurnRequest:
    """Scope, body, conversation, version, the per-(agent, conversation) rate limit, files → the turn to run."""
    agent = await tenant_agent_aget(credential, tenant, aid)
    body = closed_object(MessageInputSerializer, json_body(request))
    conversation = await selectors.conversation_v2_aget(agent=agent, conversation_id=cid)
    version = DEVELOPMENT
    if credential.kind == "project" and agent.production_version_id is not None:
        version = PRODUCTION
    spec, version_id = await agent_spec_aget(project=agent, version=version)
    await interact_rate_limit_hit(request, project_id=agent.id, user_key=conversation.id,
                                  per_minute=spec.rate_limit_per_minute)
    action = await _action(body, tenant=tenant, agent_id=agent.id, conversation_id=conversation.id)
    return TurnRequest(project=agent, key=ConversationKey(project_id=agent.id, conversation_id=conversation.id),
                       action=action, spec=spec, version_id=version_id, platform=V2_PLATFORM,
                       files=tuple(body["files"]))


async def _conversation_after(turn_request: TurnRequest) -> dict:
    conversation = await sync_to_async(db.released(Conversation.objects.filter(
        id=turn_request.key.conversation_id).first))()
    return conversation_body(conversation)


async def _turn_messages(turn_request: TurnRequest, turn: RunningTurn) -> list[dict]:
    messages = await selectors.turn_messages_aget(conversation_id=turn_request.key.conversation_id, turn_id=turn.id)
    return [message_body(message) for message in messages]


# --- the handlers

async def messages_list(request, credential, tenant: str, aid: str, cid: str):
    agent = await tenant_agent_aget(credential, tenant, aid)
    conversation = await selectors.conversation_v2_aget(agent=agent, conversation_id=cid)
    page = await sync_to_async(db.released(selectors.messages_page))(
        conversation=conversation, limit=parse_limit(request.GET.get("limit")), cursor=request.GET.get("next"))
    return json_response(page_body(page, [message_body(message) for message in page.items]))


@per_user_rate_limit
async def message_post(request, credential, tenant: str, aid: str, cid: str):
    turn_request = await v2_turn_request(request, credential, tenant, aid, cid)
    turn = await turn_start(request=turn_request)
    async for _event in turn.follow():  # the reply is stored before the turn's last event
        pass
    return json_response({"conversation": await _conversation_after(turn_request),
                          "messages": await _turn_messages(turn_request, turn)})


def stream_events(turn_request: TurnRequest, turn: RunningTurn):
    """The turn as v2 SSE: `event: delta` for its text, `event: trace` for the other traces (a model reply's
    `completion-start` is what the deltas already say), `: ping` when quiet, then `event: message` with the stored
    agent message and `data: [DONE]`. The turn runs in its own task: a client that leaves stops only this
    generator, and the turn still ends and stores its reply."""
    async def body():
        reply = ReplyText()
        async for event in turn.follow(idle=settings.CONDUET_SSE_PING_SECONDS):
            if event is None:
                yield PING
                continue
            if event.done:
                break
            delta = reply.feed(event.data, event.part)
            event_id = f"{turn.id}:{event.seq}"
            if delta:
                yield sse_event({"delta": delta}, id=event_id, event="delta")
            elif delta is None:
                yield sse_event(event.data, id=event_id, event="trace")
        messages = await _turn_messages(turn_request, turn)
        agent_messages = [message for message in messages if message["role"] == "agent"]
        if agent_messages:
            yield sse_event(agent_messages[-1], event="message")
        yield sse_event("[DONE]")

    return event_stream_response(body())


@per_user_rate_limit
async def message_stream(request, credential, tenant: str, aid: str, cid: str):
    turn_request = await v2_turn_request(request, credential, tenant, aid, cid)
    return stream_events(turn_request, await turn_start(request=turn_request))


# --- documentation of the paths (drf-spectacular reads DRF views; these are never routed)

TURN_DESCRIPTION = (
    "Runs one turn of the agent: `content` as a text action (with `files` attached to the user message), or, with "
    "files and no content, a `media` action of the first file (`{url: its download path, mimeType, fileRef, name}`, "
    "which the agent sees as `last_media`). A developer token runs the agent's `development` version; a server key "
    "its `production` version (`development` while nothing has been published). Rate-limited per (agent, "
    "conversation) at that version's `settings.rateLimit.perMinute` (default 60). 404 for a file_ref that is not "
    "of this conversation; 409 when another turn of the conversation still runs after a 10 s wait. ")
TURN_RESULT = inline_serializer("MessageTurn", {
    "conversation": ConversationOutputSerializer(),
    "messages": MessageOutputSerializer(many=True, help_text="The user message, then the agent message"),
})
SSE_RESPONSE = {(200, "text/event-stream"): OpenApiResponse(description=(
    '`event: delta` + `data: {"delta": "…"}` for the reply\'s text (the deltas concatenate to the agent message\'s '
    "`content`); `event: trace` + a trace object for every other trace (tool calls, choices, knowledge, data "
    "frames, an error that ended the turn); `: ping` every 15 s while quiet; then `event: message` with the stored "
    "agent Message; then `data: [DONE]`. Delta and trace events have an `id: <turnId>:<seq>`."))}


class ConversationMessagesApi(APIView):
    @extend_schema(operation_id="v2_message_list", summary="The conversation's messages, oldest first",
                   description=f"Keyset pages in the conversation's order (each message's sequence number): new "
                               f"messages always come after the last page. {SCOPE}",
                   parameters=[TENANT_PARAM, AGENT_PARAM, CONVERSATION_PARAM, *PAGE_PARAMS],
                   responses={200: inline_serializer("MessageList", {
                       "data": MessageOutputSerializer(many=True), "next": serializers.CharField(allow_null=True),
                       "has_more": serializers.BooleanField()}), **error_responses(400, 401, 403, 404, 429)})
    def get(self, request, tenant: str, aid: str, cid: str):
        """Documentation only."""

    @extend_schema(operation_id="v2_message_create", summary="Send a message and wait for the agent's reply",
                   description=TURN_DESCRIPTION + SCOPE, parameters=[TENANT_PARAM, AGENT_PARAM, CONVERSATION_PARAM],
                   request=MessageInputSerializer,
                   responses={200: TURN_RESULT, **error_responses(400, 401, 403, 404, 409, 413, 415, 429)})
    def post(self, request, tenant: str, aid: str, cid: str):
        """Documentation only."""


class ConversationStreamApi(APIView):
    @extend_schema(operation_id="v2_message_stream", summary="Send a message; the reply streams as Server-Sent Events",
                   description=TURN_DESCRIPTION + "A client that leaves does not stop the turn: it runs to its end "
                               "(bounded by the version's turn timeout) and its reply is stored, to be read from "
                               "the messages' list. Errors before the stream begins are plain JSON. " + SCOPE,
                   parameters=[TENANT_PARAM, AGENT_PARAM, CONVERSATION_PARAM], request=MessageInputSerializer,
                   responses={**SSE_RESPONSE, **error_responses(400, 401, 403, 404, 409, 413, 415, 429)})
    def post(self, request, tenant: str, aid: str, cid: str):
        """Documentation only."""


messages_view = api_endpoint(GET=messages_list, POST=message_post, doc=ConversationMessagesApi)
stream_view = api_endpoint(POST=message_stream, doc=ConversationStreamApi)
