"""The outbound guard: the one check every call the server makes on a project's behalf passes before it connects —
HTTP tools (`agents/tools.py`, on every redirect hop too), MCP servers (`agents/mcp.py`), and later knowledge-base
URL ingestion and media URLs. Not the model's endpoint (`agents/llm.py`): that is the operator's configuration, not a
project's input.

`outbound_addresses(url, allowlist)` admits http(s) only, resolves the host, and returns the addresses a request may
connect to: public ones, and private, loopback, link-local or reserved ones only when the allowlist
(`CONDUET_OUTBOUND_ALLOWLIST`: IP addresses, CIDR networks, host names) admits the address or the host name. Cloud
metadata addresses are refused whatever the allowlist says. The caller then connects to a returned address itself —
the URL carries the IP, the `Host` header and the TLS server name carry the host name — so a DNS answer that changes
between check and connect (DNS rebinding) cannot send the request elsewhere; `agents/tools.py` (httpx) and
`agents/mcp.py` (the MCP SDK's httpx2 transport) each pin that way.

Its refusals are `ToolError`s (REFUSED; CONNECTION when the host does not resolve), the error every caller of an
outbound call already handles. It is defined here rather than in `agents/tools.py` so that this module imports
nothing of its callers.

No Django here: the callers pass the allowlist.
"""
import asyncio
import functools
import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import httpx

# Cloud metadata services (AWS, GCP, Azure, Oracle…; AWS over IPv6; Alibaba): refused even when the allowlist admits
# their network or a host name that resolves to one — they hand out the host's credentials.
_METADATA_ADDRESSES = frozenset({ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254"),
                                 ipaddress.ip_address("100.100.100.200")})
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class ToolErrorCode(StrEnum):
    DEFINITION = "definition"  # the tool's definition (or its templates over these arguments) cannot make a request
    REFUSED = "refused"  # the outbound guard refused the URL or its addresses
    TIMEOUT = "timeout"
    CONNECTION = "connection"  # resolution, connection or protocol failure
    STATUS = "status"  # the server answered with a non-2xx status
    TOO_LARGE = "too_large"  # the response body passed the size limit (agents.tools.MAX_RESPONSE_BYTES)
    REDIRECTS = "redirects"  # more than agents.tools.MAX_REDIRECTS redirects
    INVALID_ARGUMENTS = "invalid_arguments"  # the arguments do not match the tool's `parameters` (nothing was sent)
    FAILED = "failed"  # the tool ran and reported a failure (an MCP result with `isError`)


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


def _metadata(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped:
            address = address.ipv4_mapped
        elif address in _NAT64:  # 64:ff9b::a9fe:a9fe reaches 169.254.169.254 through a NAT64 gateway
            address = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address in _METADATA_ADDRESSES


def _forbidden(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    # `not is_global` covers private, loopback, link-local, reserved, unspecified, shared (100.64/10) and
    # documentation ranges; multicast has global ranges, so it is named.
    return address in _METADATA_ADDRESSES or not address.is_global or address.is_multicast


async def outbound_addresses(url: httpx.URL, allowlist: Sequence[str] = ()) -> list[str]:
    """The addresses a request to `url` may connect to, in resolution order; raises `ToolError` (refused) when the
    scheme is not http(s) or no address is public or allowlisted. Addresses that are neither are dropped: the
    request is only ever sent to an address returned here. A cloud metadata address is never returned, whatever
    the allowlist says."""
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
        permitted = [str(a) for a in candidates if not _metadata(a)]
    else:
        permitted = [str(a) for a in candidates if not _metadata(a) and (allowed.admits(a) or not _forbidden(a))]
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
