"""MCP tool servers: a project tool of kind `mcp` names a server (`{"id", "kind": "mcp", "mcp": {"url", "headers"?,
"timeoutMs"?}, "prefix"?}`) whose tools the model sees as `<prefix or id>__<tool name>`. Spoken to with the official
SDK: its streamable HTTP client (`mcp.client.streamable_http`) and `ClientSession`, one short session per listing
and per call (a session is bound to the event loop it runs in, and a turn's loop is not the next one's).

Listings are cached in process per (URL, digest of the headers) for `CONDUET_MCP_CACHE_SECONDS`; a failed listing
for `FAILURE_CACHE_SECONDS`, so a server that is down does not slow every turn. `mcp_tools_list(…, refresh=True)`
and `mcp_cache_clear()` refresh on demand; `ProjectTools.call` refreshes when the model calls a name the cache does
not know.

The outbound guard applies (`agents.outbound.outbound_addresses`, as for HTTP tools): the URL's addresses are checked
before connecting, and the session's HTTP client connects only to those addresses (its transport rewrites each
request to a checked address and keeps the host name in `Host` and the TLS server name), so DNS rebinding between
the check and a connection cannot send it elsewhere. The SDK follows a redirect only within the endpoint's origin,
and the transport refuses any request to another origin. Limits: `timeoutMs` (default 10 s, at most 60 s) bounds a
whole session (connect, initialize, list or call); a response body past `MAX_PROTOCOL_BYTES` is cut off and a
result past `agents.tools.MAX_RESPONSE_BYTES` refused; proxies from the environment are ignored (they would connect
past the guard).

Errors are `agents.outbound.ToolError`, scrubbed of the server's header values (secrets, decrypted from the project
document only for the runtime spec): an MCP result with `isError` is `failed` with the server's text.
"""
import asyncio
import hashlib
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import httpx2
from mcp import ClientSession
from mcp import types as mcp_types
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import REQUEST_TIMEOUT

from agents.outbound import ToolError, ToolErrorCode, outbound_addresses
from agents.runtime.ports import ToolDefinition
from agents.runtime.toolspec import EMPTY_PARAMETERS, mcp_tool_name
from agents.tools import (
    DEFAULT_TIMEOUT_MS,
    MAX_RESPONSE_BYTES,
    MAX_TIMEOUT_MS,
    JsonValue,
    check_arguments,
    header_secrets,
    header_value,
    scrub,
)

logger = logging.getLogger(__name__)

FAILURE_CACHE_SECONDS = 10.0
MAX_PROTOCOL_BYTES = 3 * MAX_RESPONSE_BYTES  # a result's JSON-RPC message: structured content plus its text form
_MAX_MESSAGE = 500


@dataclass(frozen=True)
class McpEndpoint:
    """One MCP server of a project: the project tool `source` that names it."""

    source: str
    prefix: str
    url: str
    headers: Mapping[str, Any] = field(default_factory=dict, repr=False)  # secrets: never in a repr
    timeout: float = DEFAULT_TIMEOUT_MS / 1000
    tool: Mapping = field(default_factory=dict, compare=False, repr=False)  # the project tool, for its secrets

    @classmethod
    def from_tool(cls, tool: Mapping) -> "McpEndpoint":
        mcp = tool.get("mcp") if isinstance(tool.get("mcp"), Mapping) else {}
        timeout_ms = mcp.get("timeoutMs", DEFAULT_TIMEOUT_MS)
        if isinstance(timeout_ms, bool) or not isinstance(timeout_ms, int | float) or timeout_ms <= 0:
            timeout_ms = DEFAULT_TIMEOUT_MS
        headers = mcp.get("headers") if isinstance(mcp.get("headers"), Mapping) else {}
        source = str(tool.get("id") or "")
        return cls(source=source, prefix=str(tool.get("prefix") or source), url=str(mcp.get("url") or ""),
                   headers=dict(headers), timeout=min(timeout_ms, MAX_TIMEOUT_MS) / 1000, tool=tool)

    @property
    def name_prefix(self) -> str:
        """What every offered name of this server starts with."""
        return mcp_tool_name(self.prefix, "")

    @property
    def cache_key(self) -> tuple[str, str]:
        canonical = json.dumps(sorted((str(k), str(v)) for k, v in self.headers.items()))
        return self.url, hashlib.sha256(canonical.encode()).hexdigest()

    @property
    def shown_url(self) -> str:
        """The URL without its query (which may hold a key), for messages and logs."""
        try:
            return str(httpx.URL(self.url).copy_with(query=None, fragment=None))
        except httpx.InvalidURL:
            return "(an invalid URL)"


