"""The agent loop's built-in tools (the loop itself is `agentic.py`): what each offers the model, and what a call of
one does.

- `set_variable`: declared variables only, the value checked against the variable's type.
- `handoff`: at most `agentHarness.maxHandoffs` per conversation (counted in `state["agent"]`; none offered at 0).
- `end_conversation`.
- `knowledge_search` and `query_data`, when those ports exist; the knowledge hits are cited after the answer. With
  `query_data` the system prompt lists the conversation's frames (`Ports.data_frames`: names, typed columns, first
  rows; `frames_prompt`), read again after each query that made a new frame; a refused query's message goes back
  to the model, which may correct its SQL.
- `workflow_<id>` per workflow, unless the loop offers none (an `agent` step's): the flow walked from its start, its
  traces going to the user; the model learns what it said and how it stands.

A built-in that will not do what the model asked raises `ToolRefused`, whose message goes back to the model. The
traces a built-in produces (end, handoff, data frame) wait in `BuiltIns.pending` until the loop sends them, after
the call's `tool-call` start trace and before its end trace."""
import json
import re
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agents.runtime.ports import ToolDefinition
from agents.runtime.types import TraceType, trace
from agents.runtime.values import is_whole_number, json_value

if TYPE_CHECKING:  # this module imports nothing of the engine: the engine imports the loop, which imports this
    from agents.runtime.engine import Turn

WORKFLOW_PREFIX = "workflow_"
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_-]")
KNOWLEDGE_HITS = 5  # passages a knowledge_search call returns
FRAMES_PROMPT_CHARS = 6000  # of the system prompt's list of data frames
_PLAIN_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*")
BUILT_IN_TOOLS = ("set_variable", "handoff", "end_conversation", "knowledge_search", "query_data")
_BUILT_IN_NOTES = {  # the system prompt's line on the built-ins offered
    "set_variable": "set_variable records what you learn ({variables})",
    "handoff": "handoff passes the conversation to a person", "end_conversation": "end_conversation ends it",
    "knowledge_search": "knowledge_search searches the knowledge base (answer from its passages, not from memory)",
    "query_data": "query_data runs SQL over the conversation's data frames"}
_TYPES = {"string": lambda v: isinstance(v, str), "boolean": lambda v: isinstance(v, bool),
          "integer": lambda v: is_whole_number(v) or (isinstance(v, float) and v.is_integer()),
          "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
          "object": lambda v: isinstance(v, dict), "array": lambda v: isinstance(v, list)}


class ToolRefused(Exception):
    """A built-in that will not do what the model asked; the message goes back to the model."""


@dataclass(frozen=True)
class Tool:
    definition: ToolDefinition
    kind: str  # "builtin", "workflow" or "project"
    target: str = ""  # a workflow tool's workflow id


def workflow_tools(workflow_ids: Iterable[str]) -> dict[str, str]:
    """Each workflow's tool name (`workflow_<id>`, made safe and unique) → its id."""
    names: dict[str, str] = {}
    for workflow_id in workflow_ids:
        name = base = _UNSAFE_NAME.sub("_", WORKFLOW_PREFIX + workflow_id)[:64]
        n = 1
        while name in names:
            n += 1
            name = f"{base[:60]}_{n}"
        names[name] = workflow_id
    return names


def as_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _object(properties: dict, required: tuple[str, ...] = ()) -> dict:
    return {"type": "object", "properties": properties, "required": list(required)}


