"""Fetching URL documents from a real HTTP server on 127.0.0.1 (admitted by the outbound allowlist, as the other
outbound tests do): pages and PDFs come back with their kind; refused addresses (at once or after a redirect), an
oversized body, a wrong content type, an error status and a slow server fail with a clear reason."""
import gzip
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from agents.knowledge.extract import ExtractionError, extract
from agents.knowledge.fetch import fetch_document, url_refusal
from tests.agents.knowledge.test_extract import HTML, make_pdf

PDF = make_pdf([("Opening hours", "Open from nine to five."), ("Closed days", "Closed on public holidays.")])


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        parts = urlsplit(self.path)
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        route = parts.path
        if route == "/page":
            self._send(200, HTML.encode(), "text/html; charset=utf-8")
        elif route == "/guide.pdf":
            self._send(200, PDF, "application/pdf")
        elif route == "/download/guide.pdf":
            self._send(200, PDF, "application/octet-stream")
        elif route == "/faq.csv":
            self._send(200, b"q,a\nOpen?,Yes\n", "text/csv")
        elif route == "/gzip":
            self._send(200, gzip.compress(b"<html><body><article><p>" + b"zipped words " * 20000
                                          + b"</p></article></body></html>"), "text/html",
                       extra={"Content-Encoding": "gzip"})
        elif route == "/image":
            self._send(200, b"\x89PNG\r\n\x1a\n", "image/png")
        elif route == "/json":
            self._send(200, b"{}", "application/json")
        elif route == "/redirect":
            self.send_response(int(query.get("code", "302")))
            self.send_header("Location", query["to"])
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif route == "/loop":
            self.send_response(302)
            self.send_header("Location", "/loop")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif route == "/big":
            size = int(query["size"])
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            if query.get("chunked"):
                self.send_header("Transfer-Encoding", "chunked")
            else:
                self.send_header("Content-Length", str(size))
            self.end_headers()
            for _ in range(0, size, 8192):
                piece = b"word " * 1638 + b"xx"
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece) if query.get("chunked") else piece)
            if query.get("chunked"):
                self.wfile.write(b"0\r\n\r\n")
        elif route == "/slow":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", "100000")
            self.end_headers()
            for _ in range(100):  # a trickle: each read comes in time, the whole body does not
                if self.server.stopping.wait(0.05):
                    return
                self.wfile.write(b"x" * 1000)
        else:
            self._send(404, b"Not here", "text/plain")

    def _send(self, status, body, content_type, extra=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request, client_address):
        pass  # a client that gave up mid-body


@pytest.fixture(scope="module")
def site():
    server = _Server(("127.0.0.1", 0), _Handler)
    server.stopping = threading.Event()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.stopping.set()
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def loopback(settings):
    settings.CONDUET_OUTBOUND_ALLOWLIST = ["127.0.0.1"]
    return settings


def test_html_page(site, loopback):
    fetched = fetch_document(f"{site}/page")
    assert (fetched.content_type, fetched.kind, fetched.url) == ("text/html", "html", f"{site}/page")
    assert extract(kind=fetched.kind, data=fetched.data, name=fetched.url).text.startswith("# Refunds")


def test_pdf_and_csv(site, loopback):
    fetched = fetch_document(f"{site}/guide.pdf")
    assert (fetched.kind, fetched.content_type, fetched.data) == ("pdf", "application/pdf", PDF)
    assert "nine to five" in extract(kind="pdf", data=fetched.data, name="guide.pdf").text
    assert fetch_document(f"{site}/faq.csv").kind == "csv"


def test_untyped_download_is_recognised_by_its_bytes(site, loopback):
    fetched = fetch_document(f"{site}/download/guide.pdf")
    assert (fetched.kind, fetched.data) == ("pdf", PDF)


def test_redirects_are_followed_and_the_final_url_kept(site, loopback):
    fetched = fetch_document(f"{site}/redirect?to=/redirect%3Fto%3D/page&code=301")
    assert fetched.url == f"{site}/page" and fetched.kind == "html"


