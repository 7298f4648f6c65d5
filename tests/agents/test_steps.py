"""The step registry: each step type declares its ports, fields and checks in its own module, and the spec and the
engine ask the registry rather than knowing step types by name."""
import importlib

import pytest

from agents.runtime import Action, AgentSpec, run_turn, validate_document
from agents.runtime.steps import STEP_TYPES, StepBuild, StepRun, StepType, Traces
from agents.runtime.steps.message import MessageStep
from agents.runtime.types import DocumentError

# The least data each step type accepts.
MINIMAL_DATA = {
    "start": {}, "message": {"text": "hi"}, "buttons": {"buttons": [{"label": "A"}, {"label": "B"}]},
    "capture": {"variable": "x"}, "condition": {"if": "true"}, "set": {"assign": {"x": "1"}},
    "jump": {"workflowId": "wf"}, "media": {"url": "https://cdn.example.com/a.png"}, "end": {}, "handoff": {},
    "api": {"tool": "lookup"}, "ai": {}, "kb": {}, "agent": {}, "data_query": {"sql": "select 1"},
}


def document_with(kind: str, ports) -> dict:
    """One workflow holding a step of `kind` (the start step itself for `start`) connected to `t` by `ports`."""
    source = "start" if kind == "start" else "s"
    steps = [{"id": "start", "type": "start", "data": {}}, {"id": "t", "type": "message", "data": {"text": "t"}}]
    if kind != "start":
        steps.append({"id": "s", "type": kind, "data": MINIMAL_DATA[kind]})
    return {"workflows": [{"id": "wf", "name": "W", "steps": steps,
                           "connections": [{"source": source, "port": port, "target": "t"} for port in ports]}]}


def test_the_registry_holds_one_step_type_per_module():
    assert set(STEP_TYPES) == set(MINIMAL_DATA)
    for name, step_type in STEP_TYPES.items():
        assert step_type.name == name
        module = importlib.import_module(f"agents.runtime.steps.{name}")
        assert type(step_type).__module__ == module.__name__


@pytest.mark.parametrize("kind", sorted(MINIMAL_DATA))
def test_a_step_types_ports_come_from_its_module(kind):
    step_type = STEP_TYPES[kind]
    ports = sorted(step_type.ports_for(MINIMAL_DATA[kind]))
    validate_document(document_with(kind, ports))  # every port it declares can be connected

    with pytest.raises(DocumentError) as caught:
        validate_document(document_with(kind, [*ports, "sideways"]))
    source = "start" if kind == "start" else "s"
    assert caught.value.details == {
        f"workflows[0].connections[{len(ports)}]": [f"Step {source!r} ({kind}) has no port 'sideways'."]}


def test_buttons_have_a_port_per_button():
    assert STEP_TYPES["buttons"].ports_for(MINIMAL_DATA["buttons"]) == {"noMatch", "button:0", "button:1"}
    assert STEP_TYPES["buttons"].ports_for({"buttons": "not a list"}) == {"noMatch"}


def test_the_spec_asks_the_registry_for_ports(monkeypatch):
    monkeypatch.setattr(MessageStep, "ports", frozenset({"next", "later"}))
    document = document_with("message", ["later"])
    validate_document(document)


@pytest.mark.parametrize(("kind", "field"), [
    (kind, field) for kind, step_type in STEP_TYPES.items() for field in step_type.template_fields
])
def test_each_template_field_is_compiled_where_it_is(kind, field):
    document = document_with(kind, [])
    step = document["workflows"][0]["steps"][-1] if kind != "start" else document["workflows"][0]["steps"][0]
    step["data"] = {**step["data"], field: "{{ broken "}
    with pytest.raises(DocumentError) as caught:
        validate_document(document)
    index = 0 if kind == "start" else 2
    assert "Template error" in caught.value.details[f"workflows[0].steps[{index}].data.{field}"][0]


class ShoutStep(StepType):
    """A step type written the way a new one lands: one class, registered, and nothing else changes."""

    name = "shout"
    ports = frozenset({"next", "quiet"})
    template_fields = ("text",)

    def prepare(self, build: StepBuild) -> None:
        if "text" not in build.templates:
            build.error("A shout step needs text.")

    async def run(self, run: StepRun) -> Traces:
        text = run.render(run.step.templates["text"])
        yield run.say(text.upper())
        run.follow("next" if text else "quiet")


async def test_a_new_step_type_is_one_registered_class(monkeypatch):
    import agents.runtime.engine
    import agents.runtime.spec

    registry = {**STEP_TYPES, "shout": ShoutStep()}
    monkeypatch.setattr(agents.runtime.spec, "STEP_TYPES", registry)
    monkeypatch.setattr(agents.runtime.engine, "STEP_TYPES", registry)
    document = {"workflows": [{"id": "wf", "name": "W", "steps": [
        {"id": "start", "type": "start", "data": {}},
        {"id": "s", "type": "shout", "data": {"text": "hello {{ name }}"}},
        {"id": "t", "type": "message", "data": {"text": "done"}},
    ], "connections": [{"source": "start", "port": "next", "target": "s"},
                       {"source": "s", "port": "next", "target": "t"}]}]}
    spec = AgentSpec.from_document(document, project_id="p", version_id="v")
    traces = [item async for item in run_turn(spec, {"variables": {"name": "ann"}}, Action("launch"))]
    assert [t["payload"]["message"] for t in traces] == ["HELLO ANN", "done"]

    document["workflows"][0]["steps"][1]["data"] = {}
    with pytest.raises(DocumentError) as caught:
        validate_document(document)
    assert caught.value.details == {"workflows[0].steps[1]": ["A shout step needs text."]}
