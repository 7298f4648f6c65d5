"""How the engine reaches the world. The turn service fills the ports it has; a step whose port is missing falls
back to what works with no model (see the step handlers in `engine.py`)."""
from collections.abc import Callable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Ports:
    """How the engine reaches the world; each is optional.

    - `llm(messages: list[dict], *, tools: list[dict] | None = None) -> Iterator[str]`: an OpenAI-style chat
      (`[{"role", "content"}]`), yielding the reply's text chunks as they arrive.
    - `knowledge(question: str) -> list[dict]`: hits `{"text", "documentId", "documentName", "chunkId", "score"}`,
      best first.
    - `tools(name: str, args: dict) -> dict`: calls the project's tool; raises on failure.
    - `data(sql: str, *, name: str) -> dict`: a new data frame `{"name", "numRows", "columns"}`; raises on failure.
    """

    llm: Callable[..., Iterator[str]] | None = None
    knowledge: Callable[[str], list[dict]] | None = None
    tools: Callable[[str, dict], dict] | None = None
    data: Callable[..., dict] | None = None
