"""HTTP tools: a project's tool definition plus the call's arguments → one outbound HTTP exchange → its JSON; and
`project_tools`, what a turn's ports call: the project's HTTP tools and its MCP servers' tools (`agents/mcp.py`).

A tool is `{"id", "description", "parameters", "http": {"method", "url", "headers", "timeoutMs", "body"?}}`. The
arguments are checked against `parameters` (JSON Schema; none: any object) before anything is sent. The URL,
the header values and the body are Jinja2 templates rendered in the immutable sandbox over the arguments; each value
substituted into the URL is percent-encoded, so an argument can never change the URL's host or path structure
(`|safe` opts a value out). A missing argument renders empty, as in the engine's templates: required arguments are
the business of the tool's `parameters` schema.

Every hop (the first request and each redirect, at most 5, followed here rather than by httpx) passes the outbound
guard (`agents/outbound.py`): http(s) only, and the host's addresses must be public unless the allowlist
(`CONDUET_OUTBOUND_ALLOWLIST`) admits the address or the host name. The request then goes to the checked address
itself — the URL carries the IP, the `Host` header and the TLS server name carry the host name — so a DNS answer that
changes between check and connect (DNS rebinding) cannot send it elsewhere.

Header values are secrets (stored encrypted, `agents/secrets.py`; the tool gets them decrypted): no error message
or log line made here contains one — messages name the header, never its value, and every message is scrubbed of
the call's header values before it leaves.

No Django here: the turn service passes the allowlist (or uses `project_tools`, which reads the settings).
"""
import asyncio
import functools
import json
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from jinja2 import ChainableUndefined, Undefined
from jinja2.filters import do_urlencode
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup

from agents.outbound import ToolError, ToolErrorCode, outbound_addresses
from agents.runtime.ports import ToolDefinition
from agents.runtime.toolspec import argument_fault, http_tool_definitions, tool_kind

METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
DEFAULT_TIMEOUT_MS = 10_000
MAX_TIMEOUT_MS = 60_000
MAX_RESPONSE_BYTES = 1024 * 1024
MAX_REDIRECTS = 5

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
# Set by the client for the connection it makes; a tool may not override them.
_RESERVED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")

JsonValue = dict | list | str | int | float | bool | None


# --- templates ---------------------------------------------------------------------------------------------------

def _text(value: Any) -> Any:
    """How a substituted value reads in text: JSON spelling for null, booleans, objects and arrays."""
    if value is None or isinstance(value, Undefined):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=_json_default)
    return value


def _url_component(value: Any) -> str:
    # `|safe` (and `|urlencode`, redefined below) mark a value as already URL text: it is kept as it is.
    if isinstance(value, Markup):
        return str(value)
    return quote(str(_text(value)), safe="")


_TEXT_ENV = ImmutableSandboxedEnvironment(autoescape=False, undefined=ChainableUndefined, finalize=_text)
_URL_ENV = ImmutableSandboxedEnvironment(autoescape=False, undefined=ChainableUndefined, finalize=_url_component)
_URL_ENV.filters["urlencode"] = lambda value: Markup(do_urlencode(value))  # no double encoding
_ENVS = {"text": _TEXT_ENV, "url": _URL_ENV}
_SINGLE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expr>.*)\}\}\s*$", re.DOTALL)


@functools.lru_cache(maxsize=512)
def _template(kind: str, source: str):
    return _ENVS[kind].from_string(source)


@functools.lru_cache(maxsize=512)
def _expression(source: str):
    return _TEXT_ENV.compile_expression(source, undefined_to_none=True)


def _render(kind: str, source: str, scope: Mapping[str, Any], where: str) -> str:
    try:
        return _template(kind, source).render(scope) if "{" in source else source
    except Exception as exc:  # a template syntax error, a sandbox violation, a type error in a filter
        raise ToolError(f"{where}: {exc}", code=ToolErrorCode.DEFINITION) from None


