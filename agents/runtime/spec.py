"""The frozen, compiled form of a project document that the engine runs, and the validation of a document.

`AgentSpec.from_document` checks the whole document (collecting every problem, keyed by where it is), compiles
templates, expressions and the intent index once, and returns immutable objects that many turns share. This module
owns the document's shape (workflows, ids, connections, one start step, settings); what a step of a given type may
hold — its ports, templates, checks — belongs to its step type (`agents/runtime/steps/`).

The agentic parts are compiled here too: `phases` (each with its instructions, tool allowlist, buttons and exit
condition) and `behaviourConfig.agentHarness` (the tool allowlist, the handoff bound, the variables the model
sees). `allowedToolIds` names project tool ids (an MCP tool's server id): absent or empty allows every project
tool; the harness's list and a phase's (or an `agent` step's) list both apply, so a tool must pass each that is
given. Built-in tools (set_variable, handoff, end_conversation, workflows, knowledge and data search) are always
offered."""
import re
from dataclasses import dataclass, field
from types import MappingProxyType

from agents.runtime.builtins import BUILT_IN_TOOLS, workflow_tools
from agents.runtime.cache import WORKFLOWS, content_digest
from agents.runtime.matching import IntentIndex
from agents.runtime.steps import STEP_TYPES, Step, StepBuild
from agents.runtime.templates import Expression
from agents.runtime.toolspec import check_tools
from agents.runtime.types import DocumentError
from agents.runtime.values import VARIABLE_NAME_RE, frozen, is_whole_number

DEFAULT_FALLBACK = "Sorry, I didn't understand that."
MAX_RATE_LIMIT_PER_MINUTE = 100_000
MAX_TURN_TIMEOUT_SECONDS = 3600
VARIABLE_TYPES = ("string", "number", "integer", "boolean", "object", "array")
DEFAULT_MAX_HANDOFFS = 2
MAX_TEMPERATURE = 2
MAX_MODEL_TOKENS = 1_000_000
COLOR_RE = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8})")  # fullmatch
WIDGET_TEXTS = ("title", "welcomeMessage")


@dataclass(frozen=True, eq=False)
class Phase:
    """One phase of an agentic conversation. It exits (to the next phase in document order) when `exit_expression`
    is true over the variables, or when the model calls `exit_tool` successfully; the last phase never exits."""

    id: str
    instructions: str = ""
    allowed_tool_ids: tuple[str, ...] = ()  # empty: every project tool
    buttons: tuple = ()  # read-only {label, value}, offered as a choice at the end of a turn in this phase
    exit_expression: Expression | None = None
    exit_tool: str | None = None


@dataclass(frozen=True)
class AgentHarness:
    """`behaviourConfig.agentHarness`: what every agent loop of the project obeys."""

    allowed_tool_ids: tuple[str, ...] = ()  # empty: every project tool
    max_handoffs: int = DEFAULT_MAX_HANDOFFS  # handoffs the agent may make per conversation
    snapshot_keys: tuple[str, ...] = ()  # variables shown to the model, as JSON, in its system prompt


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
    # Read by the turn service, so each version carries its own limits (None: the service's default).
    rate_limit_per_minute: int | None = None  # settings.rateLimit.perMinute
    turn_timeout_seconds: int | None = None  # settings.turnTimeoutSeconds: how long one turn may run
    # The agent loop (agents/runtime/agentic.py).
    variable_types: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))  # declared name → type
    phases: tuple[Phase, ...] = ()
    harness: AgentHarness = AgentHarness()

    @classmethod
    def from_document(cls, document: dict, *, project_id: str, version_id: str) -> "AgentSpec":
        return _Builder(document).build(project_id=project_id, version_id=version_id)


