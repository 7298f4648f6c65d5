"""A fake OpenAI-compatible embeddings endpoint on 127.0.0.1: a real HTTP/1.1 server answering `POST /v1/embeddings`
(also without /v1) with deterministic vectors that carry some meaning, so that semantic search finds what lexical
search misses.

    with EmbeddingsServer() as server:             # or the `embeddings_server` fixture
        settings.CONDUET_EMBEDDINGS_BASE_URL = server.url   # or the variables of server.env()
        server.script(Failure(500), Failure(500))  # the next two requests fail, then it answers again
        server.script(Stall())                     # the next request gets no answer until the client leaves

A text's vector (`embed(text)`, `DIMENSIONS` = 256, unit length) sums, for each word, signed hashed features of its
normalised stem (lowercase, a few English suffixes stripped, stop words dropped) — and, for a word in the small
`CONCEPTS` table, of its concept instead: "reimbursement", "refund" and "money back" are one feature, as are "parcel"
and "package". Texts sharing words or concepts are close; others are near-orthogonal.

`server.requests` lists each request's JSON body (`.inputs`, `.model`); `server.fast = True` (or `record=False`)
records nothing, for a benchmark. The response has `usage.prompt_tokens` (one per word) and honours
`encoding_format` ("float", or "base64" little-endian float32 as the SDK asks by default).

Standalone, for a benchmark: `python -m tests.fakes.embeddings_server --port 8090`.
"""
import argparse
import base64
import contextlib
import functools
import hashlib
import json
import math
import re
import struct
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

MODEL = "fake-embedding"
DIMENSIONS = 256

STOP_WORDS = frozenset(
    "a an and are as at be been but by can could do does did for from had has have how i if in into is it its me "
    "my no not of on or our so than that the their them then there these they this to was we were what when where "
    "which who why will with would you your yours am any about after before get got just please should".split())

# Words of one concept share their feature: a word belongs to the concept whose entry is the word itself, or is
# the longest entry of 4+ letters that begins the word ("reimburs" → reimbursed, reimbursement).
_CONCEPT_WORDS = {
    "refund": "refund reimburs repay money compensat chargeback",
    "package": "package parcel shipment deliveri consignment",
    "ship": "ship deliver dispatch courier postage",
    "return": "return exchang send-back",
    "password": "password passcod passphras credential login log-in sign-in signin",
    "reset": "reset forgot forgotten recover restor",
    "open": "open hour schedul week weekday weekend saturday sunday monday friday",
    "cost": "cost price fee charg pay paid expens",
    "invoice": "invoic receipt bill",
    "delete": "delet remov eras terminat",
    "account": "account profil membership",
    "broken": "broken damag defect faulti malfunction crack",
    "warranty": "warranti guarante",
    "twofactor": "2fa two-factor authent authenticator otp verif",
    "contact": "contact phone telephon email reach",
    "discount": "discount coupon promo voucher",
    "subscription": "subscript plan renew",
    "late": "late delay slow lost missing",
    "abroad": "abroad intern oversea countri foreign",
    "privacy": "data privaci gdpr personal",
}
CONCEPTS = {word: concept for concept, words in _CONCEPT_WORDS.items() for word in words.split()}
_PREFIXES = sorted((word for word in CONCEPTS if len(word) >= 4), key=len, reverse=True)
_SUFFIXES = ("ments", "ment", "ings", "ing", "ied", "ies", "ed", "es", "s", "ly")


def _stem(word: str) -> str:
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)]
    return word


def _concept(word: str) -> str | None:
    for candidate in (word, word[:-1] if word.endswith("s") else word):
        if candidate in CONCEPTS:
            return CONCEPTS[candidate]
    return next((CONCEPTS[prefix] for prefix in _PREFIXES if word.startswith(prefix)), None)