def header_value(template: Any, scope: Mapping[str, Any] | None, where: str) -> str:
    """A header's value, rendered over the arguments (`scope`; None: not a template). Its faults never quote it:
    header values are secrets."""
    if not isinstance(template, str):
        raise ToolError(f"{where}: not text (an encrypted value the runtime did not decrypt?)",
                        code=ToolErrorCode.DEFINITION)
    try:
        value = _template("text", template).render(scope) if scope is not None and "{" in template else template
    except Exception:  # the exception's text may quote the template, the secret itself
        raise ToolError(f"{where}: the value is not a valid template", code=ToolErrorCode.DEFINITION) from None
    value = value.strip(" \t")
    # A line break would inject headers (through an argument); other controls and non-ASCII text make the HTTP
    # library raise an error that quotes the value.
    if not value.isascii() or any(ord(c) < 32 and c != "\t" or ord(c) == 127 for c in value):
        raise ToolError(f"{where}: a line break, control or non-ASCII character in the value",
                        code=ToolErrorCode.DEFINITION)
    return value


def _render_body(template: Any, scope: Mapping[str, Any], where: str) -> Any:
    """A body template is JSON whose strings are templates; a string that is one `{{ expression }}` keeps the
    expression's type (a number stays a number), any other string renders to text."""
    if isinstance(template, str):
        single = _SINGLE_EXPRESSION.match(template)
        if single and "{{" not in single["expr"] and "}}" not in single["expr"]:
            try:
                return _expression(single["expr"])(**scope)
            except Exception as exc:
                raise ToolError(f"{where}: {exc}", code=ToolErrorCode.DEFINITION) from None
        return _render("text", template, scope, where)
    if isinstance(template, Mapping):
        return {key: _render_body(value, scope, f"{where}.{key}") for key, value in template.items()}
    if isinstance(template, list | tuple):
        return [_render_body(value, scope, f"{where}[{i}]") for i, value in enumerate(template)]
    return template


def _json_default(value: Any) -> Any:
    if isinstance(value, Mapping):  # the frozen spec's MappingProxyType
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


# --- arguments ---------------------------------------------------------------------------------------------------

def check_arguments(parameters: Mapping | None, args: Any) -> None:
    """Raises `ToolError` (invalid_arguments) when `args` do not match `parameters`, the tool's JSON Schema (none:
    any object will do), naming the fault by its path; the agent loop sends the message back to the model."""
    try:
        fault = argument_fault(parameters, args)
    except ValueError:
        raise ToolError("parameters is not a valid JSON Schema", code=ToolErrorCode.DEFINITION) from None
    if fault is not None:
        raise ToolError(f"invalid arguments{fault}", code=ToolErrorCode.INVALID_ARGUMENTS)


# --- secrets in messages -------------------------------------------------------------------------------------------

HIDDEN = "••••••••"  # agents.secrets.REDACTED (no Django here)


def header_secrets(tool: Mapping, *rendered: Iterable[str]) -> list[str]:
    """The text a message about `tool` must not contain: its header values (`http.headers`, `mcp.headers`), as
    written and as `rendered`, and the credential part of a `Scheme credential` value."""
    values: list[str] = []
    for section in ("http", "mcp"):
        part = tool.get(section)
        headers = part.get("headers") if isinstance(part, Mapping) else None
        if isinstance(headers, Mapping):
            values.extend(value for value in headers.values() if isinstance(value, str))
    for more in rendered:
        values.extend(more)
    found = set()
    for value in values:
        found.add(value.strip())
        found.update(word for word in value.split() if len(word) >= 8)
    return sorted((value for value in found if len(value) >= 4), key=len, reverse=True)


def scrub(error: "ToolError", secrets: Sequence[str]) -> "ToolError":
    """`error` with every secret in its message replaced by HIDDEN."""
    message = error.message
    for secret in secrets:
        message = message.replace(secret, HIDDEN)
    error.message = message
    error.args = (message,)
    return error


# --- the call ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Request:
    method: str
    url: httpx.URL
    headers: dict[str, str]  # the tool's own, sent to the tool's origin only
    body: bytes | None
    timeout: float  # seconds, for the whole call


