"""Validation of project documents: every problem reported where it is."""
import copy

import pytest

from agents.demo import DEMO_PROJECT
from agents.runtime import AgentSpec, DocumentError, validate_document


def workflow(steps, connections, id="wf", name="W"):
    return {"id": id, "name": name, "steps": steps, "connections": connections}


START = {"id": "start", "type": "start", "data": {}}
HELLO = {"id": "hello", "type": "message", "data": {"text": "Hi"}}


def errors_of(document) -> dict:
    with pytest.raises(DocumentError) as caught:
        validate_document(document)
    return caught.value.details


def test_the_demo_is_valid():
    validate_document(DEMO_PROJECT)
    spec = AgentSpec.from_document(DEMO_PROJECT, project_id="p", version_id="v")
    assert spec.start_workflow_id == "wf_welcome"
    assert list(spec.workflows) == ["wf_welcome", "wf_account", "wf_hours"]


def test_an_empty_document_is_valid():
    spec = AgentSpec.from_document({}, project_id="p", version_id="v")
    assert spec.start_workflow_id is None
    assert spec.fallback_message == "Sorry, I didn't understand that."


@pytest.mark.parametrize(("workflows", "where", "fragment"), [
    ([workflow([HELLO], [])], "workflows[0]", "exactly one start step"),
    ([workflow([START, {**START, "id": "s2"}], [])], "workflows[0]", "exactly one start step"),
    ([workflow([START, START], [])], "workflows[0].steps[1]", "Duplicate step id"),
    ([workflow([START, {"id": "x", "type": "teleport"}], [])], "workflows[0].steps[1]", "Unknown step type"),
    ([workflow([START], [{"source": "start", "port": "next", "target": "ghost"}])], "workflows[0].connections[0]",
     "Unknown target"),
    ([workflow([START, HELLO], [{"source": "nobody", "port": "next", "target": "hello"}])],
     "workflows[0].connections[0]", "Unknown source"),
    ([workflow([START, HELLO], [{"source": "start", "port": "true", "target": "hello"}])],
     "workflows[0].connections[0]", "has no port 'true'"),
    ([workflow([START, {"id": "b", "type": "buttons", "data": {"buttons": [{"label": "A"}]}}, HELLO],
               [{"source": "b", "port": "button:1", "target": "hello"}])],
     "workflows[0].connections[0]", "has no port 'button:1'"),
    ([workflow([START, {"id": "j", "type": "jump", "data": {"workflowId": "elsewhere"}}], [])],
     "workflows[0].steps[1]", "existing workflowId"),
    ([workflow([START, {"id": "m", "type": "message", "data": {"text": "Hi {{ name "}}], [])],
     "workflows[0].steps[1].data.text", "Template error"),
    ([workflow([START, {"id": "c", "type": "condition", "data": {"if": "a =="}}], [])],
     "workflows[0].steps[1].data.if", "Expression error"),
    ([workflow([START, {"id": "c", "type": "capture", "data": {"variable": "x", "validate": "zip"}}], [])],
     "workflows[0].steps[1]", "validate is one of"),
    ([workflow([START, {"id": "c", "type": "capture", "data": {"variable": "x", "validate": "regex",
                                                               "pattern": "(["}}], [])],
     "workflows[0].steps[1]", "valid pattern"),
    ([workflow([START, {"id": "c", "type": "capture", "data": {"prompt": "?"}}], [])],
     "workflows[0].steps[1]", "names the variable"),
    ([workflow([START], []), workflow([START], [])], "workflows[1]", "Duplicate workflow id"),
    ([{"name": "no id", "steps": [], "connections": []}], "workflows[0]", "non-empty string id"),
])
def test_invalid_workflows_are_reported_where_they_are(workflows, where, fragment):
    details = errors_of({"workflows": workflows})
    assert where in details, details
    assert any(fragment in message for message in details[where]), details[where]


def test_start_workflow_must_exist():
    details = errors_of({"workflows": [workflow([START], [])], "settings": {"startWorkflowId": "nope"}})
    assert "settings.startWorkflowId" in details


def test_bad_variables_and_parts():
    details = errors_of({"variables": [{"name": "not valid"}], "workflows": {"a": 1}, "framework": "magic"})
    assert set(details) >= {"variables[0]", "workflows", "framework"}


def test_all_problems_are_reported_at_once():
    document = copy.deepcopy(DEMO_PROJECT)
    document["workflows"][0]["connections"].append({"source": "hello", "port": "sideways", "target": "menu"})
    document["workflows"][1]["steps"][1]["data"]["validate"] = "zip"
    details = errors_of(document)
    added = len(document["workflows"][0]["connections"]) - 1
    assert f"workflows[0].connections[{added}]" in details and "workflows[1].steps[1]" in details


