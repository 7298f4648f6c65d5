"""How the engine reaches the world. The turn service fills the ports it has; a step whose port is missing falls
back to what works with no model (see its step type in `agents/runtime/steps/`)."""
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Ports:
    """How the engine reaches the world; each is optional, and each is async.

    - `llm(messages: list[dict], *, tools: list[dict] | None = None) -> AsyncIterator[str]`: an async generator
      over an OpenAI-style chat (`[{"role", "content"}]`), yielding the reply's text chunks as they arrive. The engine
      closes it (`aclose`) when the turn stops early.
    - `knowledge(question: str) -> Awaitable[list[dict]]`: hits `{"text", "documentId", "documentName", "chunkId",
      "score"}`, best first.
    - `tools(name: str, args: dict) -> Awaitable[dict]`: calls the project's tool; raises on failure.
    - `data(sql: str, *, name: str) -> Awaitable[dict]`: a new data frame `{"name", "numRows", "columns"}`; raises on
      failure.

    The engine awaits them on the turn's own task, so a cancellation (a user's "stop", a turn timeout) interrupts
    the call in flight: a port must let `asyncio.CancelledError` through, and must not block the event loop (a
    blocking client belongs behind `asyncio.to_thread` inside the port, not in the engine).
    """

    llm: Callable[..., AsyncIterator[str]] | None = None
    knowledge: Callable[[str], Awaitable[list[dict]]] | None = None
    tools: Callable[[str, dict], Awaitable[dict]] | None = None
    data: Callable[..., Awaitable[dict]] | None = None