def _prepare(tool: Mapping, args: Mapping[str, Any]) -> _Request:
    """Renders the tool's request over `args`; raises `ToolError` (definition) for anything unusable."""
    http = tool.get("http")
    if not isinstance(http, Mapping) or not isinstance(http.get("url"), str):
        raise ToolError("http.url is required", code=ToolErrorCode.DEFINITION)
    method = str(http.get("method") or "GET").upper()
    if method not in METHODS:
        raise ToolError(f"http.method {method!r} is not one of {', '.join(sorted(METHODS))}",
                        code=ToolErrorCode.DEFINITION)
    timeout_ms = http.get("timeoutMs", DEFAULT_TIMEOUT_MS)
    if isinstance(timeout_ms, bool) or not isinstance(timeout_ms, int | float) or timeout_ms <= 0:
        raise ToolError("http.timeoutMs must be a positive number of milliseconds", code=ToolErrorCode.DEFINITION)
    scope = dict(args)

    try:
        url = httpx.URL(_render("url", http["url"], scope, "http.url"))
    except httpx.InvalidURL as exc:
        raise ToolError(f"http.url: {exc}", code=ToolErrorCode.DEFINITION) from None

    headers = {}
    raw_headers = http.get("headers") or {}
    if not isinstance(raw_headers, Mapping):
        raise ToolError("http.headers must be an object", code=ToolErrorCode.DEFINITION)
    for name, template in raw_headers.items():
        if not isinstance(name, str) or not _HEADER_NAME.match(name):
            raise ToolError(f"http.headers: {name!r} is not a header name", code=ToolErrorCode.DEFINITION)
        if name.lower() in _RESERVED_HEADERS:
            continue
        headers[name] = header_value(template, scope, f"http.headers.{name}")

    body = None
    if method in _BODY_METHODS:
        content = _render_body(http["body"], scope, "http.body") if "body" in http else scope
        try:
            body = json.dumps(content, ensure_ascii=False, default=_json_default).encode()
        except (TypeError, ValueError) as exc:
            raise ToolError(f"http.body: {exc}", code=ToolErrorCode.DEFINITION) from None
    return _Request(method, url, headers, body, min(timeout_ms, MAX_TIMEOUT_MS) / 1000)


async def http_tool_call(tool: Mapping, args: dict, *, allowlist: Sequence[str] = (),
                         client: httpx.AsyncClient | None = None) -> JsonValue:
    """Calls the HTTP tool `tool` with `args`; returns the response's JSON, or `{"text": body}` when it is not JSON.
    Raises `ToolError` for a bad definition, a refused address, a timeout (`http.timeoutMs`, default 10 s, at most
    60 s, for the whole call), a connection failure, a non-2xx status or a body over 1 MiB.

    `client` is for tests and callers that want their own settings; it is used as it is (its redirect setting is
    overridden). Without one the call makes its own: an `httpx.AsyncClient` is bound to the event loop it first
    ran in, and one per call also keeps one tool's connections (and TLS sessions) from serving another host.

    The arguments are checked against the tool's `parameters` first: `ToolError` (invalid_arguments) and nothing
    is sent when they do not match."""
    name = str(tool.get("id") or "?")
    request = None
    try:
        check_arguments(tool.get("parameters"), args)
        request = _prepare(tool, args)
        try:
            async with asyncio.timeout(request.timeout):
                if client is not None:
                    return await _exchange(client, request, allowlist)
                # trust_env=False: a proxy from the environment would connect on our behalf, past the guard.
                async with httpx.AsyncClient(trust_env=False) as own_client:
                    return await _exchange(own_client, request, allowlist)
        except TimeoutError:
            raise ToolError(f"no answer within {request.timeout * 1000:.0f} ms", code=ToolErrorCode.TIMEOUT) from None
    except ToolError as exc:
        exc.tool = exc.tool or name
        raise scrub(exc, header_secrets(tool, request.headers.values() if request else ())) from None


async def _exchange(client: httpx.AsyncClient, request: _Request, allowlist: Sequence[str]) -> JsonValue:
    method, url, body = request.method, request.url, request.body
    for _hop in range(MAX_REDIRECTS + 1):
        # The tool's headers (credentials, later encrypted secrets) go to its own origin only, never to a redirect
        # target elsewhere.
        own_origin = _same_origin(request.url, url)
        response = await _send(client, method, url, request.headers if own_origin else {}, body, request.timeout,
                               allowlist)
        try:
            if response.status_code in _REDIRECTS and "location" in response.headers:
                try:
                    url = url.join(response.headers["location"])
                except httpx.InvalidURL as exc:
                    raise ToolError(f"a bad redirect location: {exc}", code=ToolErrorCode.STATUS,
                                    status=response.status_code) from None
                # What browsers and httpx do: 303 (and 301/302 after a POST) become a GET without a body.
                if response.status_code == 303 or (response.status_code in (301, 302) and method == "POST"):
                    method, body = "GET", None
                continue
            if not response.is_success:
                raise ToolError(f"{method} {_shown(url)} answered {response.status_code}",
                                code=ToolErrorCode.STATUS, status=response.status_code)
            return _parse(await _read_body(response), response)
        except httpx.TimeoutException:
            raise ToolError("the response timed out", code=ToolErrorCode.TIMEOUT) from None
        except httpx.HTTPError as exc:
            raise ToolError(f"reading the response of {_shown(url)} failed: {exc!r}",
                            code=ToolErrorCode.CONNECTION) from None
        finally:
            await response.aclose()
    raise ToolError(f"more than {MAX_REDIRECTS} redirects", code=ToolErrorCode.REDIRECTS)


