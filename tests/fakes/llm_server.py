"""A fake OpenAI-compatible model on 127.0.0.1: a real HTTP/1.1 server speaking the chat-completions wire protocol,
scripted answer by answer, that records what it received and when it wrote. An asyncio server in a background
thread: one open stream costs a coroutine, so a benchmark can hold thousands.

    with LlmServer() as server:                    # or the `llm_server` fixture
        settings.CONDUET_LLM_BASE_URL = server.url  # http://127.0.0.1:<port>/v1 (also served without /v1)
        server.script(Reply(text="Hello there", chunk_size=3),
                      Reply(tool_calls=[Call("lookup", {"email": "a@b.co"})]),
                      Failure(status=429, retry_after=0.5), Failure(status=500), Stall(after_chunks=2))

Each `POST …/chat/completions` takes the next scripted answer (one per request, so an SDK's retry takes the next
one); with none left it answers `server.default`, or, when that is None, "You said: <the last user message>".
- `Reply(text, tool_calls, chunk_size, pace, first_token_delay, usage, …)`: with `"stream": true`, an SSE stream
  (`text/event-stream`, chunked): a role chunk at once, then after `first_token_delay` the text in `chunk_size`
  pieces, each `pace` seconds apart; then the tool calls, each opened by a delta with its index, id, name and the
  first piece of its arguments, later pieces carrying only the index (several calls interleave unless
  `interleave=False`); a chunk with `finish_reason`; a usage chunk (`choices: []`) when the request asked for one
  (`stream_options.include_usage`) unless `usage=False`; `data: [DONE]`. Without `stream`, one `chat.completion`.
  `Reply.tokens(n)` is n one-token chunks.
- `Failure(status, message, retry_after, retry_after_ms, headers)`: that status with an OpenAI error body.
- `Stall(after_chunks)`: a stream that sends that many text chunks and then nothing, until the client leaves.
- `Drop(after_chunks)`: a stream whose connection is cut after that many chunks (no end of the chunked body).
- `Malformed(after_chunks, data)`: a stream with a `data:` line that is not JSON after that many chunks.
`pace` and `first_token_delay` default to the server's own (`LlmServer(pace=…, first_token_delay=…)`, attributes
that may be changed at any time).

`server.requests` lists an `LlmRequest` per request: the JSON `body` (`.messages`, `.model`), `received_at`,
`first_content_at` (time.time() when the first text or tool-call chunk was written), `chunk_times`, `completed` (the
whole answer was written) and `disconnected` (the client left first: a stop closed the upstream stream). The server
learns of a disconnect on its own time, so `request.wait_ended(timeout)` waits until it has finished with the
request before a test asserts on it.

Standalone, for a benchmark (answers every request with `--tokens` one-token chunks `--pace` s apart; records
nothing): `python -m tests.fakes.llm_server --port 8089 --tokens 50 --pace 0.02 [--first-token-delay 0.2]`.
"""
import argparse
import asyncio
import contextlib
import functools
import json
import multiprocessing
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import count, zip_longest
from typing import Any

import pytest

MODEL = "fake-model"  # what GET /v1/models lists; any name is accepted in a request


@dataclass(frozen=True)
class Call:
    """A tool call of a `Reply`; `arguments` is sent as JSON text (a str is sent as it is, valid JSON or not)."""

    name: str
    arguments: Mapping | str = field(default_factory=dict)
    id: str | None = None  # default: call_<n>

    def arguments_text(self) -> str:
        return self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments)


@dataclass(frozen=True)
class Reply:
    text: str = ""
    tool_calls: Sequence[Call] = ()
    chunk_size: int = 4  # characters per text chunk and per tool-call arguments fragment
    pace: float | None = None  # seconds between chunks (None: the server's)
    first_token_delay: float | None = None  # seconds before the first text or tool-call chunk (None: the server's)
    usage: bool = True  # send usage (when a stream asks for it with stream_options.include_usage)
    prompt_tokens: int | None = None  # default: ~4 characters a token of the request's messages
    completion_tokens: int | None = None  # default: the number of text and tool-call chunks
    finish_reason: str | None = None  # default: "tool_calls" when there are tool calls, else "stop"
    model: str | None = None  # default: the request's model
    interleave: bool = True  # parallel tool calls' fragments alternate, as some providers send them

    @classmethod
    def tokens(cls, n: int, **options) -> "Reply":
        """`n` chunks of one word each."""
        return cls(text="tok " * n, chunk_size=4, **options)

    def text_chunks(self) -> list[str]:
        return _pieces(self.text, self.chunk_size)


