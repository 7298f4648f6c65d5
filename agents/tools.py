"""HTTP tools: a project's tool definition plus the call's arguments → one outbound HTTP exchange → its JSON.

A tool is `{"id", "description", "parameters", "http": {"method", "url", "headers", "timeoutMs", "body"?}}`. The URL,
the header values and the body are Jinja2 templates rendered in the immutable sandbox over the arguments; each value
substituted into the URL is percent-encoded, so an argument can never change the URL's host or path structure
(`|safe` opts a value out). A missing argument renders empty, as in the engine's templates: required arguments are
the business of the tool's `parameters` schema.

Every hop (the first request and each redirect, at most 5, followed here rather than by httpx) passes the outbound
guard: http(s) only, and the host's addresses must be public unless the allowlist (`CONDUET_OUTBOUND_ALLOWLIST`)
admits the address or the host name. The request then goes to the checked address itself — the URL carries the IP,
the `Host` header and the TLS server name carry the host name — so a DNS answer that changes between check and
connect (DNS rebinding) cannot send it elsewhere.

No Django here: the turn service passes the allowlist (or uses `tool_port`, which reads the setting).
"""
import asyncio
import functools
import ipaddress
import json
import re
import socket
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import quote

import httpx
from jinja2 import ChainableUndefined, Undefined
from jinja2.filters import do_urlencode
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup

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
_METADATA_ADDRESSES = frozenset({ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")})

JsonValue = dict | list | str | int | float | bool | None


class ToolErrorCode(StrEnum):
    DEFINITION = "definition"  # the tool's definition (or its templates over these arguments) cannot make a request
    REFUSED = "refused"  # the outbound guard refused the URL or its addresses
    TIMEOUT = "timeout"
    CONNECTION = "connection"  # resolution, connection or protocol failure
    STATUS = "status"  # the server answered with a non-2xx status
    TOO_LARGE = "too_large"  # the response body passed MAX_RESPONSE_BYTES
    REDIRECTS = "redirects"  # more than MAX_REDIRECTS redirects


class ToolError(Exception):
    """A tool call that produced no result; `code` says why, `status` is the HTTP status when there was one."""

    def __init__(self, message: str, *, code: ToolErrorCode, status: int | None = None, tool: str | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.tool = tool

    def __str__(self) -> str:
        return f"Tool {self.tool!r}: {self.message}" if self.tool else self.message


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


# --- the outbound guard ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Allowlist:
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    hosts: frozenset[str]

    def admits(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return any(address in network for network in self.networks)


@functools.lru_cache(maxsize=32)
def _allowlist(entries: tuple[str, ...]) -> _Allowlist:
    """Each entry is an IP address, a CIDR network or a host name (matched exactly, case-insensitively)."""
    networks, hosts = [], set()
    for entry in (e.strip().lower() for e in entries):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            hosts.add(entry.rstrip("."))
    return _Allowlist(tuple(networks), frozenset(hosts))


def _forbidden(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    # `not is_global` covers private, loopback, link-local, reserved, unspecified, shared (100.64/10) and
    # documentation ranges; multicast has global ranges, so it is named.
    return address in _METADATA_ADDRESSES or not address.is_global or address.is_multicast


async def outbound_addresses(url: httpx.URL, allowlist: Sequence[str] = ()) -> list[str]:
    """The addresses a request to `url` may connect to, in resolution order; raises `ToolError` (refused) when the
    scheme is not http(s) or no address is public or allowlisted. Addresses that are neither are dropped: the
    request is only ever sent to an address returned here."""
    if url.scheme not in ("http", "https"):
        raise ToolError(f"only http and https URLs are allowed, not {url.scheme or 'no'} scheme",
                        code=ToolErrorCode.REFUSED)
    host = url.raw_host.decode("ascii").lower().rstrip(".")
    if not host:
        raise ToolError("the URL has no host", code=ToolErrorCode.REFUSED)
    allowed = _allowlist(tuple(allowlist))
    try:
        candidates = [ipaddress.ip_address(host)]
    except ValueError:
        candidates = await _resolve(host, url.port or (443 if url.scheme == "https" else 80))
    if host in allowed.hosts:
        return [str(a) for a in candidates]
    permitted = [str(a) for a in candidates if allowed.admits(a) or not _forbidden(a)]
    if not permitted:
        shown = ", ".join(str(a) for a in candidates)
        raise ToolError(f"{host} resolves to {shown}: a private, loopback, link-local or reserved address not on "
                        "the outbound allowlist", code=ToolErrorCode.REFUSED)
    return permitted


async def _resolve(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise ToolError(f"cannot resolve {host}: {exc}", code=ToolErrorCode.CONNECTION) from None
    addresses = []
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(sockaddr[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


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
        if not isinstance(name, str) or not _HEADER_NAME.match(name) or not isinstance(template, str):
            raise ToolError(f"http.headers: {name!r} is not a header name with a text value",
                            code=ToolErrorCode.DEFINITION)
        if name.lower() in _RESERVED_HEADERS:
            continue
        value = _render("text", template, scope, f"http.headers.{name}")
        if any(c in value for c in "\r\n\0"):  # header injection through an argument
            raise ToolError(f"http.headers.{name}: a line break or NUL in the value", code=ToolErrorCode.DEFINITION)
        headers[name] = value

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
    ran in, and one per call also keeps one tool's connections (and TLS sessions) from serving another host."""
    name = str(tool.get("id") or "?")
    try:
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
        raise


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

def tool_port(tools: Iterable[Mapping], *, allowlist: Sequence[str] | None = None,
              ) -> Callable[[str, dict], Awaitable[JsonValue]]:
    """`Ports.tools` for a project's tool definitions: `await tools(name, args)`. The allowlist defaults to
    `settings.CONDUET_OUTBOUND_ALLOWLIST`, read when the port is made."""
    by_id = {tool.get("id"): tool for tool in tools}
    if allowlist is None:
        from django.conf import settings

        allowlist = tuple(settings.CONDUET_OUTBOUND_ALLOWLIST)

    async def call(name: str, args: dict) -> JsonValue:
        tool = by_id.get(name)
        if tool is None:
            raise ToolError(f"no tool {name!r} in the project", code=ToolErrorCode.DEFINITION, tool=name)
        return await http_tool_call(tool, args, allowlist=allowlist)

    return call