@dataclass(frozen=True)
class McpTool:
    """One tool of an MCP server as offered to the model."""

    name: str  # `<prefix>__<remote name>`, sanitized
    remote_name: str
    description: str
    parameters: dict
    source: str

    def definition(self) -> ToolDefinition:
        return ToolDefinition(name=self.name, description=self.description, parameters=self.parameters,
                              source=self.source)


@dataclass(frozen=True)
class _Listing:
    tools: tuple[mcp_types.Tool, ...] | None
    error: ToolError | None
    expires_at: float


class _ListingCache:
    """The raw tool listings of MCP servers, by (URL, headers digest); shared by every loop of the process."""

    def __init__(self):
        self._items: dict[tuple[str, str], _Listing] = {}
        self._lock = threading.Lock()

    def get(self, key) -> _Listing | None:
        with self._lock:
            item = self._items.get(key)
            if item is not None and item.expires_at <= time.monotonic():
                del self._items[key]
                return None
            return item

    def put(self, key, item: _Listing) -> None:
        with self._lock:
            self._items[key] = item

    def clear(self, url: str | None = None) -> None:
        with self._lock:
            for key in [key for key in self._items if url is None or key[0] == url]:
                del self._items[key]


_listings = _ListingCache()


def mcp_cache_clear(url: str | None = None) -> None:
    """Forgets the cached listings (of the server at `url`, or all): the next use lists again."""
    _listings.clear(url)


async def mcp_tools_list(endpoint: McpEndpoint, *, allowlist: Sequence[str] = (), cache_seconds: float = 300,
                         refresh: bool = False) -> list[McpTool]:
    """The server's tools as the model sees them, from the cache unless `refresh` (or expired); raises `ToolError`
    when the server cannot be listed (that failure is cached for FAILURE_CACHE_SECONDS unless `refresh`)."""
    listing = None if refresh else _listings.get(endpoint.cache_key)
    if listing is None:
        try:
            tools = await _session(endpoint, allowlist, _list_all)
        except ToolError as exc:
            _listings.put(endpoint.cache_key, _Listing(None, exc, time.monotonic() + FAILURE_CACHE_SECONDS))
            raise
        listing = _Listing(tuple(tools), None, time.monotonic() + cache_seconds)
        if cache_seconds > 0:
            _listings.put(endpoint.cache_key, listing)
    if listing.error is not None:
        raise ToolError(listing.error.message, code=listing.error.code, tool=endpoint.source)
    return [McpTool(name=mcp_tool_name(endpoint.prefix, tool.name), remote_name=tool.name,
                    description=tool.description or tool.title or "",
                    parameters=dict(tool.input_schema) if tool.input_schema else dict(EMPTY_PARAMETERS),
                    source=endpoint.source)
            for tool in listing.tools]


async def mcp_tools_offered(endpoint: McpEndpoint, *, allowlist: Sequence[str] = (), cache_seconds: float = 300,
                            ) -> list[McpTool]:
    """`mcp_tools_list`, or none (logged) when the server cannot be listed: a server that is down leaves its tools
    out of the turn instead of failing it."""
    try:
        return await mcp_tools_list(endpoint, allowlist=allowlist, cache_seconds=cache_seconds)
    except ToolError as exc:
        logger.warning("The MCP server of tool %r (%s) is left out: %s", endpoint.source, endpoint.shown_url,
                       exc.message)
        return []


