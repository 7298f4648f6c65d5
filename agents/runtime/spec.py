"""The frozen, compiled form of a project document that the engine runs, and the validation of a document.

`AgentSpec.from_document` checks the whole document (collecting every problem, keyed by where it is), compiles
templates, expressions and the intent index once, and returns immutable objects that many turns share."""
import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from agents.runtime.matching import IntentIndex
from agents.runtime.templates import Expression, Template
from agents.runtime.types import DocumentError

DEFAULT_FALLBACK = "Sorry, I didn't understand that."
DEFAULT_RETRY = {
    "email": "That doesn't look like a valid email address. Please try again.",
    "number": "Please enter a number.",
    "phone": "That doesn't look like a valid phone number. Please try again.",
    "regex": "That doesn't look right. Please try again.",
    None: "Please try again.",
}
VALIDATORS = ("email", "number", "phone", "regex")
DEFAULT_MAX_ATTEMPTS = 3
VARIABLE_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # variable names, used with fullmatch

# Ports each step type may connect from; `buttons` adds `button:<i>` per button.
PORTS: dict[str, frozenset[str]] = {
    "start": frozenset({"next"}),
    "message": frozenset({"next"}),
    "buttons": frozenset({"noMatch"}),
    "capture": frozenset({"next", "fail"}),
    "condition": frozenset({"true", "false"}),
    "set": frozenset({"next"}),
    "jump": frozenset({"next"}),  # taken when the jumped-to workflow finishes without an end step
    "media": frozenset({"next"}),
    "end": frozenset(),
    "handoff": frozenset(),
    "api": frozenset({"next", "error"}),
    "ai": frozenset({"next"}),
    "kb": frozenset({"next"}),
    "agent": frozenset({"next"}),
    "data_query": frozenset({"next"}),
}


@dataclass(frozen=True)
class Button:
    label: Template
    value: Any


@dataclass(frozen=True, eq=False)
class Step:
    id: str
    type: str
    data: MappingProxyType
    ports: MappingProxyType  # port → target step id
    templates: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    expressions: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    buttons: tuple[Button, ...] = ()
    button_index: IntentIndex | None = None
    pattern: re.Pattern | None = None

    def target(self, port: str) -> str | None:
        return self.ports.get(port)


@dataclass(frozen=True, eq=False)
class Workflow:
    id: str
    name: str
    start_step_id: str
    steps: MappingProxyType  # id → Step
    intents: tuple[str, ...]


@dataclass(frozen=True, eq=False)
class AgentSpec:
    project_id: str
    version_id: str
    framework: str
    instructions: str
    model: MappingProxyType
    workflows: MappingProxyType  # id → Workflow, in document order
    start_workflow_id: str | None
    fallback_message: str
    variable_defaults: MappingProxyType
    settings: MappingProxyType
    tools: tuple
    intent_index: IntentIndex

    @classmethod
    def from_document(cls, document: dict, *, project_id: str, version_id: str) -> "AgentSpec":
        return _Builder(document).build(project_id=project_id, version_id=version_id)


def validate_document(document: dict) -> None:
    """Raises DocumentError with every problem of the document (details keyed by location)."""
    _Builder(document).build(project_id="", version_id="")


