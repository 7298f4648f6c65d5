"""Server-Sent Events for async views: event formatting, the 15 s `: ping` keepalive, and the response itself."""
import json
from collections.abc import AsyncIterator

from django.http import StreamingHttpResponse

PING = ": ping\n\n"
DONE = "[DONE]"  # the data of the last event of a stream


def sse_event(data, *, id: str | None = None, event: str | None = None) -> str:
    """One event; `data` that is not a str is sent as compact JSON on one line."""
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    lines = []
    if id is not None:
        lines.append(f"id: {id}")
    if event is not None:
        lines.append(f"event: {event}")
    lines.extend(f"data: {line}" for line in text.split("\n"))
    return "\n".join(lines) + "\n\n"


def event_stream_response(events: AsyncIterator[str], *, status: int = 200) -> StreamingHttpResponse:
    response = StreamingHttpResponse(events, content_type="text/event-stream", status=status)
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # tells nginx-style proxies not to buffer the stream
    return response