async def mcp_tool_call(endpoint: McpEndpoint, tool: McpTool, args: dict, *, allowlist: Sequence[str] = (),
                        ) -> JsonValue:
    """Calls `tool` of the server with `args` (checked against its input schema first); returns its
    `structuredContent` if it has one, else `{"text": <its text contents, joined by blank lines>}`."""
    try:
        check_arguments(tool.parameters, args)
    except ToolError as exc:
        exc.tool = tool.name
        raise

    async def call(session: ClientSession) -> JsonValue:
        # `send_request` rather than `call_tool`: the latter lists the tools again in each new session to validate
        # structured output, a second round trip per call for a check the engine does not need.
        request = mcp_types.CallToolRequest(params=mcp_types.CallToolRequestParams(name=tool.remote_name,
                                                                                    arguments=dict(args)))
        result = await session.send_request(request, mcp_types.CallToolResult)
        return _result(result)

    try:
        return await _session(endpoint, allowlist, call)
    except ToolError as exc:
        exc.tool = tool.name
        raise


def _result(result: mcp_types.CallToolResult) -> JsonValue:
    text = "\n\n".join(block.text for block in result.content if isinstance(block, mcp_types.TextContent))
    if result.is_error:
        raise ToolError(f"the tool reported an error: {_short(text) or '(no message)'}", code=ToolErrorCode.FAILED)
    value = result.structured_content if result.structured_content is not None else {"text": text}
    if len(json.dumps(value, ensure_ascii=False, default=str).encode()) > MAX_RESPONSE_BYTES:
        raise ToolError(f"the result is over the {MAX_RESPONSE_BYTES}-byte limit", code=ToolErrorCode.TOO_LARGE)
    return value


async def _list_all(session: ClientSession) -> list[mcp_types.Tool]:
    tools, cursor = [], None
    for _page in range(100):  # a server that pages forever is cut off
        result = await session.list_tools(params=mcp_types.PaginatedRequestParams(cursor=cursor) if cursor else None)
        tools.extend(result.tools)
        cursor = result.next_cursor
        if not cursor:
            break
    return tools


async def _session(endpoint: McpEndpoint, allowlist: Sequence[str], work):
    """Runs `await work(session)` in a new, initialized session with the server, under its timeout and the outbound
    guard; every failure is a `ToolError` scrubbed of the server's header values."""
    secrets: list[str] = header_secrets(endpoint.tool)
    transport: _PinnedTransport | None = None
    deadline = asyncio.timeout(endpoint.timeout)
    try:
        try:
            url = httpx.URL(endpoint.url)
        except httpx.InvalidURL as exc:
            raise ToolError(f"mcp.url: {exc}", code=ToolErrorCode.DEFINITION) from None
        headers = {name: header_value(value, None, f"mcp.headers.{name}") for name, value in endpoint.headers.items()}
        secrets = header_secrets(endpoint.tool, headers.values())
        async with deadline:
            addresses = await outbound_addresses(url, allowlist)
            transport = _PinnedTransport(httpx2.URL(endpoint.url), addresses)
            async with (
                httpx2.AsyncClient(transport=transport, headers=headers, trust_env=False,
                                   timeout=httpx2.Timeout(endpoint.timeout)) as client,
                streamable_http_client(endpoint.url, http_client=client,
                                       max_sse_event_size=MAX_PROTOCOL_BYTES) as (read, write),
                ClientSession(read, write) as session,  # no timeout of its own: the one above bounds it all
            ):
                await session.initialize()
                try:
                    outcome = await work(session)
                except ToolError as exc:  # raised outside the SDK's task groups, which would wrap it in a group
                    outcome = exc
        if isinstance(outcome, ToolError):
            raise outcome
        return outcome
    except ToolError as exc:
        exc.tool = exc.tool or endpoint.source
        raise scrub(exc, secrets) from None
    except Exception as exc:  # the SDK's, anyio's (groups) and httpx2's: one message, never a traceback upward
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            # A stop or the turn's timeout cancelled us mid-session, and the SDK's task groups turned it into a
            # stream error: the cancellation goes on (a port lets CancelledError through).
            raise asyncio.CancelledError from None
        if deadline.expired():  # our own deadline; its cancellation may come out as a stream error too
            error = ToolError(f"{endpoint.shown_url} gave no answer within {endpoint.timeout * 1000:.0f} ms",
                              code=ToolErrorCode.TIMEOUT, tool=endpoint.source)
        elif transport is not None and transport.too_large:
            error = ToolError(f"a response of {endpoint.shown_url} is over the {MAX_PROTOCOL_BYTES}-byte limit",
                              code=ToolErrorCode.TOO_LARGE, tool=endpoint.source)
        else:
            code, description = _describe(exc)
            error = ToolError(f"{endpoint.shown_url}: {description}", code=code, tool=endpoint.source)
        raise scrub(error, secrets) from None


