"""The agent loop (DESIGN.md "Runtime", agentic): one model with the project's instructions, the current phase's, a
snapshot of chosen variables and the conversation so far, calling tools until it answers without one.

One loop per turn. Each round the model's text is said as it streams; each tool call of its response (parallel
calls, in order) gets `tool-call` start and end traces, runs, and its result — or `{"error"}`, for arguments that
are not JSON, a refused built-in or a failing tool — goes back to the model as a `tool` message. The loop stops
when the model answers without tool calls, when a built-in ended or handed off the conversation, when a workflow
tool left its flow waiting for the user (the next turn answers that step), or after `max_tool_rounds` rounds (then
the fallback message and a debug warning).

Tools offered: the built-ins (`builtins.py`: `set_variable`, `handoff`, `end_conversation`, `knowledge_search`,
`query_data` — the conversation's data frames then described in the system prompt — and `workflow_<id>` per
workflow), then the project's tools (`Ports.tool_definitions`) that every non-empty allowlist names (`allowed_by`):
the harness's, and the current phase's (or the `agent` step's). A project tool's result may be saved into variables
(its `save` mapping, as an `api` step's).

Phases (`spec.phases`): the current one is `state["phase"]`; its instructions join the system prompt and its
allowlist the filter; it exits to the next phase in document order when its exit expression is true (checked after
each tool round and at the end of the turn) or when the model called its exit tool successfully; the last phase
never exits. Its buttons are offered as a `choice` at the end of a turn the agent answered."""
import json
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agents.runtime.builtins import BuiltIns, Tool, ToolRefused, as_json, frames_prompt
from agents.runtime.ports import LlmResult, ToolCall, ToolDefinition
from agents.runtime.types import Action, TraceType, trace
from agents.runtime.values import VARIABLE_NAME_RE, json_value

if TYPE_CHECKING:  # this module imports nothing of the step types: they (agent, ai) build on it
    from agents.runtime.engine import Turn
    from agents.runtime.spec import AgentSpec, Phase

Traces = AsyncIterator[dict | None]

DEFAULT_MAX_TOOL_ROUNDS = 8  # CONDUET_AGENT_MAX_TOOL_ROUNDS, given as context["max_tool_rounds"]
DEFAULT_HISTORY_TOKENS = 8000  # CONDUET_AGENT_HISTORY_TOKENS, given as context["history_tokens"]
MESSAGE_TOKENS = 4  # what a history message costs beyond its text
TOOL_RESULT_CHARS = 4000  # what the model reads of a tool's result
RECORDED_RESULT_CHARS = 2000  # what the reply message keeps of it (turn.tool_calls)
NO_LLM = ("This agentic project needs a language model: set CONDUET_LLM_BASE_URL to an OpenAI-compatible endpoint "
          "and CONDUET_LLM_MODEL (or the project's model name).")
GREETING = "The user has just opened the conversation: greet them briefly and say how you can help."


@dataclass
class ModelReply:
    """What a streamed model call came to, once its traces are consumed (`Turn.stream_reply(stream, reply)`)."""

    result: LlmResult | None = None


def allowed_by(tool_id: str, *allowlists: tuple[str, ...]) -> bool:
    """The allowedToolIds rule: absent or empty allows every project tool; each non-empty list must name it."""
    return all(not allowlist or tool_id in allowlist for allowlist in allowlists)


# --- phases


def phase_of(spec: "AgentSpec", phase_id: str | None) -> str | None:
    """The session's phase: its own if the document still has it, else the first (None without phases)."""
    ids = [phase.id for phase in spec.phases]
    return phase_id if phase_id in ids else (ids[0] if ids else None)


def current_phase(turn: "Turn") -> "Phase | None":
    return next((phase for phase in turn.spec.phases if phase.id == turn.state["phase"]), None)


def phase_advance(turn: "Turn", called: frozenset[str] = frozenset()) -> list[dict | None]:
    """Moves on while the current phase's exit condition holds (`called`: the tools the model called successfully
    this round, for a `{"tool"}` condition); the debug traces that say so."""
    traces, phases = [], turn.spec.phases
    while (phase := current_phase(turn)) is not None and phase is not phases[-1]:
        exits = (phase.exit_tool is not None and phase.exit_tool in called) or (
            phase.exit_expression is not None and bool(turn.evaluate(phase.exit_expression)))
        if not exits:
            break
        following = phases[phases.index(phase) + 1]
        turn.state["phase"] = following.id
        traces.append(turn.debug_trace("info", f"Phase {phase.id} → {following.id}"))
        called = frozenset()  # a tool call exits one phase, not the ones after it
    return traces


# --- what the model reads


def media_note(action: Action) -> str | None:
    """What the model reads of a media action."""
    if action.type != "media":
        return None
    return f"[The user sent a file: {action.payload.get('url')} ({action.payload.get('mimeType')})]"