def validate_document(document: dict) -> None:
    """Raises DocumentError with every problem of the document (details keyed by location). It compiles what a spec
    compiles (shared with the spec built next, `agents/runtime/cache.py`) but not the intent index, which cannot
    fail."""
    _Builder(document).build(project_id="", version_id="", check_only=True)


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

    def build(self, *, project_id: str, version_id: str, check_only: bool = False) -> AgentSpec | None:
        settings = self.part("settings", dict, {})
        rate_limit_per_minute, turn_timeout_seconds = self.limits(settings)
        variables, variable_types = self.variables(self.part("variables", list, []))
        workflows = self.workflows(self.part("workflows", list, []))
        start = settings.get("startWorkflowId")
        if start is not None and (not isinstance(start, str) or start not in workflows):
            self.error("settings.startWorkflowId", f"No workflow has the id {start!r}.")
        fallback = settings.get("fallbackMessage") or DEFAULT_FALLBACK
        if not isinstance(fallback, str):
            self.error("settings.fallbackMessage", "Expected text.")
        framework = self.document.get("framework", "conversation-flow")
        if framework not in ("conversation-flow", "agentic"):
            self.error("framework", "Expected conversation-flow or agentic.")
        instructions = self.part("instructions", str, "")
        model = self.model(self.part("model", dict, {}))
        self.widget(self.part("widget", dict, {}))
        tools = self.part("tools", list, [])
        for where, messages in check_tools(tools).items():
            self.errors.setdefault(where, []).extend(messages)
        self.tool_ids_free(tools, workflow_tools(workflows))
        phases = self.phases(self.part("phases", list, []))
        harness = self.harness(self.part("behaviourConfig", dict, {}))
        if self.errors:
            raise DocumentError.listing(self.errors)
        if check_only:
            return None
        intents = IntentIndex(
            (workflow.id, utterance) for workflow in workflows.values() for utterance in workflow.intents
        )
        return AgentSpec(
            project_id=project_id,
            version_id=version_id,
            framework=framework,
            instructions=instructions,
            model=frozen(model),
            workflows=MappingProxyType(workflows),
            start_workflow_id=start or next(iter(workflows), None),
            fallback_message=fallback,
            variable_defaults=MappingProxyType(variables),
            settings=frozen(settings),
            tools=frozen(tools),
            intent_index=intents,
            rate_limit_per_minute=rate_limit_per_minute,
            turn_timeout_seconds=turn_timeout_seconds,
            variable_types=MappingProxyType(variable_types),
            phases=phases,
            harness=harness,
        )

    def limits(self, settings: dict) -> tuple[int | None, int | None]:
        """`settings.rateLimit.perMinute` and `settings.turnTimeoutSeconds`; absent (or null) means the turn
        service's default."""
        per_minute = None
        rate_limit = settings.get("rateLimit")
        if rate_limit is not None and not isinstance(rate_limit, dict):
            self.error("settings.rateLimit", "Expected an object.")
        elif rate_limit is not None:
            per_minute = self.bounded(rate_limit.get("perMinute"), "settings.rateLimit.perMinute",
                                      MAX_RATE_LIMIT_PER_MINUTE)
        timeout = self.bounded(settings.get("turnTimeoutSeconds"), "settings.turnTimeoutSeconds",
                               MAX_TURN_TIMEOUT_SECONDS)
        return per_minute, timeout

    def model(self, model: dict) -> dict:
        """`model`: the name (else the operator's CONDUET_LLM_MODEL), temperature and maxTokens go to the model
        endpoint as they are, so a value it would refuse is refused here, when it is written, not at the turn."""
        name = model.get("name")
        if name is not None and not isinstance(name, str):
            self.error("model.name", "Expected a model name (text); empty or absent: the server's default model.")
        temperature = model.get("temperature")
        if temperature is not None and (isinstance(temperature, bool) or not isinstance(temperature, int | float)
                                        or not 0 <= temperature <= MAX_TEMPERATURE):
            self.error("model.temperature", f"Expected a number from 0 to {MAX_TEMPERATURE}.")
        self.bounded(model.get("maxTokens"), "model.maxTokens", MAX_MODEL_TOKENS)
        return model

    def widget(self, widget: dict) -> None:
        """`widget`: what the embeddable chat shows (title, colour, welcome message, starter questions)."""
        for name in WIDGET_TEXTS:
            if widget.get(name) is not None and not isinstance(widget[name], str):
                self.error(f"widget.{name}", "Expected text.")
        color = widget.get("color")
        if color is not None and (not isinstance(color, str) or not COLOR_RE.fullmatch(color)):
            self.error("widget.color", "Expected a hex colour such as #4f46e5.")
        starters = widget.get("starters")
        if starters is not None and (not isinstance(starters, list)
                                     or not all(isinstance(item, str) and item for item in starters)):
            self.error("widget.starters", "Expected a list of texts.")

    def bounded(self, value, where: str, most: int) -> int | None:
        if value is None:
            return None
        if not is_whole_number(value) or not 1 <= value <= most:
            self.error(where, f"Expected a positive integer, at most {most}.")
            return None
        return value

    def variables(self, items: list) -> tuple[dict, dict]:
        """The defaults, and each declared name's type (None: any JSON value)."""
        defaults, types = {}, {}
        for i, item in enumerate(items):
            where = f"variables[{i}]"
            name = item.get("name") if isinstance(item, dict) else None
            if not isinstance(name, str) or not VARIABLE_NAME_RE.fullmatch(name):
                self.error(where, "A variable is an object with a name of letters, digits and _.")
                continue
            if name in types:
                self.error(f"{where}.name", f"Duplicate variable name {name!r}.")
                continue
            kind = item.get("type")
            if kind is not None and kind not in VARIABLE_TYPES:
                self.error(f"{where}.type", f"Expected one of {', '.join(VARIABLE_TYPES)}.")
                kind = None
            types[name] = kind
            if "default" in item:  # a variable with no default stays undefined until set
                defaults[item["name"]] = item["default"]
        return defaults, types

    def tool_ids_free(self, tools: list, workflow_tool_names: dict) -> None:
        """A project tool may not take the name of a built-in tool or of a workflow's tool: the model would call
        one of them by that name, and never the other."""
        for i, item in enumerate(tools):
            tool_id = item.get("id") if isinstance(item, dict) else None
            if tool_id in BUILT_IN_TOOLS or tool_id in workflow_tool_names:
                self.error(f"tools[{i}].id", f"{tool_id!r} is the name of a built-in tool; choose another id.")

    def phases(self, items: list) -> tuple[Phase, ...]:
        ids = [item.get("id") if isinstance(item, dict) else None for item in items]
        phases = []
        for i, item in enumerate(items):
            where = f"phases[{i}]"
            if not isinstance(item, dict):
                self.error(where, "A phase is an object.")
                continue
            phase_id = item.get("id")
            if not isinstance(phase_id, str) or not phase_id:
                self.error(where, "A phase needs a non-empty string id.")
                continue
            if ids.count(phase_id) > 1:
                self.error(where, f"Duplicate phase id {phase_id!r}.")
                continue
            instructions = item.get("instructions") or ""
            if not isinstance(instructions, str):
                self.error(f"{where}.instructions", "Expected text.")
                instructions = ""
            phase = Phase(id=phase_id, instructions=instructions,
                          allowed_tool_ids=self.tool_ids(item.get("allowedToolIds"), f"{where}.allowedToolIds"),
                          buttons=self.buttons(item.get("buttons"), f"{where}.buttons"),
                          **self.exit_condition(item.get("exitCondition"), f"{where}.exitCondition"))
            phases.append(phase)
        return tuple(phases)

    def tool_ids(self, value, where: str) -> tuple[str, ...]:
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.error(where, "Expected a list of tool ids.")
            return ()
        return tuple(value)

    def buttons(self, value, where: str) -> tuple:
        if value is None:
            return ()
        if not isinstance(value, list):
            self.error(where, "Expected a list of {label, value}.")
            return ()
        buttons = []
        for i, button in enumerate(value):
            if not isinstance(button, dict) or not isinstance(button.get("label"), str) or not button["label"]:
                self.error(f"{where}[{i}]", "A button is an object with a label (text) and a value.")
                continue
            buttons.append(frozen({"label": button["label"], "value": button.get("value", button["label"])}))
        return tuple(buttons)

    def exit_condition(self, value, where: str) -> dict:
        """An expression over the variables, or {"tool": name}; absent: the phase never exits by itself."""
        if value is None or value == "":
            return {}
        if isinstance(value, dict):
            tool = value.get("tool")
            if set(value) != {"tool"} or not isinstance(tool, str) or not tool:
                self.error(where, 'Expected an expression or {"tool": "<tool name>"}.')
                return {}
            return {"exit_tool": tool}
        try:
            return {"exit_expression": Expression(value, where)}
        except DocumentError as exc:
            for key, messages in exc.details.items():
                self.errors.setdefault(key, []).extend(messages)
            return {}

    def harness(self, behaviour: dict) -> AgentHarness:
        where = "behaviourConfig.agentHarness"
        harness = behaviour.get("agentHarness")
        if harness is None:
            return AgentHarness()
        if not isinstance(harness, dict):
            self.error(where, "Expected an object.")
            return AgentHarness()
        max_handoffs = harness.get("maxHandoffs")
        if max_handoffs is None:
            max_handoffs = DEFAULT_MAX_HANDOFFS
        elif not is_whole_number(max_handoffs) or max_handoffs < 0:
            self.error(f"{where}.maxHandoffs", "Expected a whole number, 0 or more.")
            max_handoffs = DEFAULT_MAX_HANDOFFS
        keys = harness.get("snapshotKeys") or []
        if not isinstance(keys, list) or not all(isinstance(k, str) and VARIABLE_NAME_RE.fullmatch(k) for k in keys):
            self.error(f"{where}.snapshotKeys", "Expected a list of variable names.")
            keys = []
        return AgentHarness(allowed_tool_ids=self.tool_ids(harness.get("allowedToolIds"), f"{where}.allowedToolIds"),
                            max_handoffs=max_handoffs, snapshot_keys=tuple(keys))

    def workflows(self, items: list) -> dict[str, Workflow]:
        ids = [item.get("id") if isinstance(item, dict) else None for item in items]
        workflow_ids = frozenset(i for i in ids if isinstance(i, str) and i)
        ids_digest = content_digest(sorted(workflow_ids))
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
            # A workflow compiles from its own JSON and the document's workflow ids alone, and a compiled one is
            # immutable: one that a previous document held unchanged (a write of another part) is not compiled
            # again. Only workflows without a fault are cached.
            key = content_digest(item)
            workflow = WORKFLOWS.get((key, ids_digest)) if key is not None else None
            if workflow is None:
                faults = self.fault_count()
                workflow = self.workflow(item, where, workflow_ids)
                if workflow is not None and key is not None and self.fault_count() == faults:
                    WORKFLOWS.put((key, ids_digest), workflow)
            if workflow is not None:
                built[workflow_id] = workflow
        return built

    def fault_count(self) -> int:
        return sum(len(messages) for messages in self.errors.values())

    def workflow(self, item: dict, where: str, workflow_ids: frozenset[str]) -> Workflow | None:
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
            elif not isinstance(step.get("type"), str) or step["type"] not in STEP_TYPES:
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
        start = steps.get(starts[0])  # its intents were checked and compiled by the start step type
        return Workflow(id=item["id"], name=name, start_step_id=starts[0], steps=MappingProxyType(steps),
                        intents=start.compiled.get("intents", ()) if start else ())

    def connection(self, connection, where: str, raw: dict, ports: dict) -> None:
        if not isinstance(connection, dict):
            self.error(where, "A connection is an object {source, port, target}.")
            return
        source, port, target = connection.get("source"), connection.get("port", "next"), connection.get("target")
        if not isinstance(source, str) or source not in raw:
            self.error(where, f"Unknown source step {source!r}.")
            return
        if not isinstance(target, str) or target not in raw:
            self.error(where, f"Unknown target step {target!r}.")
            return
        step = raw[source][1]
        if not isinstance(port, str) or port not in STEP_TYPES[step["type"]].ports_for(step.get("data", {})):
            self.error(where, f"Step {source!r} ({step['type']}) has no port {port!r}.")
        elif port in ports[source]:
            self.error(where, f"Port {port!r} of step {source!r} is connected twice.")
        else:
            ports[source][port] = target

    def step(self, step: dict, where: str, ports: dict, workflow_ids: frozenset[str]) -> Step | None:
        """The step compiled by its step type; None when a template or expression of it does not compile."""
        data = step.get("data", {})
        build = StepBuild(where=where, data=data, workflow_ids=workflow_ids, errors=self.errors)
        try:
            STEP_TYPES[step["type"]].compile(build)
        except DocumentError as exc:
            for key, messages in exc.details.items():
                self.errors.setdefault(key, []).extend(messages)
            return None
        return Step(id=step["id"], type=step["type"], data=frozen(data), ports=MappingProxyType(dict(ports)),
                    templates=MappingProxyType(build.templates), expressions=MappingProxyType(build.expressions),
                    compiled=MappingProxyType(build.compiled))