def _frozen(value):
    """A read-only deep copy of JSON data."""
    if isinstance(value, dict):
        return MappingProxyType({k: _frozen(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    return value


class _Builder:
    def __init__(self, document: dict):
        self.document = document if isinstance(document, dict) else {}
        self.errors: dict[str, list[str]] = {}
        if not isinstance(document, dict):
            self.error("document", "The project document must be a JSON object.")

    def error(self, where: str, message: str) -> None:
        self.errors.setdefault(where, []).append(message)

    def part(self, name: str, kind: type, default):
        value = self.document.get(name, default)
        if value is None:
            return default
        if not isinstance(value, kind):
            self.error(name, f"Expected {'an object' if kind is dict else 'a list' if kind is list else 'text'}.")
            return default
        return value

    def build(self, *, project_id: str, version_id: str) -> AgentSpec:
        settings = self.part("settings", dict, {})
        variables = self.variables(self.part("variables", list, []))
        workflows = self.workflows(self.part("workflows", list, []))
        start = settings.get("startWorkflowId")
        if start is not None and start not in workflows:
            self.error("settings.startWorkflowId", f"No workflow has the id {start!r}.")
        fallback = settings.get("fallbackMessage") or DEFAULT_FALLBACK
        if not isinstance(fallback, str):
            self.error("settings.fallbackMessage", "Expected text.")
        framework = self.document.get("framework", "conversation-flow")
        if framework not in ("conversation-flow", "agentic"):
            self.error("framework", "Expected conversation-flow or agentic.")
        instructions = self.part("instructions", str, "")
        model = self.part("model", dict, {})
        tools = self.part("tools", list, [])
        if self.errors:
            first = next(iter(self.errors.items()))
            raise DocumentError(f"Invalid project document: {first[0]}: {first[1][0]}", self.errors)
        intents = IntentIndex(
            (workflow.id, utterance) for workflow in workflows.values() for utterance in workflow.intents
        )
        return AgentSpec(
            project_id=project_id,
            version_id=version_id,
            framework=framework,
            instructions=instructions,
            model=_frozen(model),
            workflows=MappingProxyType(workflows),
            start_workflow_id=start or next(iter(workflows), None),
            fallback_message=fallback,
            variable_defaults=MappingProxyType(variables),
            settings=_frozen(settings),
            tools=_frozen(tools),
            intent_index=intents,
        )

    def variables(self, items: list) -> dict:
        defaults = {}
        for i, item in enumerate(items):
            where = f"variables[{i}]"
            name = item.get("name") if isinstance(item, dict) else None
            if not isinstance(name, str) or not VARIABLE_NAME_RE.fullmatch(name):
                self.error(where, "A variable is an object with a name of letters, digits and _.")
                continue
            if "default" in item:  # a variable with no default stays undefined until set
                defaults[item["name"]] = item["default"]
        return defaults

    def workflows(self, items: list) -> dict[str, Workflow]:
        ids = [item.get("id") if isinstance(item, dict) else None for item in items]
        built: dict[str, Workflow] = {}
        for i, item in enumerate(items):
            where = f"workflows[{i}]"
            if not isinstance(item, dict):
                self.error(where, "A workflow is an object.")
                continue
            workflow_id = item.get("id")
            if not isinstance(workflow_id, str) or not workflow_id:
                self.error(where, "A workflow needs a non-empty string id.")
                continue
            if ids.count(workflow_id) > 1:
                self.error(where, f"Duplicate workflow id {workflow_id!r}.")
                continue
            workflow = self.workflow(item, where, set(filter(None, ids)))
            if workflow is not None:
                built[workflow_id] = workflow
        return built

    def workflow(self, item: dict, where: str, workflow_ids: set) -> Workflow | None:
        name = item.get("name", item["id"])
        if not isinstance(name, str) or not name:
            self.error(where, "A workflow needs a name.")
        steps_in = item.get("steps")
        connections = item.get("connections", [])
        if not isinstance(steps_in, list) or not isinstance(connections, list):
            self.error(where, "A workflow has a list of steps and a list of connections.")
            return None
        raw: dict[str, tuple[int, dict]] = {}
        for j, step in enumerate(steps_in):
            step_where = f"{where}.steps[{j}]"
            if not isinstance(step, dict) or not isinstance(step.get("id"), str) or not step["id"]:
                self.error(step_where, "A step is an object with a non-empty string id.")
            elif step["id"] in raw:
                self.error(step_where, f"Duplicate step id {step['id']!r}.")
            elif step.get("type") not in PORTS:
                self.error(step_where, f"Unknown step type {step.get('type')!r}.")
            elif not isinstance(step.get("data", {}), dict):
                self.error(step_where, "A step's data is an object.")
            else:
                raw[step["id"]] = (j, step)
        starts = [step_id for step_id, (_j, step) in raw.items() if step["type"] == "start"]
        if len(starts) != 1:
            self.error(where, f"A workflow has exactly one start step (found {len(starts)}).")
        ports: dict[str, dict[str, str]] = {step_id: {} for step_id in raw}
        for k, connection in enumerate(connections):
            self.connection(connection, f"{where}.connections[{k}]", raw, ports)
        steps = {}
        for step_id, (j, step) in raw.items():
            compiled = self.step(step, f"{where}.steps[{j}]", ports[step_id], workflow_ids)
            if compiled is not None:
                steps[step_id] = compiled
        if len(starts) != 1:
            return None
        intents = raw[starts[0]][1].get("data", {}).get("intents", [])
        if not isinstance(intents, list) or not all(isinstance(u, str) for u in intents):
            self.error(f"{where}.steps[{raw[starts[0]][0]}]", "intents is a list of utterances.")
            intents = []
        return Workflow(id=item["id"], name=name, start_step_id=starts[0], steps=MappingProxyType(steps),
                        intents=tuple(intents))

    def connection(self, connection, where: str, raw: dict, ports: dict) -> None:
        if not isinstance(connection, dict):
            self.error(where, "A connection is an object {source, port, target}.")
            return
        source, port, target = connection.get("source"), connection.get("port", "next"), connection.get("target")
        if source not in raw:
            self.error(where, f"Unknown source step {source!r}.")
            return
        if target not in raw:
            self.error(where, f"Unknown target step {target!r}.")
            return
        step = raw[source][1]
        allowed = set(PORTS[step["type"]])
        if step["type"] == "buttons":
            buttons = step.get("data", {}).get("buttons", [])
            allowed |= {f"button:{i}" for i in range(len(buttons) if isinstance(buttons, list) else 0)}
        if port not in allowed:
            self.error(where, f"Step {source!r} ({step['type']}) has no port {port!r}.")
        elif port in ports[source]:
            self.error(where, f"Port {port!r} of step {source!r} is connected twice.")
        else:
            ports[source][port] = target

    def step(self, step: dict, where: str, ports: dict, workflow_ids: set) -> Step | None:
        kind, data = step["type"], step.get("data", {})
        templates: dict[str, Template] = {}
        expressions: dict[str, Expression] = {}
        extra: dict[str, Any] = {}
        try:
            for name in _TEMPLATE_FIELDS.get(kind, ()):
                if data.get(name) is not None:
                    templates[name] = Template(data[name], f"{where}.data.{name}")
            if kind == "message":
                texts = data.get("texts")
                if data.get("text") is None and not texts:
                    self.error(where, "A message step needs text.")
                for i, text in enumerate(texts or []):
                    templates[f"texts.{i}"] = Template(text, f"{where}.data.texts[{i}]")
            elif kind == "buttons":
                extra.update(self.buttons(data, where))
            elif kind == "capture":
                extra.update(self.capture(data, where))
            elif kind == "condition":
                expressions["if"] = Expression(data.get("if"), f"{where}.data.if")
            elif kind == "set":
                assign = data.get("assign")
                if not isinstance(assign, dict) or not assign:
                    self.error(where, "A set step has an assign object of variable → expression.")
                else:
                    for name, source in assign.items():
                        if not VARIABLE_NAME_RE.fullmatch(str(name)):
                            self.error(where, f"{name!r} is not a valid variable name.")
                        expressions[name] = Expression(source, f"{where}.data.assign.{name}")
            elif kind == "jump":
                if data.get("workflowId") not in workflow_ids:
                    self.error(where, f"A jump names an existing workflowId (got {data.get('workflowId')!r}).")
            elif kind == "media" and "url" not in templates:
                self.error(where, "A media step needs a url.")
            elif kind == "api":
                if not isinstance(data.get("tool"), str):
                    self.error(where, "An api step names its tool.")
                for name, source in (data.get("args") or {}).items():
                    templates[f"args.{name}"] = Template(str(source), f"{where}.data.args.{name}")
        except DocumentError as exc:
            for key, messages in exc.details.items():
                self.errors.setdefault(key, []).extend(messages)
            return None
        return Step(id=step["id"], type=kind, data=_frozen(data), ports=MappingProxyType(dict(ports)),
                    templates=MappingProxyType(templates), expressions=MappingProxyType(expressions), **extra)

    def buttons(self, data: dict, where: str) -> dict:
        items = data.get("buttons")
        if not isinstance(items, list) or not items:
            self.error(where, "A buttons step has a non-empty list of buttons.")
            return {}
        buttons, entries = [], []
        for i, item in enumerate(items):
            if not isinstance(item, dict) or not isinstance(item.get("label"), str):
                self.error(f"{where}.data.buttons[{i}]", "A button has a label.")
                continue
            buttons.append(Button(label=Template(item["label"], f"{where}.data.buttons[{i}].label"),
                                  value=_frozen(item.get("value", item["label"]))))
            utterances = item.get("utterances") or []
            if not isinstance(utterances, list):
                self.error(f"{where}.data.buttons[{i}]", "utterances is a list of text.")
                utterances = []
            value = item.get("value")
            entries += [(i, item["label"]), *[(i, u) for u in utterances if isinstance(u, str)]]
            if isinstance(value, str):
                entries.append((i, value))
        return {"buttons": tuple(buttons), "button_index": IntentIndex(entries)}

    def capture(self, data: dict, where: str) -> dict:
        if not isinstance(data.get("variable"), str) or not VARIABLE_NAME_RE.fullmatch(data["variable"]):
            self.error(where, "A capture step names the variable it fills.")
        validate = data.get("validate")
        if validate is not None and validate not in VALIDATORS:
            self.error(where, f"validate is one of {', '.join(VALIDATORS)} (got {validate!r}).")
        max_attempts = data.get("maxAttempts", DEFAULT_MAX_ATTEMPTS)
        if not isinstance(max_attempts, int) or max_attempts < 1:
            self.error(where, "maxAttempts is a positive integer.")
        if validate == "regex":
            try:
                return {"pattern": re.compile(data.get("pattern"))}
            except (re.error, TypeError) as exc:
                self.error(where, f"A regex capture needs a valid pattern: {exc}")
        return {}


_TEMPLATE_FIELDS = {
    "message": ("text",),
    "buttons": ("text",),
    "capture": ("prompt", "retryPrompt"),
    "media": ("url", "mimeType", "alt"),
    "handoff": ("reason",),
    "ai": ("prompt",),
    "kb": ("question",),
    "agent": ("instructions",),
    "data_query": ("sql", "name"),
}