async def _send(client: httpx.AsyncClient, method: str, url: httpx.URL, tool_headers: Mapping[str, str],
                body: bytes | None, timeout: float, allowlist: Sequence[str]) -> httpx.Response:
    """One request of one hop, sent to an address the guard checked (the next one if a connection is refused)."""
    addresses = await outbound_addresses(url, allowlist)
    headers = httpx.Headers({"Accept": "application/json"})
    if body is not None:
        headers["Content-Type"] = "application/json"
    headers.update(tool_headers)
    headers["Host"] = url.netloc.decode("ascii")
    host = url.raw_host.decode("ascii")
    extensions = {"sni_hostname": host} if url.scheme == "https" and host not in addresses else {}
    failure: Exception | None = None
    for address in addresses:
        pinned = client.build_request(method, url.copy_with(host=address), headers=headers, content=body,
                                      timeout=timeout, extensions=extensions)
        try:
            return await client.send(pinned, stream=True, follow_redirects=False)
        except httpx.ConnectError as exc:  # e.g. ::1 first while the server listens on 127.0.0.1 only
            failure = exc
        except httpx.TimeoutException:
            raise ToolError(f"{method} {_shown(url)} timed out", code=ToolErrorCode.TIMEOUT) from None
        except httpx.HTTPError as exc:
            raise ToolError(f"{method} {_shown(url)} failed: {exc!r}", code=ToolErrorCode.CONNECTION) from None
    raise ToolError(f"{method} {_shown(url)} failed: {failure!r}", code=ToolErrorCode.CONNECTION)


