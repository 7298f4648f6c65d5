"""One turn of a conversation: the user's action in, traces out, the session state advanced.

The engine walks the workflow graph and hands each step to its step type (`agents/runtime/steps/`); it knows no
step type by name. It is pure: it reads the frozen `AgentSpec`, a copy of the state and the action, and reaches the
outside world only through `Ports` (an LLM, the knowledge base, tools, data frames), which the turn service fills.
With no ports it runs workflows, intent matching and the fallback message.

Routing when no step waits for the user: a workflow whose intent matches → else, with a model, the agent loop
(`agentic.py`, for both frameworks; it has the `knowledge_search` tool) → else the knowledge base's best passage,
quoted with its source, when a hit clears the answer threshold (`steps/kb.py`) → else the fallback message. An
agentic project with no model says (as a debug warning) what to configure.

It is async so that a turn waiting on a model or a tool costs a coroutine, not a thread. A port call is a plain
`await` on the turn's own task, and the walker yields to the event loop between steps, so cancelling that task (a
user's "stop") lands in the awaited call or between two steps even in a turn that awaits nothing. The engine never
catches `asyncio.CancelledError`: it leaves the iteration, and the state is not advanced. A model's
`UpstreamError` goes out of the turn too (the turn service reports it and keeps what was produced)."""
import asyncio
import copy
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from agents.runtime import agentic
from agents.runtime.ports import LlmResult, Ports, UpstreamError
from agents.runtime.spec import AgentSpec
from agents.runtime.steps import STEP_TYPES, Step, StepRun, Traces
from agents.runtime.steps.kb import knowledge_reply
from agents.runtime.templates import Expression, RenderError, Template
from agents.runtime.types import Action, TraceType, trace

MAX_STEPS = 100
HISTORY_LIMIT = 50


class _StepLimit(Exception):
    """The step limit was reached."""


