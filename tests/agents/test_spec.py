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
    assert "workflows[0].connections[7]" in details and "workflows[1].steps[1]" in details


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