async def _read_body(response: httpx.Response) -> bytes:
    """The (decoded) body, refused past MAX_RESPONSE_BYTES without reading the rest."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_RESPONSE_BYTES:
        raise ToolError(f"the response of {declared} bytes is over the {MAX_RESPONSE_BYTES}-byte limit",
                        code=ToolErrorCode.TOO_LARGE, status=response.status_code)
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise ToolError(f"the response is over the {MAX_RESPONSE_BYTES}-byte limit",
                            code=ToolErrorCode.TOO_LARGE, status=response.status_code)
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(body: bytes, response: httpx.Response) -> JsonValue:
    try:
        return json.loads(body)
    except ValueError:  # not JSON (or not UTF-8 JSON)
        pass
    try:
        text = body.decode(response.charset_encoding or "utf-8", errors="replace")
    except LookupError:  # an unknown charset name
        text = body.decode("utf-8", errors="replace")
    return {"text": text}


def _same_origin(origin: httpx.URL, url: httpx.URL) -> bool:
    if origin.raw_host != url.raw_host:
        return False
    if (origin.scheme, origin.port) == (url.scheme, url.port):
        return True
    # An upgrade of the same host from http to https on the default ports stays the same site.
    return origin.scheme == "http" and url.scheme == "https" and origin.port in (None, 80) and url.port in (None, 443)


def _shown(url: httpx.URL) -> str:
    """The URL without its query, which carries the arguments (often personal data), for error messages."""
    return str(url.copy_with(query=None, fragment=None))


# --- the engine's port -------------------------------------------------------------------------------------------

class ProjectTools:
    """One project's callable tools, for a turn's ports: `call` is `Ports.tools`, `definitions` is
    `Ports.tool_definitions`. HTTP tools are called by id; an MCP server's tools by `<prefix or id>__<name>`, their
    listing cached in process (`agents/mcp.py`). A name the listings do not know refreshes the listings of the servers
    it could belong to once before it is refused."""

    def __init__(self, tools: Iterable[Mapping], *, allowlist: Sequence[str], mcp_cache_seconds: float):
        from agents.mcp import McpEndpoint

        self._tools = tuple(tools)
        self._allowlist = tuple(allowlist)
        self._cache_seconds = mcp_cache_seconds
        # A tool that is no MCP server is called as an HTTP tool, whose checks name what is missing.
        self._http = {tool.get("id"): tool for tool in self._tools if tool_kind(tool) != "mcp"}
        self._mcp = [McpEndpoint.from_tool(tool) for tool in self._tools if tool_kind(tool) == "mcp"]

    async def call(self, name: str, args: dict) -> JsonValue:
        tool = self._http.get(name)
        if tool is not None:
            return await http_tool_call(tool, args, allowlist=self._allowlist)
        from agents.mcp import mcp_tool_call

        found = await self._mcp_tool(name, refresh=False) or await self._mcp_tool(name, refresh=True)
        if found is None:
            raise ToolError(f"no tool {name!r} in the project", code=ToolErrorCode.DEFINITION, tool=name)
        endpoint, remote = found
        return await mcp_tool_call(endpoint, remote, args, allowlist=self._allowlist)

    async def definitions(self) -> list[ToolDefinition]:
        """The HTTP tools, then each MCP server's tools (a server that cannot be listed is left out, and logged). A
        name taken already (by an HTTP tool, or an earlier server) is not offered twice."""
        from agents.mcp import mcp_tools_offered

        definitions = http_tool_definitions(self._tools)
        names = {definition.name for definition in definitions}
        listings = await asyncio.gather(*(mcp_tools_offered(endpoint, allowlist=self._allowlist,
                                                            cache_seconds=self._cache_seconds)
                                          for endpoint in self._mcp))
        for listing in listings:
            for remote in listing:
                if remote.name not in names:
                    names.add(remote.name)
                    definitions.append(remote.definition())
        return definitions

    async def refresh(self) -> None:
        """Lists every MCP server of the project again now (an operator's or a test's "the server changed")."""
        from agents.mcp import mcp_tools_list

        await asyncio.gather(*(mcp_tools_list(endpoint, allowlist=self._allowlist, cache_seconds=self._cache_seconds,
                                              refresh=True) for endpoint in self._mcp), return_exceptions=True)

    async def _mcp_tool(self, name: str, *, refresh: bool):
        from agents.mcp import mcp_tools_list

        for endpoint in self._mcp:
            if not name.startswith(endpoint.name_prefix):
                continue
            try:
                listing = await mcp_tools_list(endpoint, allowlist=self._allowlist,
                                               cache_seconds=self._cache_seconds, refresh=refresh)
            except ToolError:
                if refresh:
                    raise
                continue
            for remote in listing:
                if remote.name == name:
                    return endpoint, remote
        return None


def project_tools(tools: Iterable[Mapping], *, allowlist: Sequence[str] | None = None,
                  mcp_cache_seconds: float | None = None) -> ProjectTools:
    """The tools of a project (`spec.tools`, with its secrets decrypted) for `Ports(tools=….call,
    tool_definitions=….definitions)`. The allowlist defaults to `settings.CONDUET_OUTBOUND_ALLOWLIST` and the MCP
    listing cache to `settings.CONDUET_MCP_CACHE_SECONDS`, read when this is made."""
    if allowlist is None or mcp_cache_seconds is None:
        from django.conf import settings

        allowlist = tuple(settings.CONDUET_OUTBOUND_ALLOWLIST) if allowlist is None else allowlist
        mcp_cache_seconds = (settings.CONDUET_MCP_CACHE_SECONDS if mcp_cache_seconds is None
                             else mcp_cache_seconds)
    return ProjectTools(tools, allowlist=allowlist, mcp_cache_seconds=mcp_cache_seconds)


def tool_port(tools: Iterable[Mapping], *, allowlist: Sequence[str] | None = None,
              ) -> Callable[[str, dict], Awaitable[JsonValue]]:
    """`Ports.tools` alone: `project_tools(tools, allowlist=allowlist).call` (kept for the callers that predate
    MCP tools)."""
    return project_tools(tools, allowlist=allowlist).call
