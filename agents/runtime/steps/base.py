"""What every step type is made of: the compiled `Step`, the `StepBuild` a step type compiles its data with, the
`StepRun` it runs with, and the `StepType` contract itself.

A step type lives in one module of this package and declares, in one class: its `name`, its `ports`, its
`template_fields` / `expression_fields`, its own checks and compiled parts (`prepare`), and what it does when the
walk reaches it (`run`) — plus, for a step that waits for the user, how it asks (`prompt`) and how it takes the
answer (`answer`)."""
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

from agents.runtime.cache import compiled
from agents.runtime.templates import Expression, Template

if TYPE_CHECKING:
    from agents.runtime.agentic import ModelReply
    from agents.runtime.engine import Turn
    from agents.runtime.ports import LlmResult, Ports
    from agents.runtime.spec import AgentSpec
    from agents.runtime.types import Action

# What a step's `run`, `prompt` and `answer` yield: traces, or None for "nothing to send" (a debug note when the turn
# is not debugging, an empty message), which the walker drops — so a step can always write `yield run.say(text)`.
Traces = AsyncIterator[dict | None]
Location = tuple[str, str | None]  # (workflow id, step id); no step id: the path ended there


@dataclass(frozen=True, eq=False)
class Step:
    """One step of a workflow, compiled once per spec and shared by every turn."""

    id: str
    type: str
    data: Mapping  # the step's JSON data, read-only
    ports: Mapping  # port → target step id
    templates: Mapping = field(default_factory=lambda: MappingProxyType({}))
    expressions: Mapping = field(default_factory=lambda: MappingProxyType({}))
    compiled: Mapping = field(default_factory=lambda: MappingProxyType({}))  # the step type's own parts (`prepare`)

    def target(self, port: str) -> str | None:
        return self.ports.get(port)


class StepBuild:
    """Compiling one step's data: problems are recorded where they are (`workflows[0].steps[2]…`), next to the whole
    document's, so a document reports everything at once. A bad template or expression raises `DocumentError`, which
    stops this step's compilation only."""

    def __init__(self, *, where: str, data: dict, workflow_ids: frozenset[str], errors: dict[str, list[str]]):
        self.where = where
        self.data = data
        self.workflow_ids = workflow_ids  # a step may name another workflow (jump)
        self.errors = errors
        self.templates: dict[str, Template] = {}
        self.expressions: dict[str, Expression] = {}
        self.compiled: dict[str, Any] = {}

    def error(self, message: str, *, at: str = "") -> None:
        """A problem of this step; `at` narrows where it is (`.data.buttons[1]`)."""
        self.errors.setdefault(self.where + at, []).append(message)

    def template(self, key: str, source: Any, *, at: str) -> None:
        self.templates[key] = compiled(Template, source, self.where + at)

    def expression(self, key: str, source: Any, *, at: str) -> None:
        self.expressions[key] = compiled(Expression, source, self.where + at)


