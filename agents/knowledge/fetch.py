"""A URL document's bytes, fetched through the outbound guard (`agents/outbound.py`) like every call the server makes
on a project's behalf: http(s) only, and every hop — the first request and each redirect, followed here (at most 5),
not by httpx — must resolve to a public address or one the allowlist (`CONDUET_OUTBOUND_ALLOWLIST`) admits; cloud
metadata addresses never. The request then goes to the checked address itself (the URL carries the IP, the `Host`
header and TLS server name the host name), so a DNS answer that changes between check and connect cannot send it
elsewhere — as `agents/tools.py` does.

`url_refusal` is the request-time check (the API's 400): a URL that is no http(s) URL or whose host resolves to no
admitted address. `fetch_document` runs in the worker: size (`CONDUET_KB_MAX_DOCUMENT_BYTES`, from Content-Length and
from the bytes actually read, after decompression) and time (`CONDUET_KB_FETCH_TIMEOUT_SECONDS`, for the whole
fetch) limits, and only the content types the extractor reads. Its failures are `ExtractionError`s whose message
is the document's `error`.

The guard is async (it resolves on the event loop); the worker is sync, so each check runs in its own short loop.
"""
import asyncio
import concurrent.futures
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

import httpx

from agents.knowledge.extract import ExtractionError, kind_for_content_type, kind_for_upload
from agents.outbound import ToolError, outbound_addresses

MAX_REDIRECTS = 5
MAX_URL_LENGTH = 2048
USER_AGENT = "Conduet-KnowledgeBase/1.0"
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_UNTYPED = frozenset({"", "application/octet-stream", "binary/octet-stream"})  # decided from the bytes
_ACCEPT = ("text/html,application/xhtml+xml,application/pdf,text/markdown,text/plain,text/csv,"
           "application/vnd.openxmlformats-officedocument.wordprocessingml.document;q=0.9,*/*;q=0.1")


@dataclass
class Fetched:
    data: bytes
    content_type: str  # as served, without parameters ("text/html")
    url: str  # the final URL, after redirects
    kind: str | None = None  # the extractor's kind for it (html, pdf, docx, md, txt, csv)


def url_refusal(url: str) -> str | None:
    """Why `url` cannot be fetched for a project, or None: not an http(s) URL, no host, or a host that does not
    resolve or resolves only to refused addresses (private, loopback, link-local, reserved — unless allowlisted —
    and cloud metadata addresses always). The reason is a lower-case clause, for "This URL cannot be fetched: …"."""
    from django.conf import settings

    if not isinstance(url, str) or not url.strip():
        return "the URL is empty"
    if len(url) > MAX_URL_LENGTH:
        return f"the URL is longer than {MAX_URL_LENGTH} characters"
    try:
        parsed = httpx.URL(url.strip())
    except (httpx.InvalidURL, UnicodeError, ValueError) as exc:
        return f"the URL is not valid: {exc}"
    try:
        _run(outbound_addresses(parsed, tuple(settings.CONDUET_OUTBOUND_ALLOWLIST)))
    except ToolError as exc:
        return exc.message
    return None


def fetch_document(url: str, *, allowlist: Sequence[str] | None = None, max_bytes: int | None = None,
                   timeout: float | None = None) -> Fetched:
    """GETs `url` (following redirects, each hop checked) and returns its body; the keywords default to the
    settings. Raises ExtractionError for a refused address, a failed connection, a non-2xx status, a type the
    knowledge base cannot read, a body over the size limit, or a fetch that takes longer than the timeout."""
    from django.conf import settings

    allowlist = tuple(settings.CONDUET_OUTBOUND_ALLOWLIST if allowlist is None else allowlist)
    max_bytes = settings.CONDUET_KB_MAX_DOCUMENT_BYTES if max_bytes is None else max_bytes
    timeout = settings.CONDUET_KB_FETCH_TIMEOUT_SECONDS if timeout is None else timeout
    deadline = time.monotonic() + timeout
    try:
        current = httpx.URL(url.strip())
    except (httpx.InvalidURL, UnicodeError, ValueError) as exc:
        raise ExtractionError(f"The URL is not valid: {exc}.") from None
    # trust_env=False: a proxy from the environment would connect on our behalf, past the guard.
    with httpx.Client(trust_env=False, timeout=timeout) as client:
        for hop in range(MAX_REDIRECTS + 1):
            response = _send(client, current, allowlist, deadline, redirected=hop > 0)
            try:
                if response.status_code in _REDIRECTS and "location" in response.headers:
                    try:
                        current = current.join(response.headers["location"])
                    except (httpx.InvalidURL, UnicodeError, ValueError):
                        raise ExtractionError(f"{_shown(current)} redirects to an invalid URL.") from None
                    continue
                if not response.is_success:
                    raise ExtractionError(f"{_shown(current)} answered HTTP {response.status_code}"
                                          f"{' ' + response.reason_phrase if response.reason_phrase else ''}.")
                return _document(response, current, max_bytes, deadline, timeout)
            finally:
                response.close()
    raise ExtractionError(f"{_shown(httpx.URL(url.strip()))} redirects more than {MAX_REDIRECTS} times.")