@functools.lru_cache(maxsize=65536)
def _feature(word: str) -> tuple[tuple[int, float], ...]:
    """The signed hashed features of one word (two, so that collisions rarely cancel a word out)."""
    concept = _concept(word)
    key = f"concept:{concept}" if concept else f"stem:{_stem(word)}"
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return tuple((int.from_bytes(digest[i:i + 2], "little") % DIMENSIONS, 1.0 if digest[i + 2] & 1 else -1.0)
                 for i in (0, 4))


def words(text: str) -> list[str]:
    return [w for w in re.findall(r"[a-z0-9]+(?:-[a-z0-9]+)*", text.lower()) if w not in STOP_WORDS]


def embed(text: str) -> list[float]:
    """The deterministic unit vector of `text`."""
    vector = [0.0] * DIMENSIONS
    for word in words(text):
        for index, sign in _feature(word):
            vector[index] += sign
    norm = math.sqrt(sum(x * x for x in vector))
    if not norm:  # no content words: a fixed direction of its own
        vector[0], norm = 1.0, 1.0
    return [x / norm for x in vector]


def _folded(vector: list[float], dimensions: int) -> list[float]:
    folded = [0.0] * dimensions
    for i, x in enumerate(vector):
        folded[i % dimensions] += x
    norm = math.sqrt(sum(x * x for x in folded))
    if not norm:
        folded[0], norm = 1.0, 1.0
    return [x / norm for x in folded]


@dataclass(frozen=True)
class Failure:
    status: int = 500
    message: str = "The fake embeddings endpoint failed."
    retry_after_ms: int | None = None  # OpenAI's `retry-after-ms` header (the SDK waits that long, not its backoff)


@dataclass(frozen=True)
class Stall:
    """No answer until the client leaves (its timeout) or the server stops."""


@dataclass(frozen=True)
class Wrong:
    """A 200 whose vectors are unusable: `count` vectors instead of one per input (None: as many), of mixed
    dimensions when `ragged`."""
    count: int | None = None
    ragged: bool = False


@dataclass(eq=False)
class EmbeddingsRequest:
    path: str
    headers: dict[str, str]
    body: Any
    received_at: float = field(default_factory=time.time)

    @property
    def inputs(self) -> list[str]:
        value = (self.body or {}).get("input", [])
        return [value] if isinstance(value, str) else list(value)

    @property
    def model(self) -> str | None:
        return (self.body or {}).get("model")