class StepRun:
    """One step being run: what it reads, how it speaks, and where it sends the walk next.

    A step says where the walk goes by calling `follow(port)` (or `go_to` for another workflow); a step that calls
    neither ends the walk there — it waits for the user, ended the conversation or handed it off. A followed port
    with no connection ends the path, and the walk returns after the innermost jump (see `engine.py`)."""

    def __init__(self, turn: "Turn", workflow_id: str, step: Step, *, waiting: dict | None = None):
        self.turn = turn
        self.workflow_id = workflow_id
        self.step = step
        self.waiting = waiting  # while answering: the session's waiting record (`attempts` so far)
        self.next: Location | None = None

    # --- what the step reads

    @property
    def spec(self) -> "AgentSpec":
        return self.turn.spec

    @property
    def ports(self) -> "Ports":
        return self.turn.ports

    @property
    def action(self) -> "Action":
        return self.turn.action

    @property
    def user_text(self) -> str | None:
        """What the user typed (or the label of the button they pressed)."""
        return self.turn.user_text

    @property
    def context(self) -> dict:
        return self.turn.context

    @property
    def state(self) -> dict:
        return self.turn.state

    @property
    def variables(self) -> dict:
        return self.turn.state["variables"]

    # --- where the walk goes

    def follow(self, port: str) -> None:
        self.next = (self.workflow_id, self.step.target(port))

    def go_to(self, workflow_id: str, step_id: str) -> None:
        self.next = (workflow_id, step_id)

    def wait(self, *, attempts: int = 0) -> None:
        """Stop here until the user answers; the next turn's action goes to this step's `answer`."""
        self.turn.state["waiting"] = {"workflowId": self.workflow_id, "stepId": self.step.id,
                                      "kind": self.step.type, "attempts": attempts}

    def end_conversation(self) -> None:
        self.turn.ended = True

    def hand_off(self) -> None:
        self.turn.handoff = True

    # --- speaking (each returns the trace to yield, or None)

    def say(self, message: str) -> dict | None:
        return self.turn.say(message)

    def debug(self, level: str, message: str) -> dict | None:
        return self.turn.debug_trace(level, message)

    def stream(self, stream: AsyncIterator, reply: "ModelReply | None" = None) -> Traces:
        """A model call's reply (`Ports.llm`'s stream) said as it is written: `completion-start`, then one `text`
        trace per chunk; its `LlmResult` goes to `reply` and to the turn's `llm_calls`."""
        return self.turn.stream_reply(stream, reply)

    async def complete(self, messages: list[dict], **options) -> "LlmResult":
        """A model call whose reply is not said (an extraction); recorded in the turn's `llm_calls`."""
        return await self.turn.complete(messages, **options)

    def render(self, template: Template | None) -> str:
        """The template with the session's variables; a fault renders "" and becomes a debug warning."""
        return self.turn.render(template)

    def evaluate(self, expression: Expression) -> Any:
        """The expression's value; a fault is None and becomes a debug warning."""
        return self.turn.evaluate(expression)


class StepType(ABC):
    """One kind of step. Subclasses set the class attributes and write `run` as an async generator; the registry
    (`agents/runtime/steps/__init__.py`) holds one instance of each."""

    name: ClassVar[str]
    ports: ClassVar[frozenset[str]] = frozenset({"next"})  # the ports a connection may leave this step by
    template_fields: ClassVar[tuple[str, ...]] = ()  # data fields compiled as text templates when present
    expression_fields: ClassVar[tuple[str, ...]] = ()  # data fields compiled as expressions, required
    waits_for_answer: ClassVar[bool] = False  # True: the step has `prompt` and `answer`

    def ports_for(self, data: dict) -> frozenset[str]:
        """The ports of a step with this data (a `buttons` step has one per button)."""
        return self.ports

    def compile(self, build: StepBuild) -> None:
        for name in self.template_fields:
            if build.data.get(name) is not None:
                build.template(name, build.data[name], at=f".data.{name}")
        for name in self.expression_fields:
            build.expression(name, build.data.get(name), at=f".data.{name}")
        self.prepare(build)

    def prepare(self, build: StepBuild) -> None:
        """This step type's own checks of its data, and what it compiles beyond its template and expression fields
        (into `build.compiled`, read back as `step.compiled`). Most step types need nothing beyond their fields."""
        return None

    @abstractmethod
    def run(self, run: StepRun) -> Traces:
        """What the step does when the walk reaches it."""

    def prompt(self, run: StepRun) -> Traces:
        """A waiting step's question, asked when the walk reaches it and again when the user comes back (launch)."""
        raise TypeError(f"{self.name} steps do not wait for an answer")

    def answer(self, run: StepRun) -> Traces:
        """A waiting step takes the user's action: `follow` a port, or `wait` again (re-asking)."""
        raise TypeError(f"{self.name} steps do not wait for an answer")
