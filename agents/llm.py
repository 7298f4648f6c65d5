"""The model port: an OpenAI-compatible chat-completions endpoint as `Ports.llm` (agents/runtime/ports.py).

`llm_port(spec)` is a project's port, or None when no model is configured — `llm_missing(spec)` then says what to
set. The endpoint is the operator's (`CONDUET_LLM_BASE_URL`, `CONDUET_LLM_API_KEY`, the default model name
`CONDUET_LLM_MODEL`); the project's `model` picks the name, temperature and max tokens. It is configuration, not user
input, so it does not pass the outbound guard of agents/outbound.py (a model on localhost is a common set-up).

A call always streams. Each text delta is yielded as it arrives; tool-call deltas are assembled by their index (the
id and name come in a call's first delta, its arguments in fragments, and parallel calls may interleave); the last
item is an `LlmResult` with the usage the provider reported, or an estimate (about 4 characters a token, marked
`estimated`) when it reports none — no tokenizer, since tiktoken downloads its tables on first use.

Retries are the `openai` SDK's: 408, 409, 429, 5xx and connection failures, `CONDUET_LLM_MAX_RETRIES` times, after
the provider's `Retry-After` (`retry-after-ms`) or an exponential backoff. They cover a request until its response
headers: a reply that breaks or stalls mid-stream is not retried, its text being already out.
`CONDUET_LLM_TIMEOUT_SECONDS` bounds every wait of an attempt — for the headers, and between two chunks. A failure
for good is an `UpstreamError` whose message can be shown to an API client: the status and the provider's own short
message, never the key or headers.

Closing the generator (`aclose`, on a stop) or cancelling its task closes the HTTP response at once, so the provider
learns that nobody is reading and stops generating. The SDK's client (its connection pool) is kept per event loop.
"""
import asyncio
import json
import math
import re
import time
import weakref
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx2
import openai
from django.conf import settings

from agents.runtime import AgentSpec
from agents.runtime.ports import LlmResult, ToolCall, UpstreamError

CHARS_PER_TOKEN = 4  # for the estimate when a provider reports no usage
CONNECT_TIMEOUT_SECONDS = 10.0
KEEPALIVE_CONNECTIONS = 100  # idle connections kept for the next call, as the SDK's default
NO_API_KEY = "not-needed"  # the SDK refuses an empty key; local servers ignore it
_PROVIDER_MESSAGE_CHARS = 300
_KEY_LIKE = re.compile(r"\bsk-[A-Za-z0-9*_\-]{4,}|\S*\*{4,}\S*")  # a key, or a masked one ("sk-proj-****abcd")


def llm_missing(spec: AgentSpec) -> str | None:
    """What to set for the project to have a model, or None when it has one."""
    if not settings.CONDUET_LLM_BASE_URL:
        return ("No language model is configured: set CONDUET_LLM_BASE_URL (an OpenAI-compatible endpoint) and "
                "CONDUET_LLM_MODEL, or the project's model.name.")
    if not _model_name(spec):
        return "No language model is named: set CONDUET_LLM_MODEL, or the project's model.name."
    return None


def llm_port(spec: AgentSpec) -> "ModelPort | None":
    """The `Ports.llm` of a project, with the settings of now; None when `llm_missing(spec)` says what is missing."""
    if llm_missing(spec):
        return None
    return ModelPort(
        endpoint=Endpoint(settings.CONDUET_LLM_BASE_URL, settings.CONDUET_LLM_API_KEY or NO_API_KEY,
                          settings.CONDUET_LLM_TIMEOUT_SECONDS, settings.CONDUET_LLM_MAX_RETRIES,
                          settings.CONDUET_LLM_MAX_CONNECTIONS),
        model=_model_name(spec),
        temperature=spec.model.get("temperature"),
        max_tokens=spec.model.get("maxTokens"),
    )


def _model_name(spec: AgentSpec) -> str:
    return spec.model.get("name") or settings.CONDUET_LLM_MODEL