class EmbeddingsServer:
    """`with EmbeddingsServer() as server:` serves on `server.url` (`http://127.0.0.1:<port>/v1`)."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, record: bool = True, delay: float = 0.0):
        self.host, self._port = host, port
        self.record = record
        self.fast = not record
        self.delay = delay  # seconds before each answer
        self.dimensions = DIMENSIONS  # fewer: each vector folded onto that many, unit length again (another "model")
        self.requests: list[EmbeddingsRequest] = []
        self._script: deque = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def env(self, model: str = MODEL) -> dict[str, str]:
        """The CONDUET_EMBEDDINGS_* variables of a process whose embeddings endpoint is this server."""
        return {"CONDUET_EMBEDDINGS_BASE_URL": self.url, "CONDUET_EMBEDDINGS_MODEL": model,
                "CONDUET_EMBEDDINGS_API_KEY": "sk-fake-embeddings"}

    def configure(self, settings, model: str = MODEL, **extra) -> "EmbeddingsServer":
        """Points Django's settings (pytest-django's `settings` fixture) at this server."""
        for name, value in {**self.env(model), **extra}.items():
            setattr(settings, name, value)
        return self

    def script(self, *answers) -> "EmbeddingsServer":
        """Queues failures (`Failure`, `Stall`, `Wrong`), one per request to come; then it answers again."""
        with self._lock:
            self._script.extend(answers)
        return self

    @property
    def inputs(self) -> list[str]:
        """Every text received, in order."""
        return [text for request in self.requests for text in request.inputs]

    def start(self) -> "EmbeddingsServer":
        server = self

        class Handler(_Handler):
            owner = server

        self._httpd = ThreadingHTTPServer((self.host, self._port), Handler)
        self._httpd.daemon_threads = True
        self._port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="embeddings-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> "EmbeddingsServer":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def _next(self):
        with self._lock:
            return self._script.popleft() if self._script else None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's pool expects
    # The headers and the body go out in two writes: with Nagle's algorithm the second waits for the client's
    # delayed ACK of the first, 40 ms on Linux — every request of a keep-alive connection would take that long.
    disable_nagle_algorithm = True
    owner: EmbeddingsServer

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        if self.path.split("?")[0].rstrip("/") in ("/v1/models", "/models"):
            self._json(200, {"object": "list", "data": [{"id": MODEL, "object": "model", "created": 0,
                                                         "owned_by": "conduet-tests"}]})
        else:
            self._json(404, _error("Not found.", "not_found"))

    def do_POST(self) -> None:
        owner = self.owner
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        if self.path.split("?")[0].rstrip("/") not in ("/v1/embeddings", "/embeddings"):
            self._json(404, _error("Not found.", "not_found"))
            return
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if owner.record and not owner.fast:
            with owner._lock:
                owner.requests.append(EmbeddingsRequest(self.path, {k.lower(): v for k, v in self.headers.items()},
                                                        body))
        if owner.delay:
            time.sleep(owner.delay)
        answer = owner._next()
        if isinstance(answer, Failure):
            headers = {} if answer.retry_after_ms is None else {"retry-after-ms": str(answer.retry_after_ms)}
            self._json(answer.status, _error(answer.message, "server_error"), headers)
            return
        if isinstance(answer, Stall):
            while not owner._stopping.wait(0.05):
                if _closed(self.connection):
                    break
            self.close_connection = True
            return
        inputs = body.get("input") if isinstance(body, dict) else None
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not inputs or not all(isinstance(t, str) and t for t in inputs):
            self._json(400, _error("'input' must be a non-empty string or a list of non-empty strings.",
                                   "invalid_request_error"))
            return
        vectors = [embed(text) for text in inputs]
        if owner.dimensions != DIMENSIONS:
            vectors = [_folded(vector, owner.dimensions) for vector in vectors]
        if isinstance(answer, Wrong):
            vectors = vectors[:answer.count] if answer.count is not None else vectors
            if answer.ragged and vectors:
                vectors[-1] = vectors[-1][:-1]
        as_base64 = body.get("encoding_format") == "base64"
        data = [{"object": "embedding", "index": i,
                 "embedding": base64.b64encode(struct.pack(f"<{len(v)}f", *v)).decode() if as_base64 else v}
                for i, v in enumerate(vectors)]
        tokens = sum(max(1, len(text.split())) for text in inputs)
        self._json(200, {"object": "list", "data": data, "model": body.get("model") or MODEL,
                         "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    def _json(self, status: int, payload, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


def _closed(sock) -> bool:
    """Whether the client has closed the connection (a read would return EOF)."""
    import select

    poller = select.poll()  # not select(): a descriptor past 1023 is out of its range
    poller.register(sock, select.POLLIN)
    if not poller.poll(0):
        return False
    with contextlib.suppress(OSError):
        return sock.recv(1, 2) == b""  # MSG_PEEK
    return True


def _error(message: str, kind: str) -> dict:
    return {"error": {"message": message, "type": kind, "param": None, "code": kind}}


@pytest.fixture
def embeddings_server(settings):
    """A running `EmbeddingsServer` that Django's settings point at (retries quick: no backoff waits)."""
    with EmbeddingsServer() as server:
        server.configure(settings, CONDUET_EMBEDDINGS_MAX_RETRIES=2, CONDUET_EMBEDDINGS_TIMEOUT_SECONDS=5.0)
        yield server


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A fake OpenAI-compatible embeddings endpoint for benchmarks.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    args = parser.parse_args(argv)
    server = EmbeddingsServer(host=args.host, port=args.port, record=False).start()
    print(f"fake embeddings on {server.url}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server._stopping.wait()


if __name__ == "__main__":
    main()
