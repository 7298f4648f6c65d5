"""A real HTTP tool endpoint on 127.0.0.1, in a background thread: a context manager (`with ToolServer() as
server:`) and the `tool_server` pytest fixture. It speaks HTTP/1.1 (keep-alive, chunked when asked) and records
every request it receives, so tests assert on what actually went over the wire.

Endpoints (`server.url` + …):
- `GET /accounts?email=` → `{"email", "balance": 42.5, "plan": {"tier": "premium"}}`
- `/echo`, `/echo/<anything>` (any method) → `{"method", "path", "query", "json", "headers"}`: the JSON body and
  the headers received
- `GET /slow?seconds=N` → waits N seconds (other requests are served meanwhile), then `{"slept": N}`
- `GET /status/<code>` → that status, body `{"status": code}`
- `/redirect?to=<url>&code=302` (any method) → a redirect to `to`
- `GET /big?size=N&chunked=1` → N bytes (default 2 MiB) of `x`, with Content-Length unless chunked
- `GET /text` → `text/plain` "plain words"
"""
import json
import ssl
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

_BIG = 2 * 1024 * 1024


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str  # with the query string
    headers: dict[str, str]  # names lowercased
    body: bytes

    @property
    def route(self) -> str:
        return urlsplit(self.path).path

    @property
    def query(self) -> dict[str, str]:
        return {key: values[-1] for key, values in parse_qs(urlsplit(self.path).query).items()}

    def json(self):
        return json.loads(self.body) if self.body else None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"

    def log_message(self, format, *args):  # quiet tests
        pass

    def do_GET(self):
        self._handle()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _handle(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        self.server.owner._record(RecordedRequest(self.command, self.path, headers, body))
        parts = urlsplit(self.path)
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        route = parts.path

        if route == "/accounts" and self.command == "GET":
            self._json(200, {"email": query.get("email"), "balance": 42.5, "plan": {"tier": "premium"}})
        elif route == "/echo" or route.startswith("/echo/"):
            try:
                parsed = json.loads(body) if body else None
            except ValueError:
                parsed = body.decode("utf-8", "replace")
            self._json(200, {"method": self.command, "path": self.path, "query": query, "json": parsed,
                             "headers": headers})
        elif route == "/slow":
            seconds = float(query.get("seconds", "1"))
            self.server.stopping.wait(seconds)  # ends early when the server stops
            self._json(200, {"slept": seconds})
        elif route.startswith("/status/") and route.removeprefix("/status/").isdigit():
            code = int(route.removeprefix("/status/"))
            self._json(code, {"status": code})
        elif route == "/redirect" and "to" in query:
            self.send_response(int(query.get("code", "302")))
            self.send_header("Location", query["to"])
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif route == "/big":
            self._big(int(query.get("size", _BIG)), chunked=query.get("chunked") == "1")
        elif route == "/text":
            self._send(200, b"plain words", "text/plain; charset=utf-8")
        else:
            self._json(404, {"error": "not found"})

    def _json(self, status: int, payload):
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _send(self, status: int, body: bytes, content_type: str):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _big(self, size: int, *, chunked: bool):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(size))
        self.end_headers()
        block = b"x" * 65536
        sent = 0
        while sent < size:
            piece = block[: min(len(block), size - sent)]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            sent += len(piece)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # a handler still sleeping in /slow must not hold up the test's teardown

    def __init__(self, owner: "ToolServer"):
        self.owner = owner
        self.stopping = threading.Event()
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request, client_address):
        pass  # a client that gave up (a timeout test) closes its socket under a handler; that is expected


class ToolServer:
    """`with ToolServer() as server:` serves on `server.url` (http://127.0.0.1:<free port>) until the block ends.
    `ToolServer(tls=True)` serves HTTPS with a fresh self-signed certificate for the name `localhost` (its URL is
    https://localhost:<port>; `server.client_ssl_context()` trusts it); it needs the `cryptography` package."""

    def __init__(self, *, tls: bool = False):
        self.tls = tls
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._cert_pem: bytes | None = None

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}" if self.tls else f"http://127.0.0.1:{self.port}"

    def client_ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        context.load_verify_locations(cadata=self._cert_pem.decode())
        return context

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def start(self) -> "ToolServer":
        self._server = _Server(self)
        if self.tls:
            self._server.socket = self._server_ssl_context().wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"tool-server-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> "ToolServer":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def _server_ssl_context(self) -> ssl.SSLContext:
        import datetime
        import tempfile
        from pathlib import Path

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(key, hashes.SHA256()))
        self._cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with tempfile.TemporaryDirectory() as directory:  # the ssl module loads a chain from files only
            cert_path, key_path = Path(directory, "cert.pem"), Path(directory, "key.pem")
            cert_path.write_bytes(self._cert_pem)
            key_path.write_bytes(key_pem)
            context.load_cert_chain(cert_path, key_path)
        return context


@pytest.fixture
def tool_server():
    """A running `ToolServer` for one test: `tool_server.url`, `tool_server.requests`."""
    with ToolServer() as server:
        yield server