class BuiltIns:
    """The built-in tools of one loop, and what their calls leave for it: `pending` traces to send after the call,
    `sources` (knowledge hits) to cite after the answer."""

    def __init__(self, turn: "Turn"):
        self.turn = turn
        self.spec = turn.spec
        self.pending: list[dict] = []
        self.sources: list[dict] = []
        self.frames: list[dict] | None = None  # the conversation's data frames, read when query_data is offered

    def offered(self, *, workflows: bool) -> list[Tool]:
        """What the loop offers of them (the ports and the spec say which), workflow tools last."""
        ports, declared = self.turn.ports, self.spec.variable_types
        definitions = []
        if declared:
            definitions.append(ToolDefinition("set_variable", "Store a value in one of the session's variables.",
                                              _object({"name": {"type": "string", "enum": list(declared)},
                                                       "value": {"description": "a JSON value"}}, ("name", "value"))))
        if self.spec.harness.max_handoffs > 0:
            definitions.append(ToolDefinition("handoff", "Hand the conversation to a human operator.", _object(
                {"reason": {"type": "string", "description": "why, for the operator"}}, ("reason",))))
        definitions.append(ToolDefinition("end_conversation", "End the conversation (when the user is done).",
                                          _object({})))
        if ports.knowledge is not None:
            definitions.append(ToolDefinition(
                "knowledge_search", "Search the project's knowledge base (its help-centre documents). Returns the "
                "best passages, each with its document, headings and a relevance score (higher is more relevant); "
                "use only those that answer the question.",
                _object({"query": {"type": "string", "description": "what to look for, in the user's terms"}},
                        ("query",))))
        if ports.data is not None:
            definitions.append(ToolDefinition(
                "query_data", "Run one read-only SQL SELECT (DuckDB dialect) over the conversation's data frames, "
                "whose names are the tables (listed in your instructions). The result is stored as a new frame "
                "(usable in later queries) and returned with its columns, row count and first rows.",
                _object({"sql": {"type": "string", "description": "one SELECT statement"},
                         "name": {"type": "string", "description": "a short name for the result frame"}}, ("sql",))))
        tools = [Tool(definition, "builtin") for definition in definitions]
        if workflows:
            for name, workflow_id in workflow_tools(self.spec.workflows).items():
                description = self.spec.workflows[workflow_id].name
                tools.append(Tool(ToolDefinition(name, f"Run the scripted flow “{description}” with the user.",
                                                 _object({})), "workflow", workflow_id))
        return tools

    def prompt_line(self, tools: Mapping[str, Tool]) -> str | None:
        """The system prompt's line on the built-ins among `tools` (None when there are none)."""
        variables = ", ".join(f"{name}: {kind or 'any'}" for name, kind in self.spec.variable_types.items())
        offered = [note.format(variables=variables) for name, note in _BUILT_IN_NOTES.items() if name in tools]
        if any(tool.kind == "workflow" for tool in tools.values()):
            offered.append(f"{WORKFLOW_PREFIX}* tools run a scripted flow that speaks to the user itself")
        return "Built-in tools: " + "; ".join(offered) + "." if offered else None

    async def execute(self, name: str, args: dict) -> Any:
        """A call of the built-in `name` (not a workflow tool: `workflow` walks those); its result for the model."""
        turn = self.turn
        if name == "set_variable":
            return self.set_variable(args)
        if name == "handoff":
            return self.hand_off(str(args.get("reason") or "The agent handed the conversation over."))
        if name == "end_conversation":
            turn.ended = True
            turn.state["waiting"], turn.state["stack"] = None, []
            self.pending.append(trace(TraceType.END))
            return {"ok": True}
        if name == "knowledge_search":
            return await self.knowledge_search(str(args.get("query") or turn.user_text or ""))
        frame = await turn.ports.data(str(args.get("sql") or ""), name=str(args.get("name") or "result"))
        self.pending.append(trace(TraceType.DATA_FRAME, **frame))
        self.frames = None  # the new frame joins the list the next round's instructions show
        return frame

    async def load_frames(self) -> None:
        """The frames the system prompt lists, read once per loop and after each new frame; a failure to read them
        is a warning (the model can still query the frames it knows)."""
        if self.frames is None and self.turn.ports.data_frames is not None:
            try:
                self.frames = list(await self.turn.ports.data_frames())
            except Exception as exc:  # the storage away: the tool stays, its list does not; a cancellation goes on
                self.frames = []
                self.turn.warn(f"The data frames could not be listed: {exc}")

    async def knowledge_search(self, query: str) -> list[dict]:
        """The top hits whatever their relevance (the model judges them, by their scores), each kept as a source
        that the `knowledge` trace after the answer cites."""
        hits = (await self.turn.ports.knowledge(query, answerable=False))[:KNOWLEDGE_HITS]
        known = {source["chunkId"] for source in self.sources}
        self.sources += [{key: hit.get(key) for key in ("documentId", "documentName", "chunkId", "score")}
                         for hit in hits if hit.get("chunkId") not in known]
        return [{"text": hit.get("text"), "documentName": hit.get("documentName"),
                 "headingPath": hit.get("headingPath") or [], "score": hit.get("score")} for hit in hits]

    def set_variable(self, args: dict) -> dict:
        name, declared = args.get("name"), self.spec.variable_types
        if not isinstance(name, str) or name not in declared:
            raise ToolRefused(f"{name!r} is not a declared variable; declared: {', '.join(declared)}.")
        if "value" not in args:
            raise ToolRefused("Give the value to store.")
        value, kind = args["value"], declared[name]
        if kind is not None and not _TYPES[kind](value):
            raise ToolRefused(f"{name} holds a value of type {kind}; {as_json(value)} is not one.")
        if kind == "integer":
            value = int(value)
        self.turn.state["variables"][name] = json_value(value)
        return {"ok": True, "name": name, "value": value}

    def hand_off(self, reason: str) -> dict:
        turn, limit = self.turn, self.spec.harness.max_handoffs
        handoffs = int(turn.state["agent"].get("handoffs") or 0)
        if handoffs >= limit:
            raise ToolRefused(f"This conversation has reached its limit of {limit} handoffs: keep helping the user.")
        turn.state["agent"]["handoffs"] = handoffs + 1
        turn.handoff = True
        turn.state["waiting"] = None
        self.pending.append(trace(TraceType.HANDOFF, reason=reason))
        return {"ok": True}

    async def workflow(self, workflow_id: str, result: dict) -> AsyncIterator[dict | None]:
        """A workflow tool: the flow walked from its start; the model learns what it said and how it stands."""
        turn = self.turn
        turn.state["stack"] = []
        said_before = len(turn.said)
        yield turn.debug_trace("info", f"Starting workflow {workflow_id}")
        async for item in turn.walk(workflow_id, self.spec.workflows[workflow_id].start_step_id):
            yield item
        status = ("ended" if turn.ended else "handed off" if turn.handoff
                  else "waiting for the user's answer" if turn.state["waiting"] else "done")
        result.update(status=status, said=[text for text in turn.said[said_before:] if text])