@dataclass(frozen=True)
class Failure:
    status: int = 500
    message: str = "The fake model failed."
    retry_after: float | None = None  # seconds, as a `Retry-After` header
    retry_after_ms: int | None = None  # as a `retry-after-ms` header (OpenAI's own)
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Stall:
    after_chunks: int = 0


@dataclass(frozen=True)
class Drop:
    after_chunks: int = 0


@dataclass(frozen=True)
class Malformed:
    after_chunks: int = 0
    data: str = '{"choices": [{"delta": {"content": "unfinished'


Answer = Reply | Failure | Stall | Drop | Malformed


@dataclass(eq=False)
class LlmRequest:
    method: str
    path: str
    headers: dict[str, str]  # names lowercased
    body: Any  # the JSON received (None if it was not JSON)
    received_at: float  # time.time()
    answer: Answer | None = None
    first_content_at: float | None = None  # time.time() when the first text or tool-call chunk was written
    chunk_times: list[float] = field(default_factory=list)  # time.time() of each text or tool-call chunk written
    completed: bool = False  # the whole answer was written
    disconnected: bool = False  # the client closed the connection before the end of the answer
    _ended: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def messages(self) -> list[dict]:
        return (self.body or {}).get("messages", [])

    @property
    def model(self) -> str | None:
        return (self.body or {}).get("model")

    def wait_ended(self, timeout: float = 5.0) -> bool:
        """Waits until the server is done with this request (answered, or the client left); False on timeout."""
        return self._ended.wait(timeout)