@dataclass(frozen=True)
class Endpoint:
    base_url: str
    api_key: str = field(repr=False)
    timeout: float
    max_retries: int
    max_connections: int = 10_000  # streams open at once to the endpoint, per process (the SDK's default is 1,000)


@dataclass(frozen=True)
class ModelPort:
    """`Ports.llm`: `port(messages, *, tools=None, json_output=False)` is an async generator of the reply's text
    chunks, then one `LlmResult`."""

    endpoint: Endpoint
    model: str
    temperature: float | None = None
    max_tokens: int | None = None

    async def __call__(self, messages: Sequence[Mapping], *, tools: Sequence[Mapping] | None = None,
                       json_output: bool = False) -> AsyncIterator[str | LlmResult]:
        request: dict[str, Any] = {"model": self.model, "messages": _plain(messages), "stream": True,
                                   "stream_options": {"include_usage": True}}
        if tools:
            request["tools"] = _plain(tools)
        if self.temperature is not None:
            request["temperature"] = self.temperature
        if self.max_tokens is not None:
            request["max_tokens"] = self.max_tokens
        if json_output:
            request["response_format"] = {"type": "json_object"}
        reply = _Reply(started=time.perf_counter(), model=self.model)
        try:
            stream = await _client(self.endpoint).chat.completions.create(**request)
        except openai.APIError as exc:
            raise _failure(exc, self.endpoint, mid_reply=False) from exc
        async with stream:  # closes the HTTP response however this generator ends: aclose, cancellation, error
            try:
                async for chunk in stream:
                    text = reply.add(chunk)
                    if text:
                        yield text
            except openai.APIError as exc:
                raise _failure(exc, self.endpoint, mid_reply=True) from exc
            except json.JSONDecodeError as exc:  # a `data:` line that is not JSON
                raise UpstreamError("The language model sent a malformed reply stream.") from exc
        yield reply.result(request)


@dataclass
class _Reply:
    """The reply as its chunks arrive."""

    started: float
    model: str
    text: list[str] = field(default_factory=list)
    calls: dict[int, list] = field(default_factory=dict)  # index → [id, name, argument fragments]
    usage: Any = None
    finish_reason: str | None = None
    first_token_ms: int | None = None

    def add(self, chunk: Any) -> str:
        """Takes in one `chat.completion.chunk`; returns its text."""
        choices = getattr(chunk, "choices", None)
        if not isinstance(choices, list):
            raise UpstreamError("The language model sent a malformed reply stream.")
        self.model = getattr(chunk, "model", None) or self.model
        self.usage = getattr(chunk, "usage", None) or self.usage
        text = ""
        for choice in choices:
            if getattr(choice, "index", 0) not in (0, None):
                continue  # another candidate reply (n > 1 is never asked for)
            self.finish_reason = getattr(choice, "finish_reason", None) or self.finish_reason
            delta = getattr(choice, "delta", None)
            # A refusal is what the model says instead of an answer: the user reads it like one.
            text += (getattr(delta, "content", None) or "") + (getattr(delta, "refusal", None) or "")
            for call in getattr(delta, "tool_calls", None) or ():
                self.add_call(call)
            if self.first_token_ms is None and (text or getattr(delta, "tool_calls", None)):
                self.first_token_ms = _ms_since(self.started)
        if text:
            self.text.append(text)
        return text

    def add_call(self, delta: Any) -> None:
        index, call_id = getattr(delta, "index", None), getattr(delta, "id", None)
        if not isinstance(index, int):  # a provider that leaves out the index: a new id opens a call
            known = [i for i, (known_id, _name, _arguments) in self.calls.items() if call_id and known_id == call_id]
            last = max(self.calls, default=0)
            index = known[0] if known else last + 1 if call_id and self.calls else last
        call = self.calls.setdefault(index, [None, None, []])
        function = getattr(delta, "function", None)
        call[0] = call[0] or call_id
        call[1] = call[1] or getattr(function, "name", None)
        call[2].append(getattr(function, "arguments", None) or "")

    def result(self, request: dict) -> LlmResult:
        calls = []
        for index in sorted(self.calls):
            call_id, name, arguments = self.calls[index]
            if not name:
                raise UpstreamError("The language model sent a tool call without a name.")
            calls.append(ToolCall(id=call_id or f"call_{index}", name=name, arguments="".join(arguments)))
        text = "".join(self.text)
        prompt_tokens = getattr(self.usage, "prompt_tokens", None)
        completion_tokens = getattr(self.usage, "completion_tokens", None)
        estimated = prompt_tokens is None or completion_tokens is None
        if estimated:
            asked = json.dumps([request["messages"], request.get("tools")], ensure_ascii=False)
            prompt_tokens = _estimate(asked) if prompt_tokens is None else prompt_tokens
            written = text + "".join(call.name + call.arguments for call in calls)
            completion_tokens = _estimate(written) if completion_tokens is None else completion_tokens
        return LlmResult(text=text, tool_calls=tuple(calls), model=self.model, prompt_tokens=prompt_tokens,
                         completion_tokens=completion_tokens, estimated=estimated,
                         first_token_ms=self.first_token_ms, total_ms=_ms_since(self.started),
                         finish_reason=self.finish_reason)


