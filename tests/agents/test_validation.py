"""Whole-document validation on every write (issue 9): each fault is a 400 whose details name where it is, and
nothing of the document is stored. Also the caches that make validating a large project cheap must never let a
fault through (a workflow is compiled again when what it depends on changes)."""
import copy

import pytest

from agents.demo import DEMO_PROJECT
from agents.runtime import AgentSpec, DocumentError, validate_document
from agents.runtime.cache import TEMPLATES, WORKFLOWS

START = {"id": "start", "type": "start", "data": {}}
HELLO = {"id": "hello", "type": "message", "data": {"text": "Hello"}}
NEXT = {"source": "start", "port": "next", "target": "hello"}


def flow(steps=(START, HELLO), connections=(NEXT,), workflow_id="wf"):
    return {"id": workflow_id, "name": "W", "steps": list(steps), "connections": list(connections)}


def tool(tool_id="lookup", **http):
    return {"id": tool_id, "description": "", "parameters": {"type": "object", "properties": {}},
            "http": {"method": "GET", "url": "https://api.example.com/x", **http}}


CASES = [
    ("unknown step type", {"workflows": [flow([START, {"id": "x", "type": "teleport"}], [])]},
     "workflows[0].steps[1]", "Unknown step type 'teleport'"),
    ("dangling target", {"workflows": [flow(connections=[{"source": "start", "target": "ghost"}])]},
     "workflows[0].connections[0]", "Unknown target step 'ghost'"),
    ("dangling source", {"workflows": [flow(connections=[{"source": "ghost", "target": "hello"}])]},
     "workflows[0].connections[0]", "Unknown source step 'ghost'"),
    ("a port the step lacks", {"workflows": [flow(connections=[{"source": "start", "port": "true",
                                                                 "target": "hello"}])]},
     "workflows[0].connections[0]", "has no port 'true'"),
    ("no start step", {"workflows": [flow([HELLO], [])]}, "workflows[0]", "exactly one start step (found 0)"),
    ("two start steps", {"workflows": [flow([START, {**START, "id": "again"}], [])]}, "workflows[0]",
     "exactly one start step (found 2)"),
    ("duplicate workflow id", {"workflows": [flow(), flow()]}, "workflows[1]", "Duplicate workflow id 'wf'"),
    ("duplicate step id", {"workflows": [flow([START, HELLO, HELLO], [NEXT])]}, "workflows[0].steps[2]",
     "Duplicate step id 'hello'"),
    ("duplicate tool id", {"tools": [tool(), tool()]}, "tools[1].id", "Duplicate tool id 'lookup'"),
    ("duplicate variable", {"variables": [{"name": "email"}, {"name": "email"}]}, "variables[1].name",
     "Duplicate variable name 'email'"),
    ("duplicate phase id", {"phases": [{"id": "triage"}, {"id": "triage"}]}, "phases[1]", "Duplicate phase id"),
    ("a template that does not compile", {"workflows": [flow([START, {**HELLO, "data": {"text": "Hi {{ name "}}])]},
     "workflows[0].steps[1].data.text", "Template error"),
    ("an unknown filter", {"workflows": [flow([START, {**HELLO, "data": {"text": "{{ name|shout }}"}}])]},
     "workflows[0].steps[1].data.text", "No filter named 'shout'"),
    ("an expression that does not compile",
     {"workflows": [flow([START, {"id": "c", "type": "condition", "data": {"if": "a =="}}], [])]},
     "workflows[0].steps[1].data.if", "Expression error"),
    ("an invalid JSON Schema", {"tools": [{**tool(), "parameters": {"type": "object", "required": "email"}}]},
     "tools[0].parameters", "Not a valid JSON Schema"),
    ("a schema that is not of an object", {"tools": [{**tool(), "parameters": {"type": "string"}}]},
     "tools[0].parameters", '"type": "object"'),
    ("a tool URL that is not http(s)", {"tools": [tool(url="file:///etc/passwd")]}, "tools[0].http.url",
     "http or https URL"),
    ("an MCP URL that is not http(s)", {"tools": [{"id": "m", "kind": "mcp", "mcp": {"url": "ws://x"}}]},
     "tools[0].mcp.url", "http or https URL"),
    ("a tool URL template that does not compile", {"tools": [tool(url="https://api.example.com/{{ id ")]},
     "tools[0].http.url", "Template error"),
    ("a tool body template that does not compile",
     {"tools": [tool(method="POST", body={"query": {"text": "{% if %}"}})]}, "tools[0].http.body.query.text",
     "Template error"),
    ("an unknown start workflow", {"workflows": [flow()], "settings": {"startWorkflowId": "nope"}},
     "settings.startWorkflowId", "No workflow has the id 'nope'"),
    ("a temperature out of range", {"model": {"temperature": 7}}, "model.temperature", "from 0 to 2"),
    ("maxTokens not a whole number", {"model": {"maxTokens": 1.5}}, "model.maxTokens", "positive integer"),
    ("a widget colour that is not one", {"widget": {"color": "blue; background: url(x)"}}, "widget.color",
     "hex colour"),
    ("widget starters not texts", {"widget": {"starters": [1]}}, "widget.starters", "list of texts"),
    ("a rate limit out of range", {"settings": {"rateLimit": {"perMinute": 0}}}, "settings.rateLimit.perMinute",
     "positive integer"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("case", "body", "where", "fragment"), CASES, ids=[case[0] for case in CASES])
def test_each_fault_is_400_naming_where_it_is_and_nothing_is_stored(client_for, developer_token, demo_project,
                                                                    case, body, where, fragment):
    demo_project.refresh_from_db()
    before = (demo_project.document, demo_project.updated_at)

    response = client_for(developer_token).patch(f"/api/v1/projects/{demo_project.id}", body, format="json")

    assert response.status_code == 400, response.json()
    error = response.json()
    assert error["code"] == "BAD_REQUEST"
    assert where in error["details"], error["details"]
    assert any(fragment in message for message in error["details"][where]), error["details"][where]
    demo_project.refresh_from_db()
    assert (demo_project.document, demo_project.updated_at) == before


@pytest.mark.django_db
def test_a_header_template_that_does_not_compile_is_named_without_its_value(client_for, developer_token,
                                                                          demo_project):
    body = {"tools": [tool(headers={"Authorization": "Bearer {{ sk-live-abc123"})]}
    response = client_for(developer_token).patch(f"/api/v1/projects/{demo_project.id}", body, format="json")

    assert response.status_code == 400
    assert response.json()["details"] == {"tools[0].http.headers.Authorization": ["Not a valid template."]}
    assert "sk-live" not in response.content.decode()


def test_every_fault_is_reported_at_once():
    with pytest.raises(DocumentError) as caught:
        validate_document({"workflows": [flow([HELLO], [])], "variables": [{"name": "a"}, {"name": "a"}],
                           "tools": [tool(url="ftp://x")], "widget": {"color": "red"}})
    assert set(caught.value.details) == {"workflows[0]", "variables[1].name", "tools[0].http.url", "widget.color"}


def test_the_demo_and_a_blank_project_stay_valid():
    from agents.models import default_document

    validate_document(DEMO_PROJECT)
    validate_document(default_document())


# --- the caches


def test_an_unchanged_workflow_is_compiled_once_and_shared_by_the_specs_that_hold_it():
    WORKFLOWS.clear()
    first = AgentSpec.from_document(DEMO_PROJECT, project_id="p", version_id="1")
    changed = copy.deepcopy(DEMO_PROJECT)
    changed["instructions"] = "Another part changed"
    changed["workflows"][2]["name"] = "Hours (edited)"
    second = AgentSpec.from_document(changed, project_id="p", version_id="2")

    assert second.workflows["wf_welcome"] is first.workflows["wf_welcome"]
    assert second.workflows["wf_account"] is first.workflows["wf_account"]
    assert second.workflows["wf_hours"] is not first.workflows["wf_hours"]
    assert second.workflows["wf_hours"].name == "Hours (edited)"


def test_a_cached_workflow_is_checked_again_when_the_workflow_it_jumps_to_is_gone():
    jumper = flow([START, {"id": "go", "type": "jump", "data": {"workflowId": "wf_target"}}],
                  [{"source": "start", "target": "go"}], workflow_id="wf_jumper")
    validate_document({"workflows": [jumper, flow(workflow_id="wf_target")]})

    with pytest.raises(DocumentError) as caught:
        validate_document({"workflows": [jumper]})
    assert "existing workflowId" in caught.value.details["workflows[0].steps[1]"][0]


def test_a_workflow_with_a_fault_is_never_cached():
    WORKFLOWS.clear()
    bad = {"workflows": [flow([START, {**HELLO, "data": {"text": 5}}])]}
    for _ in range(2):
        with pytest.raises(DocumentError):
            validate_document(bad)
    assert len(WORKFLOWS) == 0


def test_a_cached_template_still_names_each_place_it_fails():
    TEMPLATES.clear()
    text = {"text": "Hi {{ name "}
    steps = [START, {"id": "a", "type": "message", "data": text}, {"id": "b", "type": "message", "data": text}]
    with pytest.raises(DocumentError) as caught:
        validate_document({"workflows": [flow(steps, [])]})
    assert {"workflows[0].steps[1].data.text", "workflows[0].steps[2].data.text"} <= set(caught.value.details)
    good = [START, {"id": "a", "type": "message", "data": {"text": "Hi {{ name }}"}},
            {"id": "b", "type": "message", "data": {"text": "Hi {{ name }}"}}]
    spec = AgentSpec.from_document({"workflows": [flow(good, [])]}, project_id="p", version_id="v")
    steps = spec.workflows["wf"].steps
    assert steps["a"].templates["text"] is steps["b"].templates["text"]