def _send(client: httpx.Client, url: httpx.URL, allowlist: tuple[str, ...], deadline: float, *,
          redirected: bool) -> httpx.Response:
    """One GET, to an address the guard admitted for this hop (the next one when a connection is refused)."""
    try:
        addresses = _run(outbound_addresses(url, allowlist))
    except ToolError as exc:
        where = "redirects to a refused address" if redirected else "is refused"
        raise ExtractionError(f"The URL {where}: {exc.message}.") from None
    headers = {"Host": url.netloc.decode("ascii"), "Accept": _ACCEPT, "User-Agent": USER_AGENT}
    host = url.raw_host.decode("ascii")
    extensions = {"sni_hostname": host} if url.scheme == "https" and host not in addresses else {}
    failure: Exception | None = None
    for address in addresses:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        request = client.build_request("GET", url.copy_with(host=address), headers=headers, timeout=remaining,
                                       extensions=extensions)
        try:
            return client.send(request, stream=True, follow_redirects=False)
        except httpx.ConnectError as exc:  # e.g. ::1 first while the server listens on 127.0.0.1 only
            failure = exc
        except httpx.TimeoutException:
            raise _timed_out(url, client.timeout.read) from None
        except httpx.HTTPError as exc:
            raise ExtractionError(f"Fetching {_shown(url)} failed: {exc}.") from None
    if failure is None:
        raise _timed_out(url, client.timeout.read)
    raise ExtractionError(f"Could not connect to {_shown(url)}: {failure}.")


def _document(response: httpx.Response, url: httpx.URL, max_bytes: int, deadline: float,
              timeout: float) -> Fetched:
    """The response's body, if it is of a type the knowledge base reads and within the limits."""
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    kind = kind_for_content_type(content_type)
    if kind is None and content_type not in _UNTYPED:
        raise ExtractionError(f"{_shown(url)} is {content_type}, not a supported document type (HTML, PDF, "
                              "Word .docx, Markdown, plain text or CSV).")
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise ExtractionError(f"The document is {int(declared):,} bytes, over the {max_bytes:,}-byte limit.")
    chunks, size = [], 0
    try:
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > max_bytes:
                raise ExtractionError(f"The document is over the {max_bytes:,}-byte limit.")
            if time.monotonic() > deadline:
                raise _timed_out(url, timeout)
            chunks.append(chunk)
    except httpx.TimeoutException:
        raise _timed_out(url, timeout) from None
    except httpx.HTTPError as exc:
        raise ExtractionError(f"Reading {_shown(url)} failed: {exc}.") from None
    data = b"".join(chunks)
    if kind is None:  # served without a useful type: the name in the URL or the bytes tell
        kind = kind_for_upload(name=PurePosixPath(url.path).name, content_type=None, head=data[:2048])
        if kind is None:
            raise ExtractionError(f"{_shown(url)} is {content_type or 'of no declared type'}, and not a supported "
                                  "document type (HTML, PDF, Word .docx, Markdown, plain text or CSV).")
    elif data.lstrip()[:5] == b"%PDF-":
        kind = "pdf"
    return Fetched(data, content_type, str(url), kind)


def _timed_out(url: httpx.URL, seconds: float | None) -> ExtractionError:
    return ExtractionError(f"{_shown(url)} did not send the document within {seconds or 0:g} seconds.")


def _shown(url: httpx.URL) -> str:
    """The URL without credentials, query and fragment (they may carry tokens), for messages."""
    return str(url.copy_with(userinfo=b"", query=None, fragment=None))


def _run(coroutine):
    """Runs the guard's coroutine from sync code, in a thread of its own when this thread already runs a loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()
