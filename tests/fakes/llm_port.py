"""A scripted, in-process fake of the `Ports.llm` contract (`agents/runtime/ports.py`) for engine tests: each call
takes the next scripted reply — text chunks and/or tool calls, or an error to raise — streams its chunks, then yields
one `LlmResult`. It records what every call was given (messages, tools, json_output) and whether its stream was
closed before its end.

    llm = FakeLlm(calls(call("lookup", {"id": 1})), say("It is ", "shipped."))
    run_turn(spec, state, action, ports=Ports(llm=llm))
    llm.calls[1]["messages"][-1]  # the tool message the engine sent back
"""
import asyncio
import copy
import json
from collections import deque
from dataclasses import dataclass
from typing import Any

from agents.runtime.ports import LlmResult, ToolCall


@dataclass(frozen=True)
class Reply:
    chunks: tuple[str, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()
    error: BaseException | None = None  # raised when the call starts, instead of a reply
    hang: bool = False  # after its chunks the stream waits (forever) instead of finishing


def say(*chunks: str, hang: bool = False) -> Reply:
    return Reply(chunks=chunks, hang=hang)


def call(name: str, arguments: Any = None, *, id: str | None = None) -> ToolCall:
    """A tool call; `arguments` is JSON-encoded unless it is already text (so a test can send invalid JSON)."""
    text = arguments if isinstance(arguments, str) else json.dumps(arguments if arguments is not None else {})
    return ToolCall(id=id or f"call_{name}", name=name, arguments=text)


def calls(*tool_calls: ToolCall, text: str = "") -> Reply:
    return Reply(chunks=(text,) if text else (), tool_calls=tool_calls)


def fails(error: BaseException) -> Reply:
    return Reply(error=error)


class FakeLlm:
    """`FakeLlm(*replies, default=None)`: the replies in order, then `default` for every further call (None: a
    call past the script fails the test)."""

    def __init__(self, *replies: Reply, default: Reply | None = None):
        self.replies = deque(replies)
        self.default = default
        # per call: messages, tools, json_output; closed_early (its stream was closed before it ended) and closed
        self.calls: list[dict] = []
        self.hanging = asyncio.Event()  # set when a `hang` reply has sent its chunks

    def __call__(self, messages: list[dict], *, tools: list[dict] | None = None, json_output: bool = False):
        record = {"messages": copy.deepcopy(messages), "tools": copy.deepcopy(tools), "json_output": json_output,
                  "closed_early": None, "closed": False}
        self.calls.append(record)
        return self._stream(record)

    def tool_names(self, index: int = -1) -> list[str]:
        """The names of the tools offered to one call."""
        return [tool["function"]["name"] for tool in self.calls[index]["tools"] or []]

    def system(self, index: int = -1) -> str:
        messages = self.calls[index]["messages"]
        return messages[0]["content"] if messages and messages[0]["role"] == "system" else ""

    async def _stream(self, record: dict):
        if self.replies:
            reply = self.replies.popleft()
        elif self.default is not None:
            reply = self.default
        else:
            raise AssertionError(f"the model was called more often than scripted ({len(self.calls)} calls)")
        if reply.error is not None:
            raise reply.error
        record["closed_early"] = True  # until the consumer has taken the result and asked for more
        try:
            for chunk in reply.chunks:
                await asyncio.sleep(0)
                yield chunk
            if reply.hang:
                self.hanging.set()
                await asyncio.sleep(3600)
            text = "".join(reply.chunks)
            yield LlmResult(text=text, tool_calls=reply.tool_calls, model="fake-model",
                            prompt_tokens=sum(len(str(m.get("content") or "")) for m in record["messages"]) // 4,
                            completion_tokens=len(text) // 4, estimated=True, first_token_ms=1, total_ms=2,
                            finish_reason="tool_calls" if reply.tool_calls else "stop")
            record["closed_early"] = False
        finally:
            record["closed"] = True