class Turn:
    """`async for trace in turn` runs the turn: traces come out one by one as soon as they are produced. Once
    exhausted, `state` is the new session state, `ended` / `handoff` say how the conversation stands, `traces` /
    `reply_text` hold what was said, `llm_calls` the record of each model call (`LlmResult.record()`) and
    `tool_calls` the record of each tool the agent called.

    `state` holds `variables`, `stack`, `waiting`, `history`, and for the agent `phase` (the current phase id, None
    without phases) and `agent` (its counters: `handoffs`). `context` may give `user_id`, `platform`, `timestamp`,
    `turn` (built-in variables), `max_tool_rounds` and `history_tokens` (the agent loop's bounds) and `llm_missing`
    (what to say, as a debug warning, when an agentic project has no model)."""

    def __init__(self, spec: AgentSpec, state: dict, action: Action, ports: Ports, context: dict, debug: bool):
        self.spec = spec
        self.action = action
        self.ports = ports
        self.debug = debug
        self.context = context
        state = copy.deepcopy(state or {})
        variables = {**spec.variable_defaults, **(state.get("variables") or {})}
        self.state = {"variables": variables, "stack": list(state.get("stack") or []),
                      "waiting": state.get("waiting"), "history": list(state.get("history") or []),
                      "phase": agentic.phase_of(spec, state.get("phase")),
                      "agent": dict(state["agent"]) if isinstance(state.get("agent"), dict) else {}}
        self.traces: list[dict] = []
        self.ended = False
        self.handoff = False
        self.steps_run = 0
        self.user_text = _utterance(action)
        self.llm_calls: list[dict] = []
        self.tool_calls: list[dict] = []
        self.said: list[str] = []  # each message said, and each streamed reply, in order
        self._streams: list = []  # the model streams being read
        self._warnings: list[str] = []
        self._events = self._run()

    def __aiter__(self) -> "Turn":
        return self

    async def __anext__(self) -> dict:
        item = await anext(self._events)
        self.traces.append(item)
        return item

    async def aclose(self) -> None:
        """Stop the turn before its end (a caller that leaves the iteration early); the state is not advanced. A
        model stream in flight is closed now: the generators between it and the turn are suspended at a `yield`,
        where closing the outermost one does not reach it."""
        await self._events.aclose()
        while self._streams:
            await self._streams.pop().aclose()

    @property
    def reply_text(self) -> str:
        return "\n".join(part for part in self.said if part)

    # --- what steps say and read, through their StepRun; each trace maker returns None when there is nothing to send

    def say(self, message: str) -> dict | None:
        if not message:
            return None
        self.said.append(message)
        return trace(TraceType.TEXT, message=message)

    def debug_trace(self, level: str, message: str) -> dict | None:
        return trace(TraceType.DEBUG, level=level, message=message) if self.debug else None

    async def stream_reply(self, stream: AsyncIterator, reply: agentic.ModelReply | None = None) -> AsyncIterator[dict]:
        """A model call's reply said as it is written: `completion-start` at its first text, then one `text` trace
        per chunk. Its `LlmResult` is recorded in `llm_calls` and kept in `reply`, not sent."""
        part: int | None = None
        result = None
        self._streams.append(stream)
        async with aclosing(stream):  # a stopped turn closes the model's stream now, not when it is collected
            async for item in stream:
                if isinstance(item, LlmResult):
                    result = item
                    continue
                if not item:
                    continue
                if part is None:
                    yield trace(TraceType.COMPLETION_START, text="")
                    part = len(self.said)
                    self.said.append("")
                self.said[part] += item
                yield trace(TraceType.TEXT, message=item)
        self._streams.remove(stream)
        result = self._recorded(result)
        if part is None and result.text:  # a port that streamed nothing but has the whole reply
            yield trace(TraceType.COMPLETION_START, text="")
            self.said.append(result.text)
            yield trace(TraceType.TEXT, message=result.text)
        if reply is not None:
            reply.result = result

    async def complete(self, messages: list[dict], **options) -> LlmResult:
        """One model call whose reply is not said (an extraction): its result, recorded in `llm_calls`."""
        result = None
        async with aclosing(self.ports.llm(messages, **options)) as stream:
            async for item in stream:
                if isinstance(item, LlmResult):
                    result = item
        return self._recorded(result)

    def _recorded(self, result: LlmResult | None) -> LlmResult:
        if result is None:
            raise UpstreamError("The model's reply ended without its result.")
        self.llm_calls.append(result.record())
        return result

    def render(self, template: Template | None) -> str:
        if template is None:
            return ""
        try:
            return template.render(self.scope())
        except RenderError as exc:
            self.warn(str(exc))
            return ""

    def evaluate(self, expression: Expression) -> Any:
        try:
            return expression.evaluate(self.scope())
        except RenderError as exc:
            self.warn(str(exc))
            return None

    def scope(self) -> dict[str, Any]:
        built_ins = {"last_utterance": self.user_text or "", "last_media": self.state["variables"].get("last_media"),
                     **{key: self.context.get(key) for key in ("user_id", "platform", "timestamp", "turn")}}
        return {**self.state["variables"], **built_ins}

    # --- the turn

    async def _run(self) -> AsyncIterator[dict]:
        try:
            async for item in self._dispatch():
                if item is not None:
                    for warning in self._pending_warnings():  # a fault is reported before what it affected
                        yield warning
                    yield item
        except _StepLimit:
            self.state["waiting"] = None
            self.state["stack"] = []
            yield trace(TraceType.ERROR, error=f"This turn ran more than {MAX_STEPS} steps; the workflow probably "
                                               "loops.", code="STEP_LIMIT")
        for warning in self._pending_warnings():
            yield warning
        self._remember()

    async def _dispatch(self) -> Traces:
        action, waiting = self.action, self.state["waiting"]
        if action.type == "media":
            self.state["variables"]["last_media"] = dict(action.payload)
        step = self._waiting_step(waiting)
        if step is not None:
            step_type = STEP_TYPES[step.type]
            run = StepRun(self, waiting["workflowId"], step, waiting=waiting)
            if action.type == "launch":  # the user came back: ask again, still waiting
                yield self.debug_trace("info", f"Resuming at step {step.id}")
                async for item in step_type.prompt(run):
                    yield item
                return
            self.state["waiting"] = None
            async for item in step_type.answer(run):
                yield item
            if run.next is not None:
                async for item in self.walk(*run.next):
                    yield item
            return
        if action.type == "launch":
            workflow_id = self.spec.start_workflow_id
            if workflow_id is None:
                if self.spec.framework == "agentic":  # no workflow to start with: the agent greets the user
                    async for item in self._agent(None):
                        yield item
                return
            yield self.debug_trace("info", f"Starting workflow {workflow_id}")
            async for item in self.walk(workflow_id, self.spec.workflows[workflow_id].start_step_id):
                yield item
            return
        async for item in self._free_text(self.user_text or ""):
            yield item

    def _waiting_step(self, waiting: dict | None) -> Step | None:
        if not waiting:
            return None
        workflow = self.spec.workflows.get(waiting.get("workflowId"))
        step = workflow.steps.get(waiting.get("stepId")) if workflow else None
        if step is None or not STEP_TYPES[step.type].waits_for_answer:
            self.state["waiting"] = None  # the definition changed under the session: start afresh
            return None
        return step

    async def _free_text(self, text: str) -> Traces:
        match = self.spec.intent_index.best(text) if text else None
        if match is not None:
            yield self.debug_trace("info", f"Matched intent of workflow {match.key} ({match.score:.2f}): "
                                           f"{match.utterance!r}")
            self.state["stack"] = []
            async for item in self.walk(match.key, self.spec.workflows[match.key].start_step_id):
                yield item
            return
        yield self.debug_trace("info", "No intent matched")
        content = text or agentic.media_note(self.action)
        if content and (self.ports.llm is not None or self.spec.framework == "agentic"):
            async for item in self._agent(content):
                yield item
            return
        async for item in self._knowledge_or_fallback(text):
            yield item

    async def _agent(self, content: str | None) -> Traces:
        """The agent loop on the user's words (None: the user just opened the conversation)."""
        if self.ports.llm is None:  # an agentic project with no model: say what to set, answer what we can
            yield self.debug_trace("warn", self.context.get("llm_missing") or agentic.NO_LLM)
            async for item in self._knowledge_or_fallback(content):
                yield item
            return
        async for item in agentic.agent_reply(self, content):
            yield item

    async def _knowledge_or_fallback(self, text: str | None) -> Traces:
        """No model: the knowledge base's best passage, quoted with its source, when a hit clears the answer
        threshold (`Ports.knowledge`'s default); else the fallback message."""
        hits = await self.ports.knowledge(text) if self.ports.knowledge and text else []
        if hits:
            yield self.debug_trace("info", f"Answering from the knowledge base ({hits[0].get('documentName')})")
            async for item in knowledge_reply(self, text, hits):
                yield item
            return
        yield self.say(self.spec.fallback_message)

    # --- walking the graph

    async def walk(self, workflow_id: str, step_id: str | None) -> Traces:
        """The walk from this step until a step waits, ends the conversation or the path ends."""
        while True:
            if step_id is None:
                workflow_id, step_id = self._return_from_jump()
                if step_id is None:
                    return
            # Let the event loop run: a cancellation lands here, between steps, even when no step awaits anything.
            await asyncio.sleep(0)
            self.steps_run += 1
            if self.steps_run > MAX_STEPS:
                raise _StepLimit
            step = self.spec.workflows[workflow_id].steps[step_id]
            yield self.debug_trace("debug", f"Step {workflow_id}/{step.id} ({step.type})")
            run = StepRun(self, workflow_id, step)
            async for item in STEP_TYPES[step.type].run(run):
                yield item
            if run.next is None:  # the step waits, ended or handed off
                return
            workflow_id, step_id = run.next

    def _return_from_jump(self) -> tuple[str | None, str | None]:
        """A path ended without an end step: continue after the innermost jump that has a `next` connection."""
        while self.state["stack"]:
            frame = self.state["stack"].pop()
            workflow = self.spec.workflows.get(frame.get("workflowId"))
            jump = workflow.steps.get(frame.get("stepId")) if workflow else None
            if jump is not None and jump.target("next"):
                return workflow.id, jump.target("next")
        return None, None

    # --- small helpers

    def warn(self, message: str) -> None:
        """A debug warning, sent (when debugging) before the next trace."""
        if self.debug:
            self._warnings.append(message)

    def _pending_warnings(self) -> list[dict]:
        warnings = [trace(TraceType.DEBUG, level="warn", message=message) for message in self._warnings]
        self._warnings.clear()
        return warnings

    def _remember(self) -> None:
        history = self.state["history"]
        if self.user_text:
            history.append({"role": "user", "content": self.user_text})
        if self.reply_text:
            history.append({"role": "assistant", "content": self.reply_text})
        self.state["history"] = history[-HISTORY_LIMIT:]


def run_turn(spec: AgentSpec, state: dict, action: Action, *, ports: Ports | None = None,
             context: dict | None = None, debug: bool = False) -> Turn:
    """The turn, lazily: nothing runs until the returned `Turn` is iterated (`async for trace in turn`)."""
    return Turn(spec, state, action, ports or Ports(), context or {}, debug)


def _utterance(action: Action) -> str | None:
    if action.type == "text":
        return action.payload
    if action.type == "button":
        return str(action.payload.get("label", ""))
    return None