def estimate_tokens(text: str) -> int:
    """About four characters a token: close enough for a budget, and needs no tokenizer."""
    return math.ceil(len(text) / 4)


def history_within(history: list[dict], budget: int) -> list[dict]:
    """The newest history entries whose estimated tokens fit the budget (the oldest dropped first)."""
    kept, used = [], 0
    for entry in reversed(history):
        if not isinstance(entry, dict) or entry.get("role") not in ("user", "assistant"):
            continue
        content = str(entry.get("content") or "")
        used += estimate_tokens(content) + MESSAGE_TOKENS
        if used > budget:
            break
        kept.append({"role": entry["role"], "content": content})
    return kept[::-1]


def clipped(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "…[truncated]"


# --- the loop


class AgentLoop:
    """One tool-calling loop. Subclasses say what the system prompt holds (`instructions`), which allowlists filter
    the project's tools, what happens after a tool round (`after_round`) and when the loop is done early
    (`finished`)."""

    offers_workflows = True

    def __init__(self, turn: "Turn"):
        self.turn = turn
        self.spec = turn.spec
        self.greeting = False
        self._project_tools: list[ToolDefinition] | None = None
        self.built_ins = BuiltIns(turn)

    def instructions(self) -> list[str]:
        return [self.spec.instructions]

    def allowlists(self) -> tuple[tuple[str, ...], ...]:
        return (self.spec.harness.allowed_tool_ids,)

    def after_round(self, called: frozenset[str]) -> list[dict | None]:
        return []

    def finished(self) -> bool:
        return False

    @property
    def stopped(self) -> bool:
        """The conversation ended, was handed off, or a flow waits for the user: the model has no more to say."""
        return self.turn.ended or self.turn.handoff or bool(self.turn.state["waiting"])

    async def run(self, content: str | None) -> Traces:
        """The loop on the user's words (None: the user just opened the conversation)."""
        turn = self.turn
        rounds = int(turn.context.get("max_tool_rounds") or DEFAULT_MAX_TOOL_ROUNDS)
        budget = int(turn.context.get("history_tokens") or DEFAULT_HISTORY_TOKENS)
        self.greeting = content is None
        messages = [{"role": "system", "content": ""}, *history_within(turn.state["history"], budget)]
        if content is not None:
            messages.append({"role": "user", "content": content})
        for _ in range(rounds):
            tools = await self.tools()
            if "query_data" in tools:
                await self.built_ins.load_frames()
            messages[0] = {"role": "system", "content": self.system_prompt(tools)}
            offered = [tool.definition.openai() for tool in tools.values()] or None
            reply = ModelReply()
            async for item in turn.stream_reply(turn.ports.llm(messages, tools=offered), reply):
                yield item
            calls = reply.result.tool_calls
            if not calls:
                break
            messages.append({"role": "assistant", "content": reply.result.text or None, "tool_calls": [
                {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
                for call in calls]})
            called: set[str] = set()
            for call in calls:
                async for item in self.call(call, tools, messages, called):
                    yield item
                if self.stopped:
                    break
            if self.stopped:
                break
            for item in self.after_round(frozenset(called)):
                yield item
            if self.finished():
                break
        else:
            yield turn.debug_trace("warn", f"The agent reached its limit of {rounds} tool rounds "
                                           "(CONDUET_AGENT_MAX_TOOL_ROUNDS); answering with the fallback message")
            yield turn.say(self.spec.fallback_message)
        if self.built_ins.sources:
            yield trace(TraceType.KNOWLEDGE, sources=self.built_ins.sources)

    # --- tools

    async def tools(self) -> dict[str, Tool]:
        """What the model may call this round (a phase change between rounds changes it)."""
        tools = {tool.definition.name: tool for tool in self.built_ins.offered(workflows=self.offers_workflows)}
        allowlists = self.allowlists()
        for definition in await self.project_tools():
            if not allowed_by(definition.source or definition.name, *allowlists):
                continue
            if definition.name not in tools:  # a built-in's name wins (the spec refuses such tool ids)
                tools[definition.name] = Tool(definition, "project")
        return tools

    async def project_tools(self) -> list[ToolDefinition]:
        if self._project_tools is None:
            self._project_tools = []
            if self.turn.ports.tool_definitions is not None and self.turn.ports.tools is not None:
                try:
                    self._project_tools = list(await self.turn.ports.tool_definitions())
                except Exception as exc:  # an MCP server away: the agent goes on without its tools
                    self.turn.warn(f"The project's tools could not be listed: {exc}")
        return self._project_tools

    def system_prompt(self, tools: dict[str, Tool]) -> str:
        parts = list(self.instructions())
        if self.spec.harness.snapshot_keys:
            variables = self.turn.state["variables"]
            snapshot = {key: json_value(variables.get(key)) for key in self.spec.harness.snapshot_keys}
            parts.append(f"Session variables (JSON): {as_json(snapshot)}")
        if built_ins := self.built_ins.prompt_line(tools):
            parts.append(built_ins)
        if "query_data" in tools and (frames := frames_prompt(self.built_ins.frames or [])):
            parts.append(frames)
        if self.greeting:
            parts.append(GREETING)
        return "\n\n".join(part for part in parts if part)

    async def call(self, call: ToolCall, tools: dict[str, Tool], messages: list[dict], called: set[str]) -> Traces:
        """One tool call: its traces, its record in `turn.tool_calls`, and its result as a `tool` message."""
        turn = self.turn
        yield trace(TraceType.TOOL_CALL, phase="start", toolName=call.name, callId=call.id)
        started = time.perf_counter()
        record: dict[str, Any] = {"tool": call.name, "callId": call.id, "arguments": call.arguments}
        result, error = None, None
        try:
            args = json.loads(call.arguments) if (call.arguments or "").strip() else {}
        except ValueError as exc:
            error = {"error": f"The arguments are not valid JSON ({exc}); send one JSON object."}
        else:
            if not isinstance(args, dict):
                error = {"error": "The arguments must be one JSON object."}
            else:
                record["arguments"] = args
        tool = tools.get(call.name)
        if error is None and tool is None:
            error = {"error": f"There is no tool named {call.name!r} here."}
        if error is None and tool.kind == "workflow":  # not guarded: the walk's own faults end the turn
            result = {}
            async for item in self.built_ins.workflow(tool.target, result):
                yield item
        elif error is None:
            try:
                result = await self.execute(tool, args)
            except ToolRefused as exc:
                error = {"error": str(exc)}
            except Exception as exc:  # the tool's fault, reported to the model; a cancellation goes through
                error = {"error": str(exc) or type(exc).__name__}
                if isinstance(getattr(exc, "code", None), str):
                    error["code"] = exc.code
            for item in self.built_ins.pending:
                yield item
            self.built_ins.pending.clear()
        record["status"] = "error" if error else "ok"
        record["durationMs"] = int((time.perf_counter() - started) * 1000)
        record["result"] = None if error else clipped(as_json(result), RECORDED_RESULT_CHARS)
        if error:
            record["error"] = error["error"]
        else:
            called.add(call.name)
        turn.tool_calls.append(record)
        messages.append({"role": "tool", "tool_call_id": call.id,
                         "content": clipped(as_json(error or result), TOOL_RESULT_CHARS)})
        yield trace(TraceType.TOOL_CALL, phase="end", toolName=call.name, callId=call.id)

    async def execute(self, tool: Tool, args: dict) -> Any:
        if tool.kind == "project":
            result = await self.turn.ports.tools(tool.definition.name, args)
            self.save(tool.definition, result)
            return result
        return await self.built_ins.execute(tool.definition.name, args)

    def save(self, definition: ToolDefinition, result: Any) -> None:
        """A project HTTP tool's `save` mapping (variable → dotted path in the result), as an `api` step's."""
        from agents.runtime.steps.api import dig  # here: the step types import this module

        entry = next((tool for tool in self.spec.tools if hasattr(tool, "get") and tool.get("id") == definition.name),
                     None)
        save = entry.get("save") if entry is not None else None
        for variable, path in (save.items() if hasattr(save, "items") else ()):
            if VARIABLE_NAME_RE.fullmatch(str(variable)):
                self.turn.state["variables"][variable] = json_value(dig(result, str(path)))


class ProjectAgent(AgentLoop):
    """The project's own agent: its instructions, the current phase's, and the phase's allowlist."""

    def instructions(self) -> list[str]:
        phase = current_phase(self.turn)
        return [self.spec.instructions, phase.instructions if phase else ""]

    def allowlists(self) -> tuple[tuple[str, ...], ...]:
        phase = current_phase(self.turn)
        return self.spec.harness.allowed_tool_ids, phase.allowed_tool_ids if phase else ()

    def after_round(self, called: frozenset[str]) -> list[dict | None]:
        return phase_advance(self.turn, called)


async def agent_reply(turn: "Turn", content: str | None) -> Traces:
    """A turn the project's agent answers: the loop, the phase's exit checked at the end, the phase's buttons."""
    loop = ProjectAgent(turn)
    async for item in loop.run(content):
        yield item
    if loop.stopped:
        return
    for item in phase_advance(turn):
        yield item
    phase = current_phase(turn)
    if phase is not None and phase.buttons:
        yield trace(TraceType.CHOICE, buttons=[json_value(button) for button in phase.buttons])