def _identifier(name: str) -> str:
    return name if _PLAIN_IDENTIFIER.fullmatch(name) else '"' + name.replace('"', '""') + '"'


def frames_prompt(frames: list[dict], limit: int = FRAMES_PROMPT_CHARS) -> str | None:
    """The system prompt's part on the conversation's data frames: each one's name (its table in SQL), row count,
    typed columns (quoted where SQL needs it) and first rows, within `limit` characters (the newest frames are the
    ones left out, named)."""
    if not frames:
        return None
    lines = ["Data frames of this conversation (tables for query_data; each row below is a sample, its values in "
             "the columns' order):"]
    used = len(lines[0])
    for index, frame in enumerate(frames):
        columns = ", ".join(f"{_identifier(str(column.get('name')))} {column.get('dtype')}"
                            for column in frame.get("columns") or [])
        block = [f"- {_identifier(str(frame.get('name')))} ({frame.get('numRows')} rows): {columns}",
                 *(f"  {as_json(row)}" for row in frame.get("sampleRows") or [])]
        size = sum(len(line) + 1 for line in block)
        if used + size > limit and index:
            rest = [_identifier(str(other.get("name"))) for other in frames[index:]]
            lines.append(f"- and {len(rest)} more: {', '.join(rest)}"[:limit // 4])
            break
        lines += block
        used += size
    return "\n".join(lines)
