"""The ASGI body cap (config/api/body_limit.py): a declared or chunked body over it is 413 before the server has
read it all, and bodies within it, or outside the API, pass untouched."""
import json

import httpx
import pytest

from config.api.body_limit import BodyLimit, body_limit

PIECE = 256 * 1024


class Reader:
    """An ASGI app that reads its whole body, as Django's handler does, then says how much it read."""

    def __init__(self):
        self.read = 0

    async def __call__(self, scope, receive, send):
        while True:
            message = await receive()
            self.read += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(self.read).encode()})


async def call(app, *, path: str, pieces: int, declared: int | None = None):
    sent, responses = [0], []
    headers = [(b"content-length", str(declared).encode())] if declared is not None else []

    async def receive():
        sent[0] += 1
        return {"type": "http.request", "body": b"x" * PIECE, "more_body": sent[0] < pieces}

    async def send(message):
        responses.append(message)

    await BodyLimit(app)({"type": "http", "path": path, "method": "POST", "headers": headers}, receive, send)
    return responses[0]["status"], responses[1]["body"], sent[0]


async def test_a_chunked_body_over_the_cap_is_413_before_it_is_all_read(settings):
    settings.CONDUET_KB_MAX_DOCUMENT_BYTES = 1024 * 1024
    pieces = 40  # 10 MiB against a cap of 2 MiB
    status, body, received = await call(Reader(), path="/api/v1/knowledge-base/upload", pieces=pieces)

    assert status == 413
    assert json.loads(body)["code"] == "PAYLOAD_TOO_LARGE"
    assert received == body_limit() // PIECE + 1  # it stopped reading at the piece that passed the cap


async def test_a_declared_length_over_the_cap_is_413_without_reading(settings):
    settings.CONDUET_KB_MAX_DOCUMENT_BYTES = 1024 * 1024
    status, _body, received = await call(Reader(), path="/api/v1/knowledge-base/upload", pieces=40,
                                         declared=40 * PIECE)

    assert (status, received) == (413, 0)


@pytest.mark.parametrize("path", ["/api/v1/knowledge-base/upload", "/admin/agents/"])
async def test_bodies_within_the_cap_or_outside_the_api_pass(settings, path):
    settings.CONDUET_KB_MAX_DOCUMENT_BYTES = 1024 * 1024
    pieces = 4 if path.startswith("/api/") else 40
    status, body, _ = await call(Reader(), path=path, pieces=pieces)

    assert (status, int(body)) == (200, pieces * PIECE)


@pytest.mark.server
def test_daphne_refuses_a_huge_chunked_upload(daphne_url, project_key):
    """Daphne (Twisted) reads a whole request before the application sees it, so the bytes did reach this process:
    what the cap spares is Django spooling and parsing them again (a proxy's body limit is the first line)."""
    def body():
        yield b'--x\r\nContent-Disposition: form-data; name="file"; filename="big.txt"\r\n'
        yield b"Content-Type: text/plain\r\n\r\n"
        for _ in range(26 * 4):  # 26 MiB, past the 20 MiB upload limit and its slack
            yield b"x" * PIECE
        yield b"\r\n--x--\r\n"

    with httpx.Client(timeout=60) as client:
        response = client.post(f"{daphne_url}/api/v1/knowledge-base/upload", content=body(),
                               headers={"Authorization": f"Bearer {project_key}",
                                        "Content-Type": "multipart/form-data; boundary=x"})
    assert response.status_code == 413, response.text
    assert response.json()["code"] == "PAYLOAD_TOO_LARGE"
    assert "the largest this server takes" in response.json()["error"]  # the cap answered, not the view