def test_spec_is_immutable():
    spec = AgentSpec.from_document(DEMO_PROJECT, project_id="p", version_id="v")
    with pytest.raises(TypeError):
        spec.workflows["x"] = None
    with pytest.raises(AttributeError):
        spec.fallback_message = "changed"


@pytest.mark.parametrize(("steps", "where", "fragment"), [
    ([{"id": "a", "type": "api", "data": {"tool": "t", "args": ["email"]}}], "workflows[0].steps[1]", "args is an"),
    ([{"id": "a", "type": "api", "data": {"tool": "t", "save": ["balance"]}}], "workflows[0].steps[1]", "save is an"),
    ([{"id": "m", "type": "message", "data": {"texts": "not a list"}}], "workflows[0].steps[1]", "texts is a list"),
    ([{"id": "c", "type": "capture", "data": {"variable": "x", "maxAttempts": True}}], "workflows[0].steps[1]",
     "maxAttempts is a positive integer"),
    ([{"id": "x", "type": ["message"]}], "workflows[0].steps[1]", "Unknown step type"),
    ([{"id": "j", "type": "jump", "data": {"workflowId": ["wf"]}}], "workflows[0].steps[1]", "existing workflowId"),
])
def test_malformed_step_data_is_reported_not_raised(steps, where, fragment):
    details = errors_of({"workflows": [workflow([START, *steps], [])]})
    assert any(fragment in message for message in details[where]), details


def test_malformed_connections_are_reported_not_raised():
    details = errors_of({"workflows": [workflow([START, HELLO], [
        {"source": ["start"], "port": "next", "target": "hello"},
        {"source": "start", "port": {"a": 1}, "target": "hello"},
    ])], "settings": {"startWorkflowId": ["wf"]}})
    assert set(details) == {"workflows[0].connections[0]", "workflows[0].connections[1]", "settings.startWorkflowId"}


# --- settings the turn service reads from the version it runs (parameters are not named `settings`: that is
# pytest-django's fixture)


def test_limits_come_from_the_settings():
    spec = AgentSpec.from_document({"settings": {"rateLimit": {"perMinute": 30}, "turnTimeoutSeconds": 120}},
                                   project_id="p", version_id="v")
    assert (spec.rate_limit_per_minute, spec.turn_timeout_seconds) == (30, 120)
    assert spec.settings["rateLimit"]["perMinute"] == 30


@pytest.mark.parametrize("document_settings", [
    {}, {"rateLimit": {}}, {"rateLimit": None, "turnTimeoutSeconds": None}, {"rateLimit": {"perMinute": None}},
])
def test_limits_are_none_when_not_set(document_settings):
    spec = AgentSpec.from_document({"settings": document_settings}, project_id="p", version_id="v")
    assert spec.rate_limit_per_minute is None and spec.turn_timeout_seconds is None


def test_limits_at_their_bounds_are_valid():
    spec = AgentSpec.from_document({"settings": {"rateLimit": {"perMinute": 100_000}, "turnTimeoutSeconds": 3600}},
                                   project_id="p", version_id="v")
    assert (spec.rate_limit_per_minute, spec.turn_timeout_seconds) == (100_000, 3600)
    spec = AgentSpec.from_document({"settings": {"rateLimit": {"perMinute": 1}, "turnTimeoutSeconds": 1}},
                                   project_id="p", version_id="v")
    assert (spec.rate_limit_per_minute, spec.turn_timeout_seconds) == (1, 1)


@pytest.mark.parametrize(("document_settings", "where"), [
    ({"rateLimit": 60}, "settings.rateLimit"),
    ({"rateLimit": [60]}, "settings.rateLimit"),
    *[({"rateLimit": {"perMinute": bad}}, "settings.rateLimit.perMinute")
      for bad in (0, -5, 100_001, True, 1.5, 60.0, "60", [60])],
    *[({"turnTimeoutSeconds": bad}, "settings.turnTimeoutSeconds") for bad in (0, -1, 3601, False, True, 2.5, "30")],
])
def test_bad_limits_are_reported_where_they_are(document_settings, where):
    details = errors_of({"settings": document_settings})
    assert list(details) == [where]
    assert details[where] == [
        "Expected an object." if where == "settings.rateLimit" else
        f"Expected a positive integer, at most {100_000 if 'perMinute' in where else 3600}."]


# --- the agentic parts: phases, the agent harness, variable types