class LlmServer:
    """`with LlmServer() as server:` serves on `server.url` (`http://127.0.0.1:<port>/v1`) until the block ends."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, default: Reply | None = None, pace: float = 0.0,
                 first_token_delay: float = 0.0, record: bool = True, reuse_port: bool = False):
        self.host, self._port = host, port
        self.default = default
        self.pace = pace
        self.first_token_delay = first_token_delay
        self.record = record
        self.reuse_port = reuse_port  # several processes serve one port (the standalone --workers)
        self.requests: list[LlmRequest] = []
        self._script: deque[Answer] = deque()
        self._lock = threading.Lock()
        self._ids = count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[asyncio.Task] = set()

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        """The base URL to give an OpenAI client (`CONDUET_LLM_BASE_URL`)."""
        return f"http://{self.host}:{self.port}/v1"

    def env(self, model: str = MODEL) -> dict[str, str]:
        """The environment of a process whose model is this server (a daphne process of a test)."""
        return {"CONDUET_LLM_BASE_URL": self.url, "CONDUET_LLM_MODEL": model, "CONDUET_LLM_API_KEY": "sk-fake"}

    def script(self, *answers: Answer) -> "LlmServer":
        """Queues answers, one per request to come."""
        with self._lock:
            self._script.extend(answers)
        return self

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._script)

    # Running it

    def start(self) -> "LlmServer":
        ready = threading.Event()
        failure: list[BaseException] = []

        def run():
            try:
                asyncio.run(self.serve(ready=ready.set))
            except BaseException as exc:  # reported to start() when it happened before the server was ready
                failure.append(exc)
                ready.set()

        self._thread = threading.Thread(target=run, name="llm-server", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> "LlmServer":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    async def serve(self, ready=None) -> None:
        """Serves on the running loop until `stop()` (or until cancelled)."""
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        server = await asyncio.start_server(self._connection, self.host, self._port, backlog=4096,
                                            reuse_port=self.reuse_port or None)
        self._port = server.sockets[0].getsockname()[1]
        if ready:
            ready()
        try:
            await self._stopping.wait()
        finally:
            server.close()
            for task in list(self._connections):
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)

    # HTTP/1.1, as much as OpenAI clients use: keep-alive, Content-Length request bodies, chunked streams

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._connections.add(task)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                    request_line, *lines = head.decode("latin-1").split("\r\n")
                    method, path, _version = request_line.split(" ", 2)
                    headers = {}
                    for line in filter(None, lines):
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                    body = await reader.readexactly(int(headers.get("content-length") or 0))
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
                    return
                keep_alive = await self._respond(method, path, headers, body, reader, writer)
                if not keep_alive or headers.get("connection", "").lower() == "close":
                    return
        except ConnectionError:
            return
        except asyncio.CancelledError:  # the server stops; ending quietly (3.11 logs a cancelled handler as an error)
            return
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _respond(self, method: str, path: str, headers: dict, body: bytes, reader, writer) -> bool:
        route = path.split("?", 1)[0].rstrip("/")
        if method == "GET" and route in ("/v1/models", "/models"):
            await _send_json(writer, 200, {"object": "list", "data": [
                {"id": MODEL, "object": "model", "created": 0, "owned_by": "conduet-tests"}]})
            return True
        if method != "POST" or route not in ("/v1/chat/completions", "/chat/completions"):
            await _send_json(writer, 404, _error(f"No route {method} {route}.", "not_found"))
            return True
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        request = LlmRequest(method, path, headers, payload, time.time())
        if self.record:
            with self._lock:
                self.requests.append(request)
        try:
            if not isinstance(payload, dict) or not isinstance(payload.get("messages"), list):
                await _send_json(writer, 400, _error("The body must be a JSON object with messages.", "bad_request"))
                request.completed = True
                return True
            request.answer = answer = self._next_answer(payload)
            if isinstance(answer, Failure):
                await self._fail(writer, answer)
                request.completed = True
                return True
            if payload.get("stream"):
                return await self._stream(request, answer, payload, reader, writer)
            return await self._complete(request, answer, payload, reader, writer)
        except ConnectionError:
            request.disconnected = True
            return False
        finally:
            request._ended.set()

    def _next_answer(self, payload: dict) -> Answer:
        with self._lock:
            if self._script:
                return self._script.popleft()
        if self.default is not None:
            return self.default
        said = next((m.get("content") for m in reversed(payload["messages"])
                     if isinstance(m, dict) and m.get("role") == "user"), "")
        return Reply(text=f"You said: {said if isinstance(said, str) else json.dumps(said)}")

    async def _fail(self, writer, failure: Failure) -> None:
        headers = dict(failure.headers)
        if failure.retry_after is not None:
            headers["Retry-After"] = f"{failure.retry_after:g}"
        if failure.retry_after_ms is not None:
            headers["retry-after-ms"] = str(failure.retry_after_ms)
        kind = "rate_limit_exceeded" if failure.status == 429 else "server_error"
        await _send_json(writer, failure.status, _error(failure.message, kind), headers)

    async def _complete(self, request: LlmRequest, answer: Answer, payload: dict, reader, writer) -> bool:
        """A non-streamed answer: one `chat.completion` (a Stall never answers, a Drop closes the connection)."""
        if isinstance(answer, Stall):
            request.disconnected = await self._until_client_leaves(reader)
            return False
        if isinstance(answer, Drop):
            return False
        if isinstance(answer, Malformed):
            writer.write(_head(200, {"Content-Type": "application/json", "Content-Length": str(len(answer.data))})
                         + answer.data.encode())
            await writer.drain()
            request.completed = True
            return True
        await asyncio.sleep(self._first_delay(answer))
        calls = [_call_json(call, i) for i, call in enumerate(answer.tool_calls)]
        message = {"role": "assistant", "content": answer.text or None, "refusal": None}
        if calls:
            message["tool_calls"] = calls
        completion = {"id": f"chatcmpl-{next(self._ids)}", "object": "chat.completion", "created": int(time.time()),
                      "model": answer.model or payload.get("model") or MODEL, "system_fingerprint": None,
                      "choices": [{"index": 0, "message": message, "logprobs": None,
                                   "finish_reason": _finish_reason(answer)}]}
        if answer.usage:
            pieces = len(answer.text_chunks()) + sum(len(_pieces(c.arguments_text(), answer.chunk_size)) or 1
                                                     for c in answer.tool_calls)
            completion["usage"] = _usage(answer, payload, pieces)
        request.first_content_at = time.time()
        await _send_json(writer, 200, completion)
        request.completed = True
        return True

    async def _stream(self, request: LlmRequest, answer: Answer, payload: dict, reader, writer) -> bool:
        """An SSE stream of `chat.completion.chunk`s. While it is written, a read on the connection tells when the
        client leaves (EOF): an HTTP/1.1 client sends nothing more until the response ends, so anything that
        completes that read ends the stream."""
        chunk_id, created = f"chatcmpl-{next(self._ids)}", int(time.time())
        model = getattr(answer, "model", None) or payload.get("model") or MODEL
        with_usage = bool((payload.get("stream_options") or {}).get("include_usage"))

        # Written by hand around the parts that change, and cached for text: thousands of streams cost JSON time.
        envelope = (f'{{"id": "{chunk_id}", "object": "chat.completion.chunk", "created": {created}, '
                    f'"model": {json.dumps(model)}, "system_fingerprint": null, "choices": ')
        no_usage = ', "usage": null}' if with_usage else "}"

        def event(choices: str, usage: dict | None = None) -> bytes:
            return _sse(envelope + choices + (f', "usage": {json.dumps(usage)}}}' if usage else no_usage))

        def delta(content: dict, finish_reason: str | None = None) -> bytes:
            return event(json.dumps([{"index": 0, "delta": content, "logprobs": None,
                                      "finish_reason": finish_reason}]))

        writer.write(_head(200, {"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                 "Transfer-Encoding": "chunked"}) + _http_chunk(delta({"role": "assistant",
                                                                                       "content": ""})))
        await writer.drain()
        watcher = asyncio.ensure_future(_eof(reader))
        pace = self.pace if getattr(answer, "pace", None) is None else answer.pace
        try:
            if isinstance(answer, Reply):
                tokens = [event(_text_choices(piece)) for piece in answer.text_chunks()]
                tokens += [delta({"tool_calls": [fragment]}) for fragment in _tool_fragments(answer)]
            else:
                tokens = [event(_text_choices(f"word{i} ")) for i in range(answer.after_chunks)]
            for i, token in enumerate(tokens):
                if await _client_left(watcher, self._first_delay(answer) if i == 0 else pace):
                    request.disconnected = True
                    return False
                request.chunk_times.append(time.time())  # before the write: a client may read it at once
                request.first_content_at = request.first_content_at or request.chunk_times[-1]
                writer.write(_http_chunk(token))
                await writer.drain()
            if isinstance(answer, Stall):
                request.disconnected = await self._until_client_leaves(reader, watcher)
                return False
            if isinstance(answer, Drop):
                return False
            if isinstance(answer, Malformed):
                tail = _sse(answer.data) + _sse("[DONE]")
            else:
                tail = delta({}, _finish_reason(answer))
                if with_usage and answer.usage:
                    tail += event("[]", usage=_usage(answer, payload, len(tokens)))
                tail += _sse("[DONE]")
            if watcher.done():
                request.disconnected = True
                return False
            writer.write(_http_chunk(tail) + b"0\r\n\r\n")
            await writer.drain()
            request.completed = True
            return True
        finally:
            watcher.cancel()
            await asyncio.wait([watcher])  # its read must be over before the connection reads the next request

    async def _until_client_leaves(self, reader, watcher: asyncio.Future | None = None) -> bool:
        """Sends nothing until the client leaves (True) or the server stops (False)."""
        watcher = watcher or asyncio.ensure_future(_eof(reader))
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait([watcher, stopping], return_when=asyncio.FIRST_COMPLETED)
            return watcher.done()
        finally:
            stopping.cancel()
            watcher.cancel()
            await asyncio.wait([watcher, stopping])

    def _first_delay(self, answer: Answer) -> float:
        delay = getattr(answer, "first_token_delay", None)
        return self.first_token_delay if delay is None else delay


async def _eof(reader: asyncio.StreamReader) -> None:
    """Returns when the client closes the connection (or sends anything, which an HTTP/1.1 client does not do
    before the response it waits for has ended)."""
    with contextlib.suppress(ConnectionError):
        await reader.read(65536)


async def _client_left(watcher: asyncio.Future, delay: float) -> bool:
    """Waits `delay` seconds, or less if the client leaves meanwhile; True if it has left. A pause as short as a
    pace between chunks is a plain sleep (asyncio.wait costs several times as much, which counts at thousands of
    streams), so a client's leaving is noticed at most that late."""
    if delay > 0 and not watcher.done():
        if delay <= 0.1:
            await asyncio.sleep(delay)
        else:
            await asyncio.wait([watcher], timeout=delay)
    return watcher.done()


