"""Generate (API.md §3, endpoint 5): a brief → the configured model (the fake OpenAI-compatible server) → a document
validated like every write; one repair naming the faults; a second faulty answer is a 400 naming them."""
import json

import pytest

from agents.models import Project
from agents.project_templates import TEMPLATES
from tests.asserts import assert_error
from tests.fakes.llm_server import Failure, Reply

pytestmark = pytest.mark.django_db

URL = "/api/v1/projects/generate"
BRIEF = {"brief": "A bot that collects leads for our SaaS: name, email, company size."}
VALID = {"name": "Lead bot", **TEMPLATES["lead-capture"].document}
DANGLING = {**VALID, "workflows": [{**VALID["workflows"][0], "connections": [
    *VALID["workflows"][0]["connections"], {"source": "start", "port": "next", "target": "nowhere"}]}]}


def test_a_valid_answer_becomes_a_project(developer, model, workspace):
    model.script(Reply(text=json.dumps(VALID)))

    response = developer.post(URL, BRIEF, format="json")

    assert response.status_code == 201, response.content
    document = response.json()
    assert document["name"] == "Lead bot" and document["workflows"] == VALID["workflows"]
    assert Project.objects.get(id=document["id"]).workspace == workspace
    request = model.requests[0].body
    assert request["response_format"] == {"type": "json_object"}  # structured output
    assert BRIEF["brief"] in request["messages"][-1]["content"]


def test_a_name_in_the_body_wins(developer, model):
    model.script(Reply(text="```json\n" + json.dumps(VALID) + "\n```"))  # a fenced answer is read too

    response = developer.post(URL, {**BRIEF, "name": "Mine"}, format="json")

    assert response.status_code == 201 and response.json()["name"] == "Mine"


def test_an_invalid_answer_is_repaired_once_naming_the_fault(developer, model):
    model.script(Reply(text=json.dumps(DANGLING)), Reply(text=json.dumps(VALID)))

    response = developer.post(URL, BRIEF, format="json")

    assert response.status_code == 201, response.content
    repair = model.requests[1].body["messages"]
    assert repair[-2]["role"] == "assistant" and "nowhere" in repair[-1]["content"]
    assert "workflows[0].connections[" in repair[-1]["content"]


@pytest.mark.parametrize(("answers", "where"), [
    ([json.dumps(DANGLING), json.dumps(DANGLING)], "workflows[0].connections[17]"),
    (["not json at all", "[1, 2]"], "document"),
    ([json.dumps({"workflows": []}), json.dumps({"name": "", "workflows": []})], "name"),
])
def test_two_invalid_answers_are_400_naming_the_fault_and_store_nothing(developer, model, answers, where):
    model.script(*[Reply(text=answer) for answer in answers])

    body = assert_error(developer.post(URL, BRIEF, format="json"), 400, "BAD_REQUEST")

    assert where in body["details"] and where in body["error"]
    assert Project.objects.count() == 0 and len(model.requests) == 2


def test_without_a_model_it_says_what_to_set(developer, settings):
    settings.CONDUET_LLM_BASE_URL = ""

    body = assert_error(developer.post(URL, BRIEF, format="json"), 400, "BAD_REQUEST")

    assert "CONDUET_LLM_BASE_URL" in body["error"] and Project.objects.count() == 0


def test_a_failing_model_is_502(developer, model):
    model.script(Failure(status=500, message="boom"))

    assert_error(developer.post(URL, BRIEF, format="json"), 502, "UPSTREAM_ERROR")
    assert Project.objects.count() == 0


@pytest.mark.parametrize(("body", "field"), [({}, "brief"), ({"brief": ""}, "brief"), ({"brief": 3}, "brief"),
                                             ({**BRIEF, "extra": 1}, "extra"), ({"brief": "x" * 4001}, "brief")])
def test_bad_bodies_are_400(developer, model, body, field):
    body = assert_error(developer.post(URL, body, format="json"), 400, "BAD_REQUEST")

    assert field in body["details"] and not model.requests


def test_a_project_key_may_not_generate(server_client, model):
    assert_error(server_client.post(URL, BRIEF, format="json"), 403, "FORBIDDEN")