def test_phases_and_the_harness_are_compiled():
    spec = AgentSpec.from_document({
        "framework": "agentic",
        "variables": [{"name": "order_id", "type": "string"}, {"name": "anything"}],
        "phases": [{"id": "triage", "instructions": "Find it.", "allowedToolIds": ["lookup"],
                    "buttons": [{"label": "Where?", "value": {"kind": "where"}}, {"label": "Human"}],
                    "exitCondition": "order_id"},
                   {"id": "resolve", "exitCondition": {"tool": "lookup"}}, {"id": "end"}],
        "behaviourConfig": {"agentHarness": {"allowedToolIds": ["lookup"], "maxHandoffs": 0,
                                             "snapshotKeys": ["order_id"]}},
    }, project_id="p", version_id="v")
    triage, resolve, end = spec.phases
    assert (triage.id, triage.instructions, triage.allowed_tool_ids) == ("triage", "Find it.", ("lookup",))
    assert [dict(b) for b in triage.buttons] == [{"label": "Where?", "value": {"kind": "where"}},
                                                  {"label": "Human", "value": "Human"}]
    assert triage.exit_expression.source == "order_id" and triage.exit_tool is None
    assert resolve.exit_tool == "lookup" and end.exit_expression is None and end.exit_tool is None
    assert (spec.harness.allowed_tool_ids, spec.harness.max_handoffs, spec.harness.snapshot_keys) == (
        ("lookup",), 0, ("order_id",))
    assert dict(spec.variable_types) == {"order_id": "string", "anything": None}
    with pytest.raises(AttributeError):
        spec.harness.max_handoffs = 5


def test_the_harness_defaults():
    spec = AgentSpec.from_document({}, project_id="p", version_id="v")
    assert spec.phases == () and spec.harness.max_handoffs == 2 and spec.harness.allowed_tool_ids == ()


@pytest.mark.parametrize(("document", "where", "fragment"), [
    ({"phases": [{"id": "a"}, {"id": "a"}]}, "phases[1]", "Duplicate phase id"),
    ({"phases": [{"instructions": "x"}]}, "phases[0]", "non-empty string id"),
    ({"phases": ["triage"]}, "phases[0]", "A phase is an object"),
    ({"phases": [{"id": "a", "instructions": 3}]}, "phases[0].instructions", "Expected text"),
    ({"phases": [{"id": "a", "allowedToolIds": "t"}]}, "phases[0].allowedToolIds", "list of tool ids"),
    ({"phases": [{"id": "a", "buttons": [{"value": 1}]}]}, "phases[0].buttons[0]", "with a label"),
    ({"phases": [{"id": "a", "buttons": {"label": "x"}}]}, "phases[0].buttons", "Expected a list"),
    ({"phases": [{"id": "a", "exitCondition": "x =="}]}, "phases[0].exitCondition", "Expression error"),
    ({"phases": [{"id": "a", "exitCondition": {"tool": ""}}]}, "phases[0].exitCondition", '{"tool"'),
    ({"phases": [{"id": "a", "exitCondition": 3}]}, "phases[0].exitCondition", "Expected a non-empty expression"),
    ({"behaviourConfig": {"agentHarness": {"maxHandoffs": -1}}}, "behaviourConfig.agentHarness.maxHandoffs",
     "0 or more"),
    ({"behaviourConfig": {"agentHarness": {"maxHandoffs": True}}}, "behaviourConfig.agentHarness.maxHandoffs",
     "0 or more"),
    ({"behaviourConfig": {"agentHarness": {"snapshotKeys": ["a b"]}}}, "behaviourConfig.agentHarness.snapshotKeys",
     "variable names"),
    ({"behaviourConfig": {"agentHarness": {"allowedToolIds": [1]}}}, "behaviourConfig.agentHarness.allowedToolIds",
     "list of tool ids"),
    ({"behaviourConfig": {"agentHarness": []}}, "behaviourConfig.agentHarness", "Expected an object"),
    ({"behaviourConfig": []}, "behaviourConfig", "Expected an object"),
    ({"variables": [{"name": "x", "type": "date"}]}, "variables[0].type", "Expected one of"),
    ({"tools": [{"id": "handoff"}]}, "tools[0].id", "name of a built-in tool"),
    ({"tools": [{"id": "lookup"}]}, "tools[0].kind", "Expected http"),  # toolspec.check_tools, merged
    ({"tools": [{"id": "workflow_main"}], "workflows": [workflow([START], [], id="main")]}, "tools[0].id",
     "name of a built-in tool"),
])
def test_bad_agentic_parts_are_reported_where_they_are(document, where, fragment):
    details = errors_of(document)
    assert any(fragment in message for message in details.get(where, [])), details