@functools.lru_cache(maxsize=4096)
def _text_choices(piece: str) -> str:
    return json.dumps([{"index": 0, "delta": {"content": piece}, "logprobs": None, "finish_reason": None}])


def _pieces(text: str, size: int) -> list[str]:
    size = max(1, size)
    return [text[i:i + size] for i in range(0, len(text), size)]


def _call_json(call: Call, index: int) -> dict:
    return {"id": call.id or f"call_{index + 1}", "type": "function",
            "function": {"name": call.name, "arguments": call.arguments_text()}}


def _tool_fragments(reply: Reply) -> list[dict]:
    """The `delta.tool_calls` entries of the reply's calls: a call's first carries its id and name."""
    per_call = []
    for index, call in enumerate(reply.tool_calls):
        head, *rest = _pieces(call.arguments_text(), reply.chunk_size) or [""]
        opening = {"index": index, "id": call.id or f"call_{index + 1}", "type": "function",
                   "function": {"name": call.name, "arguments": head}}
        per_call.append([opening] + [{"index": index, "function": {"arguments": piece}} for piece in rest])
    if reply.interleave:
        return [fragment for row in zip_longest(*per_call) for fragment in row if fragment is not None]
    return [fragment for fragments in per_call for fragment in fragments]


def _finish_reason(answer: Reply) -> str:
    return answer.finish_reason or ("tool_calls" if answer.tool_calls else "stop")