def _describe(exc: BaseException) -> tuple[ToolErrorCode, str]:
    """The innermost cause worth showing: an MCP error's message, else the exception's type and text."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, MCPError):
        code = ToolErrorCode.TIMEOUT if exc.code == REQUEST_TIMEOUT else ToolErrorCode.CONNECTION
        return code, _short(f"the server answered with error {exc.code}: {exc.message}")
    if isinstance(exc, httpx2.ConnectError):
        return ToolErrorCode.CONNECTION, "the connection failed"
    if isinstance(exc, httpx2.TimeoutException | TimeoutError):
        return ToolErrorCode.TIMEOUT, "the server timed out"
    return ToolErrorCode.CONNECTION, _short(f"{type(exc).__name__}: {exc}")


def _short(text: str) -> str:
    return text if len(text) <= _MAX_MESSAGE else text[:_MAX_MESSAGE] + "…"


class _LimitedStream(httpx2.AsyncByteStream):
    def __init__(self, stream: httpx2.AsyncByteStream, transport: "_PinnedTransport"):
        self._stream = stream
        self._transport = transport

    async def __aiter__(self) -> AsyncIterator[bytes]:
        size = 0
        async for chunk in self._stream:
            size += len(chunk)
            if size > MAX_PROTOCOL_BYTES:
                self._transport.too_large = True
                raise httpx2.ReadError("the response is over the size limit")
            yield chunk

    async def aclose(self) -> None:
        await self._stream.aclose()


class _PinnedTransport(httpx2.AsyncBaseTransport):
    """Sends each request of one session to an address the guard checked for the endpoint's origin (the next one
    when a connection is refused), keeping the host name in `Host` (set when the request was built) and as the TLS
    server name; refuses requests to any other origin; counts each response body against MAX_PROTOCOL_BYTES."""

    def __init__(self, origin: httpx2.URL, addresses: Sequence[str]):
        self._origin = (origin.scheme, origin.host, origin.port)
        self._addresses = tuple(addresses)
        self._inner = httpx2.AsyncHTTPTransport(trust_env=False)
        self.too_large = False

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        url = request.url
        if (url.scheme, url.host, url.port) != self._origin:
            raise httpx2.ConnectError("refused: not the checked origin of the MCP server", request=request)
        extensions = dict(request.extensions)
        if url.scheme == "https" and url.host not in self._addresses:
            extensions["sni_hostname"] = url.host
        failure: Exception | None = None
        for address in self._addresses:
            pinned = httpx2.Request(request.method, url.copy_with(host=address), headers=request.headers,
                                    stream=request.stream, extensions=extensions)
            try:
                response = await self._inner.handle_async_request(pinned)
            except httpx2.ConnectError as exc:  # e.g. ::1 first while the server listens on 127.0.0.1 only
                failure = exc
                continue
            return httpx2.Response(response.status_code, headers=response.headers,
                                   stream=_LimitedStream(response.stream, self), extensions=response.extensions)
        raise failure or httpx2.ConnectError("no address to connect to", request=request)

    async def aclose(self) -> None:
        await self._inner.aclose()
