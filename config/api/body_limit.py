"""A cap on request bodies under /api/ and /tenants/, applied before Django reads them.

Django's ASGI handler spools a whole body to a temporary file before any view runs, and a body sent without
Content-Length (`Transfer-Encoding: chunked`) cannot be refused by length: without this, a client could make every
process write gigabytes to disk before hearing 413. The cap is the largest body an endpoint takes: a knowledge-base
upload plus its multipart framing everywhere, and on the v2 files upload path only, CONDUET_FILE_MAX_COUNT files of
CONDUET_FILE_MAX_BYTES (a quarter of a gigabyte by default, which no other endpoint needs to accept). The views apply
their own, smaller limits (1 MiB of JSON, a file's size) with their own messages."""
import re

from django.conf import settings

from config.api.errors import ErrorCode, error_body
from config.api.middleware import is_api_path

MULTIPART_SLACK = 1024 * 1024  # the multipart framing and the other fields of an upload
PART_SLACK = 16 * 1024  # the headers of each part of a multi-file upload


class BodyTooLarge(Exception):
    pass


# POST …/agents/{aid}/conversations/{cid}/files (files/api/urls.py)
FILES_UPLOAD_PATH = re.compile(r"^/tenants/[^/]+/api/v2/agents/[^/]+/conversations/[^/]+/files/?$")


def body_limit(path: str = "") -> int:
    limit = max(settings.DATA_UPLOAD_MAX_MEMORY_SIZE, settings.CONDUET_KB_MAX_DOCUMENT_BYTES + MULTIPART_SLACK)
    if FILES_UPLOAD_PATH.match(path):
        files = settings.CONDUET_FILE_MAX_COUNT * (settings.CONDUET_FILE_MAX_BYTES + PART_SLACK)
        limit = max(limit, files + MULTIPART_SLACK)
    return limit


async def _refuse(send, limit: int) -> None:
    import json

    body = json.dumps(error_body(f"Request body is larger than the largest this server takes ({limit} bytes).",
                                 ErrorCode.PAYLOAD_TOO_LARGE)).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


def twisted_form_parsing_off() -> None:
    """Twisted, under daphne, parses every POST body sent as multipart/form-data (with a Content-Length) into its
    `request.args` before daphne hands the request on: the whole body read into memory and through the email
    parser — a full files upload held whole, several times over — and a body that parser rejects answered with a
    bare `400` and no JSON. Daphne never reads those args (Django parses the body itself, streaming), so the parsing
    is switched off on daphne's request class. Called by config/asgi.py, where the application is built."""
    try:
        from daphne.http_protocol import WebRequest
    except ImportError:  # another ASGI server
        return
    if getattr(WebRequest, "conduet_form_parsing_off", False):
        return
    original = WebRequest.__init__

    def __init__(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self._parsePOSTFormSubmission = False

    WebRequest.__init__ = __init__
    WebRequest.conduet_form_parsing_off = True


class BodyLimit:
    """ASGI middleware: 413 at once for a declared length over the cap, and as soon as a chunked body passes it."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not is_api_path(scope.get("path", "")):
            return await self.app(scope, receive, send)
        limit = body_limit(scope.get("path", ""))
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return await _refuse(send, limit)
        received = 0
        started = False

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge
            return message

        async def watched_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, watched_send)
        except BodyTooLarge:
            if not started:
                await _refuse(send, limit)