def _usage(answer: Reply, payload: dict, pieces: int) -> dict:
    prompt = answer.prompt_tokens
    if prompt is None:
        prompt = max(1, len(json.dumps(payload.get("messages", []))) // 4)
    completion = pieces if answer.completion_tokens is None else answer.completion_tokens
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _error(message: str, kind: str) -> dict:
    return {"error": {"message": message, "type": kind, "param": None, "code": kind}}


def _sse(data: str) -> bytes:
    return f"data: {data}\n\n".encode()


def _http_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 408: "Request Timeout",
            409: "Conflict", 429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
            503: "Service Unavailable", 504: "Gateway Timeout"}


def _head(status: int, headers: Mapping[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _send_json(writer, status: int, payload, headers: Mapping[str, str] | None = None) -> None:
    body = json.dumps(payload).encode()
    writer.write(_head(status, {"Content-Type": "application/json", "Content-Length": str(len(body)),
                                **(headers or {})}) + body)
    await writer.drain()


@pytest.fixture
def llm_server():
    """A running `LlmServer` for one test: `llm_server.url`, `.script(...)`, `.requests`."""
    with LlmServer() as server:
        yield server


@pytest.fixture
def model(llm_server, settings):
    """The fake server as the configured model (`CONDUET_LLM_*`), without retries: a scripted failure is final."""
    settings.CONDUET_LLM_BASE_URL = llm_server.url
    settings.CONDUET_LLM_API_KEY = "sk-fake"
    settings.CONDUET_LLM_MODEL = "fake-model"
    settings.CONDUET_LLM_MAX_RETRIES = 0
    return llm_server


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A fake OpenAI-compatible model for benchmarks.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--tokens", type=int, default=50, help="one-token chunks in every reply")
    parser.add_argument("--pace", type=float, default=0.02, help="seconds between chunks")
    parser.add_argument("--first-token-delay", type=float, default=0.0, help="seconds before the first chunk")
    parser.add_argument("--workers", type=int, default=1, help="processes sharing the port (SO_REUSEPORT)")
    args = parser.parse_args(argv)
    with contextlib.suppress(ImportError, ValueError, OSError):  # thousands of streams need thousands of sockets
        import resource

        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    server = LlmServer(host=args.host, port=args.port, default=Reply.tokens(args.tokens), pace=args.pace,
                       first_token_delay=args.first_token_delay, record=False, reuse_port=args.workers > 1)
    # One process writes some 15-20 thousand chunks a second: 2,000 streams at 50 tokens a second need several.
    for _ in range(args.workers - 1):
        multiprocessing.Process(target=_serve, args=(server,), daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # an orderly exit ends the workers too
    _serve(server, ready=lambda: print(f"fake model on {server.url} ({args.workers} process(es))", flush=True))


def _serve(server: LlmServer, ready=None) -> None:
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(server.serve(ready=ready))


if __name__ == "__main__":
    main()