@pytest.mark.parametrize(("target", "allowlist"), [
    ("http://10.0.0.1/internal", ["127.0.0.1"]),
    ("http://169.254.169.254/latest/meta-data/", ["127.0.0.1", "169.254.0.0/16"]),  # metadata: refused anyway
])
def test_a_redirect_to_a_private_address_is_refused(site, settings, target, allowlist):
    settings.CONDUET_OUTBOUND_ALLOWLIST = allowlist
    started = time.monotonic()
    with pytest.raises(ExtractionError, match="redirects to a refused address") as caught:
        fetch_document(f"{site}/redirect?to={target}")
    assert target.split("/")[2] in str(caught.value)
    assert time.monotonic() - started < 2  # refused before any connection attempt


def test_a_private_address_is_refused_without_the_allowlist(site, settings):
    settings.CONDUET_OUTBOUND_ALLOWLIST = []
    with pytest.raises(ExtractionError, match="is refused"):
        fetch_document(f"{site}/page")


def test_too_many_redirects(site, loopback):
    with pytest.raises(ExtractionError, match="more than 5 times"):
        fetch_document(f"{site}/loop")


@pytest.mark.parametrize("chunked", ["", "1"])
def test_an_oversized_body_is_refused(site, loopback, chunked):
    loopback.CONDUET_KB_MAX_DOCUMENT_BYTES = 50_000
    with pytest.raises(ExtractionError, match="over the 50,000-byte limit"):
        fetch_document(f"{site}/big?size=200000&chunked={chunked}")
    assert fetch_document(f"{site}/big?size=40000").kind == "txt"


def test_the_size_limit_counts_decompressed_bytes(site, loopback):
    with pytest.raises(ExtractionError, match="over the 100,000-byte limit"):
        fetch_document(f"{site}/gzip", max_bytes=100_000)  # about 6 kB on the wire, 260 kB unpacked


@pytest.mark.parametrize(("route", "shown"), [("/image", "image/png"), ("/json", "application/json")])
def test_a_wrong_content_type_is_refused_naming_it(site, loopback, route, shown):
    with pytest.raises(ExtractionError, match=f"is {shown}, not a supported document type"):
        fetch_document(f"{site}{route}")


def test_an_error_status_is_named(site, loopback):
    with pytest.raises(ExtractionError, match="answered HTTP 404 Not Found"):
        fetch_document(f"{site}/missing?token=secret")
    with pytest.raises(ExtractionError) as caught:
        fetch_document(site.replace("//", "//bob:hunter2@") + "/missing?token=secret")
    assert "secret" not in str(caught.value) and "hunter2" not in str(caught.value)  # nor credentials


def test_the_whole_fetch_has_a_time_limit(site, loopback):
    started = time.monotonic()
    with pytest.raises(ExtractionError, match="within 1 seconds"):
        fetch_document(f"{site}/slow", timeout=1)
    assert time.monotonic() - started < 3


def test_a_closed_port_is_a_connection_failure(loopback):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ExtractionError, match="Could not connect"):
        fetch_document(f"http://127.0.0.1:{port}/page")


@pytest.mark.parametrize(("url", "reason"), [
    ("", "empty"),
    ("ftp://example.com/file.pdf", "only http and https"),
    ("file:///etc/passwd", "only http and https"),
    ("http:///path", "no host"),
    ("http://10.0.0.1/", "private, loopback"),
    ("http://127.0.0.1:8000/", "private, loopback"),
    ("http://localhost/", "private, loopback"),
    ("http://169.254.169.254/", "private, loopback"),
    ("http://[::1]/", "private, loopback"),
    ("http://[1.2.3]/", "not valid"),
    ("https://example.com/" + "a" * 3000, "longer than 2048"),
])
def test_url_refusal_names_the_reason(settings, url, reason):
    settings.CONDUET_OUTBOUND_ALLOWLIST = []
    refusal = url_refusal(url)
    assert refusal is not None and reason in refusal


def test_url_refusal_admits_allowlisted_and_public_addresses(settings):
    settings.CONDUET_OUTBOUND_ALLOWLIST = ["127.0.0.1"]
    assert url_refusal("http://127.0.0.1:8000/page") is None
    assert url_refusal("https://93.184.215.14/docs") is None  # a public address: nothing to resolve
    settings.CONDUET_OUTBOUND_ALLOWLIST = ["169.254.0.0/16"]
    assert "169.254.169.254" in url_refusal("http://169.254.169.254/")  # metadata, whatever the allowlist says


async def test_url_refusal_inside_an_event_loop(settings):
    settings.CONDUET_OUTBOUND_ALLOWLIST = []
    assert "private" in url_refusal("http://10.1.2.3/")
