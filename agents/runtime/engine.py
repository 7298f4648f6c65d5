"""One turn of a conversation: the user's action in, traces out, the session state advanced.

The engine walks the workflow graph step by step. It is pure: it reads the frozen `AgentSpec`, a copy of the
state and the action, and reaches the outside world only through `Ports` (an LLM, the knowledge base, tools, data
frames), which the turn service fills. With no ports it runs workflows, intent matching and the fallback message."""
import copy
from collections.abc import Iterator
from typing import Any

from agents.runtime.ports import Ports
from agents.runtime.spec import DEFAULT_MAX_ATTEMPTS, DEFAULT_RETRY, AgentSpec, Step
from agents.runtime.templates import RenderError
from agents.runtime.types import Action, TraceType, trace
from agents.runtime.values import capture_value, dig, json_value

MAX_STEPS = 100
HISTORY_LIMIT = 50


class _Stop(Exception):
    """The step limit was reached."""


class Turn:
    """Iterate it to run the turn: traces come out one by one as they are produced. Once exhausted, `state` is the
    new session state and `ended` / `handoff` say how the conversation stands."""

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

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        item = next(self._events)
        self.traces.append(item)
        return item

    @property
    def reply_text(self) -> str:
        return "\n".join(part for part in self._reply if part)

    # --- the turn

    def _run(self) -> Iterator[dict]:
        try:
            yield from self._dispatch()
            yield from self._flush_warnings()
        except _Stop:
            self.state["waiting"] = None
            self.state["stack"] = []
            yield trace(TraceType.ERROR, error=f"This turn ran more than {MAX_STEPS} steps; the workflow probably "
                                               "loops.", code="STEP_LIMIT")
        self._remember()

    def _dispatch(self) -> Iterator[dict]:
        action, waiting = self.action, self.state["waiting"]
        if action.type == "media":
            self.state["variables"]["last_media"] = dict(action.payload)
        step = self._waiting_step(waiting)
        if step is not None:
            if action.type == "launch":
                yield from self._debug("info", f"Resuming at step {step.id}")
                yield from self._prompt(step)
                return
            yield from self._answer(step, waiting)
            return
        if action.type == "launch":
            workflow_id = self.spec.start_workflow_id
            if workflow_id is None:
                return
            yield from self._debug("info", f"Starting workflow {workflow_id}")
            yield from self._walk(workflow_id, self.spec.workflows[workflow_id].start_step_id)
            return
        yield from self._free_text(self.user_text or "")

    def _waiting_step(self, waiting) -> Step | None:
        if not waiting:
            return None
        workflow = self.spec.workflows.get(waiting.get("workflowId"))
        step = workflow.steps.get(waiting.get("stepId")) if workflow else None
        if step is None or step.type not in ("buttons", "capture"):
            self.state["waiting"] = None  # the definition changed under the session: start afresh
            return None
        return step

    def _free_text(self, text: str) -> Iterator[dict]:
        match = self.spec.intent_index.best(text) if text else None
        if match is not None:
            yield from self._debug("info", f"Matched intent of workflow {match.key} ({match.score:.2f}): "
                                           f"{match.utterance!r}")
            self.state["stack"] = []
            yield from self._walk(match.key, self.spec.workflows[match.key].start_step_id)
            return
        yield from self._debug("info", "No intent matched")
        if self.ports.knowledge and text:
            answered = yield from self._knowledge_answer(text)
            if answered:
                return
        yield from self._say(self.spec.fallback_message)

    # --- walking the graph

    def _walk(self, workflow_id: str, step_id: str | None) -> Iterator[dict]:
        while True:
            if step_id is None:
                workflow_id, step_id = self._return_from_jump()
                if step_id is None:
                    return
            self.steps_run += 1
            if self.steps_run > MAX_STEPS:
                raise _Stop
            step = self.spec.workflows[workflow_id].steps[step_id]
            yield from self._debug("debug", f"Step {workflow_id}/{step.id} ({step.type})")
            handler = getattr(self, f"_step_{step.type}")
            location = yield from handler(workflow_id, step)
            yield from self._flush_warnings()
            if location is None:
                return
            workflow_id, step_id = location

    def _follow(self, workflow_id: str, step: Step, port: str) -> tuple[str, str | None]:
        return workflow_id, step.target(port)

    def _return_from_jump(self) -> tuple[str | None, str | None]:
        """A path ended without an end step: continue after the innermost jump that has a `next` connection."""
        while self.state["stack"]:
            frame = self.state["stack"].pop()
            workflow = self.spec.workflows.get(frame.get("workflowId"))
            jump = workflow.steps.get(frame.get("stepId")) if workflow else None
            if jump is not None and jump.target("next"):
                return workflow.id, jump.target("next")
        return None, None

    # --- steps: each returns the next (workflow id, step id), or None to stop the turn

    def _step_start(self, workflow_id: str, step: Step):
        return self._follow(workflow_id, step, "next")
        yield  # a generator, like every step

    def _step_message(self, workflow_id: str, step: Step):
        template = step.templates.get("text")
        variants = [t for key, t in step.templates.items() if key.startswith("texts.")]
        if variants:
            template = variants[(self.context.get("turn") or 0) % len(variants)]
        yield from self._say(self._render(template))
        return self._follow(workflow_id, step, "next")

    def _step_buttons(self, workflow_id: str, step: Step):
        yield from self._prompt(step)
        self.state["waiting"] = {"workflowId": workflow_id, "stepId": step.id, "kind": "buttons", "attempts": 0}
        return None

    def _step_capture(self, workflow_id: str, step: Step):
        yield from self._prompt(step)
        self.state["waiting"] = {"workflowId": workflow_id, "stepId": step.id, "kind": "capture", "attempts": 0}
        return None

    def _step_condition(self, workflow_id: str, step: Step):
        value = yield from self._evaluate(step.expressions["if"])
        yield from self._debug("debug", f"Condition {step.expressions['if'].source!r} is {bool(value)}")
        return self._follow(workflow_id, step, "true" if value else "false")

    def _step_set(self, workflow_id: str, step: Step):
        for name, expression in step.expressions.items():
            value = yield from self._evaluate(expression)
            self.state["variables"][name] = json_value(value)
        return self._follow(workflow_id, step, "next")

    def _step_jump(self, workflow_id: str, step: Step):
        target = self.spec.workflows[step.data["workflowId"]]
        self.state["stack"].append({"workflowId": workflow_id, "stepId": step.id})
        yield from self._debug("info", f"Jumping to workflow {target.id}")
        return target.id, step.data.get("stepId") if step.data.get("stepId") in target.steps else target.start_step_id

    def _step_media(self, workflow_id: str, step: Step):
        payload = {"url": self._render(step.templates["url"]),
                   "mimeType": self._render(step.templates.get("mimeType")) or "image/png"}
        if "alt" in step.templates:
            payload["alt"] = self._render(step.templates["alt"])
        yield trace(TraceType.VISUAL, **payload)
        return self._follow(workflow_id, step, "next")

    def _step_end(self, workflow_id: str, step: Step):
        self.ended = True
        self.state["waiting"] = None
        self.state["stack"] = []
        yield trace(TraceType.END)
        return None

    def _step_handoff(self, workflow_id: str, step: Step):
        self.handoff = True
        self.state["waiting"] = None
        reason = self._render(step.templates.get("reason")) or "The user asked for a person."
        yield trace(TraceType.HANDOFF, reason=reason)
        return None

    def _step_api(self, workflow_id: str, step: Step):
        tool = step.data["tool"]
        if self.ports.tools is None:
            yield from self._debug("warn", f"Tool {tool!r} not called: no tool port is configured")
            return self._follow(workflow_id, step, "error")
        args = {key.removeprefix("args."): self._render(t) for key, t in step.templates.items()
                if key.startswith("args.")}
        try:
            result = self.ports.tools(tool, args)
        except Exception as exc:
            yield from self._debug("warn", f"Tool {tool!r} failed: {exc}")
            return self._follow(workflow_id, step, "error")
        for variable, path in (step.data.get("save") or {}).items():
            self.state["variables"][variable] = json_value(dig(result, str(path)))
        return self._follow(workflow_id, step, "next")

    def _step_ai(self, workflow_id: str, step: Step):
        prompt = self._render(step.templates.get("prompt")) or self.user_text or ""
        yield from self._llm_reply(prompt)
        return self._follow(workflow_id, step, "next")

    _step_agent = _step_ai  # the agentic sub-loop arrives with the LLM capability; until then one reply

    def _step_kb(self, workflow_id: str, step: Step):
        question = self._render(step.templates.get("question")) or self.user_text or ""
        answered = False
        if self.ports.knowledge and question:
            answered = yield from self._knowledge_answer(question)
        if not answered:
            yield from self._say(self.spec.fallback_message)
        return self._follow(workflow_id, step, "next")

    def _step_data_query(self, workflow_id: str, step: Step):
        if self.ports.data is not None:
            try:
                frame = self.ports.data(self._render(step.templates.get("sql")),
                                        name=self._render(step.templates.get("name")) or "result")
                yield trace(TraceType.DATA_FRAME, **frame)
            except Exception as exc:
                yield from self._debug("warn", f"Data query failed: {exc}")
        return self._follow(workflow_id, step, "next")

    # --- waiting steps: their prompt, and the user's answer

    def _prompt(self, step: Step) -> Iterator[dict]:
        if step.type == "buttons":
            if "text" in step.templates:
                yield from self._say(self._render(step.templates["text"]))
            buttons = [{"label": self._render(b.label), "value": json_value(b.value)} for b in step.buttons]
            yield trace(TraceType.CHOICE, buttons=buttons)
        else:
            yield from self._say(self._render(step.templates.get("prompt")))

    def _answer(self, step: Step, waiting: dict) -> Iterator[dict]:
        workflow_id = waiting["workflowId"]
        self.state["waiting"] = None
        if step.type == "buttons":
            port = self._button_port(step)
            if port is None:
                port = "noMatch" if step.target("noMatch") else None
            if port is None:
                yield from self._debug("info", "No button matched; asking again")
                yield from self._prompt(step)
                self.state["waiting"] = dict(waiting)
                return
            yield from self._debug("info", f"Button port {port}")
            yield from self._walk(*self._follow(workflow_id, step, port))
            return
        ok, value = capture_value(step, self.action, self.user_text)
        if ok:
            self.state["variables"][step.data["variable"]] = value
            yield from self._walk(*self._follow(workflow_id, step, "next"))
            return
        attempts = int(waiting.get("attempts") or 0) + 1
        max_attempts = step.data.get("maxAttempts", DEFAULT_MAX_ATTEMPTS)
        yield from self._debug("info", f"Invalid answer ({attempts}/{max_attempts})")
        if attempts >= max_attempts and step.target("fail"):
            yield from self._walk(*self._follow(workflow_id, step, "fail"))
            return
        retry = self._render(step.templates.get("retryPrompt")) or DEFAULT_RETRY[step.data.get("validate")]
        yield from self._say(retry)
        self.state["waiting"] = {**waiting, "attempts": attempts}

    def _button_port(self, step: Step) -> str | None:
        if self.action.type == "button":
            value = self.action.payload.get("value")
            for i, button in enumerate(step.buttons):
                if json_value(button.value) == value:
                    return f"button:{i}"
        text = (self.user_text or "").strip().casefold()
        if not text:
            return None
        for i, button in enumerate(step.buttons):
            if text in (self._render(button.label).casefold(), str(json_value(button.value)).casefold()):
                return f"button:{i}"
        match = step.button_index.best(text) if step.button_index else None
        return f"button:{match.key}" if match else None

    # --- outside help

    def _knowledge_answer(self, question: str):
        hits = self.ports.knowledge(question)
        if not hits:
            return False
        yield from self._say(hits[0]["text"])
        sources = [{key: hit.get(key) for key in ("documentId", "documentName", "chunkId", "score")} for hit in hits]
        yield trace(TraceType.KNOWLEDGE, sources=sources)
        return True

    def _llm_reply(self, prompt: str) -> Iterator[dict]:
        if self.ports.llm is None:
            yield from self._debug("warn", "No LLM is configured; answering with the fallback message")
            yield from self._say(self.spec.fallback_message)
            return
        messages = [{"role": "system", "content": self.spec.instructions}] if self.spec.instructions else []
        messages += self.state["history"][-20:] + [{"role": "user", "content": prompt}]
        yield trace(TraceType.COMPLETION_START, text="")
        self._reply.append("")
        for chunk in self.ports.llm(messages):
            self._reply[-1] += chunk
            yield trace(TraceType.TEXT, message=chunk)

    # --- small helpers

    def _say(self, message: str) -> Iterator[dict]:
        if message:
            self._reply.append(message)
            yield trace(TraceType.TEXT, message=message)

    def _debug(self, level: str, message: str) -> Iterator[dict]:
        if self.debug:
            yield trace(TraceType.DEBUG, level=level, message=message)

    def _scope(self) -> dict[str, Any]:
        built_ins = {"last_utterance": self.user_text or "", "last_media": self.state["variables"].get("last_media"),
                     **{key: self.context.get(key) for key in ("user_id", "platform", "timestamp", "turn")}}
        return {**self.state["variables"], **built_ins}

    def _render(self, template) -> str:
        if template is None:
            return ""
        try:
            return template.render(self._scope())
        except RenderError as exc:
            self._warnings.append(str(exc))
            return ""

    def _flush_warnings(self) -> Iterator[dict]:
        for warning in self._warnings:
            yield from self._debug("warn", warning)
        self._warnings.clear()

    def _evaluate(self, expression):
        try:
            return expression.evaluate(self._scope())
        except RenderError as exc:
            yield from self._debug("warn", str(exc))
            return None

    def _remember(self) -> None:
        history = self.state["history"]
        if self.user_text:
            history.append({"role": "user", "content": self.user_text})
        if self.reply_text:
            history.append({"role": "assistant", "content": self.reply_text})
        self.state["history"] = history[-HISTORY_LIMIT:]


def run_turn(spec: AgentSpec, state: dict, action: Action, *, ports: Ports | None = None,
             context: dict | None = None, debug: bool = False) -> Turn:
    """The turn, lazily: nothing runs until the returned `Turn` is iterated."""
    return Turn(spec, state, action, ports or Ports(), context or {}, debug)


def _utterance(action: Action) -> str | None:
    if action.type == "text":
        return action.payload
    if action.type == "button":
        return str(action.payload.get("label", ""))
    return None
