"""A real MCP tool server on 127.0.0.1, in a background thread: the SDK's `MCPServer` over streamable HTTP, served by
uvicorn. A context manager (`with McpServer() as server:`) and the `mcp_server` pytest fixture. It records what went
over the wire: every HTTP request's method and headers (`server.requests`), each tool call (`server.calls`) and how
many times its tools were listed (`server.list_count`).

Tools (at `server.url`, http://127.0.0.1:<port>/mcp):
- `add(a: int, b: int)` → structured `{"result": a + b}`
- `search_docs(query: str)` → unstructured text contents (two blocks)
- `fail(reason: str)` → raises: an MCP result with `isError` and the reason as its text
- `slow(seconds: float)` → waits, then the text "done"
- `big(size: int)` → unstructured text of `size` bytes
"""
import socket
import threading
import time
from dataclasses import dataclass

import anyio
import pytest
import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import TextContent


@dataclass(frozen=True)
class RecordedHttpRequest:
    method: str
    path: str
    headers: dict[str, str]  # names lowercased


class McpServer:
    def __init__(self):
        self.requests: list[RecordedHttpRequest] = []
        self.calls: list[tuple[str, dict]] = []
        self.list_count = 0
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._socket.getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def _record_call(self, name: str, args: dict) -> None:
        with self._lock:
            self.calls.append((name, args))

    def _app(self):
        owner = self

        class RecordingServer(MCPServer):
            async def list_tools(self):
                with owner._lock:
                    owner.list_count += 1
                return await super().list_tools()

        server = RecordingServer("fake-docs", log_level="WARNING")

        @server.tool(description="Adds two whole numbers.")
        def add(a: int, b: int) -> int:
            owner._record_call("add", {"a": a, "b": b})
            return a + b

        @server.tool(description="Searches the product documentation.", structured_output=False)
        def search_docs(query: str) -> list[TextContent]:
            owner._record_call("search_docs", {"query": query})
            return [TextContent(type="text", text=f"Result for {query}"),
                    TextContent(type="text", text="See also: the FAQ")]

        @server.tool(description="Always fails.", structured_output=False)
        def fail(reason: str) -> str:
            owner._record_call("fail", {"reason": reason})
            raise ToolError(f"cannot do it: {reason}")  # the SDK sends a ToolError's text to the client

        @server.tool(description="Waits, then answers.", structured_output=False)
        async def slow(seconds: float) -> str:
            owner._record_call("slow", {"seconds": seconds})
            await anyio.sleep(seconds)
            return "done"

        @server.tool(description="Returns size bytes of text.", structured_output=False)
        def big(size: int) -> str:
            owner._record_call("big", {"size": size})
            return "x" * size

        app = server.streamable_http_app(json_response=True)

        async def recording(scope, receive, send):
            if scope["type"] == "http":
                headers = {name.decode("latin-1").lower(): value.decode("latin-1")
                           for name, value in scope["headers"]}
                with owner._lock:
                    owner.requests.append(RecordedHttpRequest(scope["method"], scope["path"], headers))
            await app(scope, receive, send)

        return recording

    def start(self) -> "McpServer":
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        config = uvicorn.Config(self._app(), log_level="warning", lifespan="on", timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]},
                                        name=f"mcp-server-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the fake MCP server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)
        self._socket.close()

    def __enter__(self) -> "McpServer":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


@pytest.fixture
def mcp_server():
    """A running `McpServer` for one test: `mcp_server.url`, `.requests`, `.calls`, `.list_count`."""
    with McpServer() as server:
        yield server
