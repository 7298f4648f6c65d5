"""POST /api/v1/conversations/{userId}/interact/stream: the turn as Server-Sent Events.

The turn runs in a worker thread that pushes each trace onto an asyncio queue the moment the engine yields it; the
response drains the queue with `: ping` keepalives. The worker runs the turn to its end even if the client goes
away, and stores the agent message itself. Errors before the first event (auth, validation, 409) are plain JSON
errors; a fault after the stream began is an `error` event, then `[DONE]`."""
import asyncio
import logging
import threading

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections, connections
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import NotAuthenticated, UnsupportedMediaType
from rest_framework.views import APIView

from agents.authentication import credential_from_header
from config.api.errors import ErrorCode, describe_exception, error_body, error_response
from config.api.parsers import parse_json_body
from config.api.schema import error_responses
from config.api.sse import DONE, drain_with_pings, event_stream_response, sse_event
from conversations.api.interact import interact_request_build
from conversations.api.serializers import InteractInputSerializer
from conversations.api.v1 import PROJECT_HEADER, USER_ID_PARAM
from conversations.services import turn_begin

log = logging.getLogger("conduet.stream")
_END = object()


def _parse_body(request):
    if request.content_type != "application/json" and request.body:
        raise UnsupportedMediaType(request.content_type)
    return parse_json_body(request.body)


def _prepare(request, user_id: str):
    credential = credential_from_header(request.headers.get("Authorization"))
    if credential is None:
        raise NotAuthenticated("Authentication credentials were not provided.")
    return interact_request_build(http_request=request, credential=credential, user_id=user_id,
                                  data=_parse_body(request))


def _run_turn_in_thread(turn_request, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue) -> None:
    """The worker: begins the turn (or reports why not), streams its traces, stores the result."""

    def put(item) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, item)

    try:
        try:
            turn = turn_begin(request=turn_request)
        except Exception as exc:
            put(("rejected", exc))
            return
        put(("started", turn.id))
        seq = 0
        try:
            for trace in turn.run():
                seq += 1
                put(sse_event(trace, id=f"{turn.id}:{seq}"))
            turn.finish()
        except Exception as exc:
            log.exception("Streamed turn %s failed", turn.id)
            message, code, _details, _headers = describe_exception(exc)
            seq += 1
            put(sse_event({"type": "error", "payload": error_body(message, code)}, id=f"{turn.id}:{seq}"))
            try:
                turn.fail()
            except Exception:
                log.exception("Could not store the failed turn %s", turn.id)
        put(sse_event(DONE, id=f"{turn.id}:{seq + 1}"))
    finally:
        put(_END)
        connections.close_all()  # this thread's connections go back to the pool


@csrf_exempt  # authenticated by Bearer key, never by a session cookie
async def conversation_interact_stream(request, user_id: str):
    if request.method != "POST":
        return error_response(f'Method "{request.method}" not allowed.', ErrorCode.METHOD_NOT_ALLOWED,
                              headers={"Allow": "POST"})
    try:
        turn_request = await sync_to_async(_prepare)(request, user_id)
    except Exception as exc:
        message, code, details, headers = describe_exception(exc)
        return error_response(message, code, details=details, headers=headers)
    finally:
        await sync_to_async(close_old_connections)()

    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    threading.Thread(target=_run_turn_in_thread, args=(turn_request, loop, queue), daemon=True,
                     name="conduet-turn").start()
    kind, value = await queue.get()
    if kind == "rejected":
        message, code, details, headers = describe_exception(value)
        return error_response(message, code, details=details, headers=headers)

    async def events():
        try:
            async for chunk in drain_with_pings(queue, ping_seconds=settings.CONDUET_SSE_PING_SECONDS, end=_END):
                yield chunk
        except asyncio.CancelledError:
            # The client went away; the worker thread finishes and stores the turn regardless.
            log.info("Client left the stream of turn %s; the turn runs to its end", value)
            raise

    return event_stream_response(events())


class ConversationInteractStreamApi(APIView):
    """Documentation only: the handler is the async `conversation_interact_stream` (DRF views are sync)."""

    @extend_schema(
        operation_id="conversation_interact_stream",
        summary="Run one turn, streaming its traces as Server-Sent Events",
        description="Each trace is `id: <turnId>:<seq>` + `data: <trace JSON>`, flushed as produced; "
                    "`: ping` every 15 s; the last event is `data: [DONE]`. A fault after the stream began is "
                    '`data: {"type": "error", "payload": {"error", "code"}}` then `[DONE]`.',
        parameters=[USER_ID_PARAM, PROJECT_HEADER],
        request=InteractInputSerializer,
        responses={(200, "text/event-stream"): {"description": "Events whose data is a trace object, then [DONE]"},
                   **error_responses(400, 401, 403, 404, 409, 413, 415, 429)},
    )
    def post(self, request, user_id: str):
        """Never routed: the URL points at the async function."""


conversation_interact_stream.cls = ConversationInteractStreamApi  # lets drf-spectacular document the async view
conversation_interact_stream.initkwargs = {}