def _estimate(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def _ms_since(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


def _plain(value: Any) -> Any:
    """JSON-ready copies: the engine's messages and tools may hold the frozen spec's read-only mappings."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _failure(exc: openai.APIError, endpoint: Endpoint, *, mid_reply: bool) -> UpstreamError:
    """What an API client may read of a failed call: no URL, header or key."""
    if isinstance(exc, openai.APITimeoutError):
        if mid_reply:
            return UpstreamError(f"The language model stopped in the middle of its reply (nothing for "
                                 f"{endpoint.timeout:g} s).")
        return UpstreamError(f"The language model did not answer within {endpoint.timeout:g} s.")
    if isinstance(exc, openai.APIConnectionError):
        if mid_reply:
            return UpstreamError("The connection to the language model broke in the middle of its reply.")
        return UpstreamError("The language model could not be reached (connection failed).")
    detail = _provider_message(exc.body, endpoint)
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        if status in (401, 403):
            return UpstreamError(f"The language model refused the credentials (HTTP {status}): check "
                                 "CONDUET_LLM_API_KEY.", status=status)
        return UpstreamError(f"The language model answered HTTP {status}" + (f": {detail}" if detail else "."),
                             status=status)
    return UpstreamError("The language model reported an error in its reply" + (f": {detail}" if detail else "."))


def _provider_message(body: Any, endpoint: Endpoint) -> str:
    """The provider's `error.message` when it is short, on one line, with anything like a key blanked out."""
    message = body.get("message") if isinstance(body, Mapping) else None
    if not isinstance(message, str):
        return ""
    message = " ".join(message.split())
    if endpoint.api_key != NO_API_KEY and endpoint.api_key:
        message = message.replace(endpoint.api_key, "[key]")
    message = _KEY_LIKE.sub("[key]", message)
    if len(message) > _PROVIDER_MESSAGE_CHARS:
        message = message[:_PROVIDER_MESSAGE_CHARS - 1] + "…"
    return message


_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Endpoint, openai.AsyncOpenAI]]" = (
    weakref.WeakKeyDictionary())


def _client(endpoint: Endpoint) -> openai.AsyncOpenAI:
    """This loop's client for the endpoint: its connections belong to the loop that opened them."""
    clients = _clients.setdefault(asyncio.get_running_loop(), {})
    client = clients.get(endpoint)
    if client is None:
        client = clients[endpoint] = openai.AsyncOpenAI(
            base_url=endpoint.base_url, api_key=endpoint.api_key, max_retries=endpoint.max_retries,
            timeout=openai.Timeout(endpoint.timeout, connect=min(endpoint.timeout, CONNECT_TIMEOUT_SECONDS)),
            # Every streamed reply holds a connection for its whole length: the SDK's pool of 1,000 would make the
            # 1,001st open stream of a process wait for a free one, and time out.
            http_client=openai.DefaultAsyncHttpxClient(limits=httpx2.Limits(
                max_connections=endpoint.max_connections, max_keepalive_connections=KEEPALIVE_CONNECTIONS)))
    return client
