"""One turn of a conversation: the user's action in, traces out, the session state advanced.

The engine walks the workflow graph and hands each step to its step type (`agents/runtime/steps/`); it knows no
step type by name. It is pure: it reads the frozen `AgentSpec`, a copy of the state and the action, and reaches the
outside world only through `Ports` (an LLM, the knowledge base, tools, data frames), which the turn service fills.
With no ports it runs workflows, intent matching and the fallback message.

It is async so that a turn waiting on a model or a tool costs a coroutine, not a thread. A port call is a plain
`await` on the turn's own task, and the walker yields to the event loop between steps, so cancelling that task (a
user's "stop") lands in the awaited call or between two steps even in a turn that awaits nothing. The engine never
catches `asyncio.CancelledError`: it leaves the iteration, and the state is not advanced."""
import asyncio
import copy
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from agents.runtime.ports import Ports
from agents.runtime.spec import AgentSpec
from agents.runtime.steps import STEP_TYPES, Step, StepRun, Traces
from agents.runtime.steps.kb import knowledge_answer
from agents.runtime.templates import Expression, RenderError, Template
from agents.runtime.types import Action, TraceType, trace

MAX_STEPS = 100
HISTORY_LIMIT = 50


class _StepLimit(Exception):
    """The step limit was reached."""


class Turn:
    """`async for trace in turn` runs the turn: traces come out one by one as soon as they are produced. Once
    exhausted, `state` is the new session state, `ended` / `handoff` say how the conversation stands, and `traces` /
    `reply_text` hold what was said."""

    def __init__(self, spec: AgentSpec, state: dict, action: Action, ports: Ports, context: dict, debug: bool):
        self.spec = spec
        self.action = action
        self.ports = ports
        self.debug = debug
        self.context = context
        state = copy.deepcopy(state or {})
        variables = {**spec.variable_defaults, **(state.get("variables") or {})}
        self.state = {"variables": variables, "stack": list(state.get("stack") or []),
                      "waiting": state.get("waiting"), "history": list(state.get("history") or [])}
        self.traces: list[dict] = []
        self.ended = False
        self.handoff = False
        self.steps_run = 0
        self.user_text = _utterance(action)
        self._reply: list[str] = []
        self._warnings: list[str] = []
        self._events = self._run()

    def __aiter__(self) -> "Turn":
        return self

    async def __anext__(self) -> dict:
        item = await anext(self._events)
        self.traces.append(item)
        return item

    async def aclose(self) -> None:
        """Stop the turn before its end (a caller that leaves the iteration early); the state is not advanced."""
        await self._events.aclose()

    @property
    def reply_text(self) -> str:
        return "\n".join(part for part in self._reply if part)

    # --- what steps say and read, through their StepRun; each trace maker returns None when there is nothing to send

    def say(self, message: str) -> dict | None:
        if not message:
            return None
        self._reply.append(message)
        return trace(TraceType.TEXT, message=message)

    def debug_trace(self, level: str, message: str) -> dict | None:
        return trace(TraceType.DEBUG, level=level, message=message) if self.debug else None

    async def stream_reply(self, chunks: AsyncIterator[str]) -> AsyncIterator[dict]:
        yield trace(TraceType.COMPLETION_START, text="")
        part = len(self._reply)
        self._reply.append("")
        async with aclosing(chunks):  # a stopped turn closes the model's stream now, not when it is collected
            async for chunk in chunks:
                self._reply[part] += chunk
                yield trace(TraceType.TEXT, message=chunk)

    def render(self, template: Template | None) -> str:
        if template is None:
            return ""
        try:
            return template.render(self.scope())
        except RenderError as exc:
            self._warn(str(exc))
            return ""

    def evaluate(self, expression: Expression) -> Any:
        try:
            return expression.evaluate(self.scope())
        except RenderError as exc:
            self._warn(str(exc))
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
                async for item in self._walk(*run.next):
                    yield item
            return
        if action.type == "launch":
            workflow_id = self.spec.start_workflow_id
            if workflow_id is None:
                return
            yield self.debug_trace("info", f"Starting workflow {workflow_id}")
            async for item in self._walk(workflow_id, self.spec.workflows[workflow_id].start_step_id):
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
            async for item in self._walk(match.key, self.spec.workflows[match.key].start_step_id):
                yield item
            return
        yield self.debug_trace("info", "No intent matched")
        hits = await self.ports.knowledge(text) if self.ports.knowledge and text else []
        if hits:
            for item in knowledge_answer(self, hits):
                yield item
            return
        yield self.say(self.spec.fallback_message)

    # --- walking the graph

    async def _walk(self, workflow_id: str, step_id: str | None) -> Traces:
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

    def _warn(self, message: str) -> None:
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
