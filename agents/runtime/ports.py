"""How the engine reaches the world. The turn service fills the ports it has (`agents/ports.py`); a step whose port
is missing falls back to what works with no model (see its step type in `agents/runtime/steps/`).

The types here are the ports' vocabulary, pure of any client library: what a model call yields (`LlmResult`,
`ToolCall`) and how an upstream failure is reported (`UpstreamError`)."""
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ToolCall:
    """One tool call the model asked for: `arguments` is the JSON text exactly as the model wrote it (it may be
    invalid JSON; the engine reports that back to the model)."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class LlmResult:
    """The last item of a model call's stream: the whole reply, the tool calls (possibly several in parallel), and
    what the call cost. `estimated` is True when the provider sent no usage and the token counts are estimates."""

    text: str
    tool_calls: tuple[ToolCall, ...] = ()
    model: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    estimated: bool = False
    first_token_ms: int | None = None  # time to the first streamed chunk (text or tool call)
    total_ms: int = 0
    finish_reason: str | None = None

    def record(self) -> dict:
        """What the reply message keeps of this call (`Message.llm_calls`)."""
        return {"model": self.model, "promptTokens": self.prompt_tokens,
                "completionTokens": self.completion_tokens, "estimated": self.estimated,
                "firstTokenMs": self.first_token_ms, "totalMs": self.total_ms, "finishReason": self.finish_reason}


class UpstreamError(Exception):
    """A model (or other upstream) call failed for good — after the port's retries. The message is safe to show to
    the API client (no credentials, no URLs with secrets); the turn ends with an `UPSTREAM_ERROR` error trace."""

    code = "UPSTREAM_ERROR"

    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Ports:
    """How the engine reaches the world; each is optional, and each is async.

    - `llm(messages, *, tools=None, json_output=False) -> AsyncIterator[str | LlmResult]`: one chat-completions call
      over OpenAI-style `messages` (`{"role": "system|user|assistant|tool", "content", "tool_calls"?,
      "tool_call_id"?}`), offering `tools` (OpenAI function definitions `{"type": "function", "function": {"name",
      "description", "parameters"}}`). It yields the reply's text chunks (`str`) as they arrive, then exactly one
      `LlmResult`. `json_output` asks for a JSON object reply (extraction). It raises `UpstreamError` when the
      provider fails after retries. The engine closes it (`aclose`) when the turn stops early, which closes the
      upstream HTTP stream.
    - `knowledge(question: str, *, answerable: bool = True) -> Awaitable[list[dict]]`: passages of the project's
      knowledge base, best first, each `{"text", "documentId", "documentName", "chunkId", "score", "headingPath"}`
      (`chunkId` is `chk_<id>`, `headingPath` the headings above the passage). With `answerable` (the default) only
      the hits good enough to answer with when no model judges them — the search's answer threshold: the `kb` step
      and the no-model fallback answer with these, and an empty list means "the knowledge base has no answer".
      `answerable=False` gives the top hits whatever their relevance, with their scores, for a model to judge (the
      `knowledge_search` tool). The turn service offers this port only to a project with a ready document.
    - `tools(name: str, args: dict) -> Awaitable[Any]`: calls one of the project's tools (an HTTP tool by id, an
      MCP tool by its prefixed name) and returns its JSON result; raises on failure (the message says why; it
      never contains the tool's secrets).
    - `tool_definitions() -> Awaitable[list[ToolDefinition]]`: the project's callable tools (HTTP and MCP) as the
      model sees them.
    - `data(sql: str, *, name: str) -> Awaitable[dict]`: runs one read-only SQL SELECT over the conversation's data
      frames into a new frame named `name` (made unique) and returns what the `data_frame` trace carries: `{"name",
      "numRows", "columns": [str]}` (API.md) and `"dataFrameId", "numColumns", "dtypes": [str], "sqlQuery",
      "parentDataFrameIds", "sampleRows": [[…]]` (its first rows, each a list in the columns' order). Raises on a
      refused or failing query (the message says why, for the model to correct its SQL).
    - `data_frames() -> Awaitable[list[dict]]`: the conversation's frames as the agent sees them, oldest first:
      `{"name", "numRows", "columns": [{"name", "dtype"}], "sampleRows": [[…]]}`. The turn service offers `data` and
      `data_frames` only to a conversation with a ready frame.

    The engine awaits them on the turn's own task, so a cancellation (a user's "stop", a turn timeout) interrupts
    the call in flight: a port must let `asyncio.CancelledError` through, and must not block the event loop (a
    blocking client belongs behind `asyncio.to_thread` inside the port, not in the engine).
    """

    llm: Callable[..., AsyncIterator["str | LlmResult"]] | None = None
    knowledge: Callable[[str], Awaitable[list[dict]]] | None = None
    tools: Callable[[str, dict], Awaitable[Any]] | None = None
    tool_definitions: Callable[[], Awaitable[list["ToolDefinition"]]] | None = None
    data: Callable[..., Awaitable[dict]] | None = None
    data_frames: Callable[[], Awaitable[list[dict]]] | None = None


@dataclass(frozen=True)
class ToolDefinition:
    """A tool as offered to the model: `name` is what the model calls (`^[A-Za-z0-9_-]{1,64}$`); `source` is the id
    of the project tool it comes from (an HTTP tool's own id; an MCP tool's server id), which `allowedToolIds`
    names."""

    name: str
    description: str
    parameters: dict = field(default_factory=lambda: {"type": "object", "properties": {}})
    source: str = ""

    def openai(self) -> dict:
        return {"type": "function",
                "function": {"name": self.name, "description": self.description, "parameters": self.parameters}}
