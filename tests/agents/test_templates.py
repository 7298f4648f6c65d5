"""The built-in templates (API.md §3, endpoints 3–4): each is a valid document, becomes a project in the token
user's workspace, and holds a sensible first conversation through the project chat — with the fake model where
the template needs one."""
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from agents.models import Project
from agents.project_templates import TEMPLATES
from agents.runtime import validate_document
from tests.asserts import assert_error
from tests.factories import MembershipFactory
from tests.turns import say, texts

pytestmark = pytest.mark.django_db

URL = "/api/v1/projects/templates"
LAUNCH = {"action": {"type": "launch", "payload": None}}


@pytest.fixture
def no_model(settings):
    settings.CONDUET_LLM_BASE_URL = ""


def create(developer, template_id: str, **extra) -> dict:
    response = developer.post(URL, {"templateId": template_id, "name": f"My {template_id}", **extra}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def chat(developer, project: dict, body: dict) -> list[dict]:
    response = developer.post(f"/api/v1/projects/{project['id']}/chat", body, format="json")
    assert response.status_code == 200, response.content
    return response.json()


@pytest.mark.parametrize("template_id", list(TEMPLATES))
def test_every_template_is_a_valid_document(template_id):
    validate_document(TEMPLATES[template_id].document)


def test_the_list_names_the_four_templates(developer):
    response = developer.get(URL)

    assert response.status_code == 200
    listed = response.json()
    assert {t["id"] for t in listed} >= {"customer-support", "agentic-support-kb", "lead-capture", "data-analyst"}
    assert all(set(t) == {"id", "name", "description", "framework"} and t["description"] for t in listed)
    assert {t["framework"] for t in listed} == {"conversation-flow", "agentic"}


def test_create_makes_the_project_in_the_users_workspace(developer, user, workspace):
    document = create(developer, "customer-support")

    project = Project.objects.get(id=document["id"])
    assert project.workspace == workspace and project.name == "My customer-support"
    assert document["workflows"] == TEMPLATES["customer-support"].document["workflows"]
    assert document["framework"] == "conversation-flow" and document["slug"] == "my-customer-support"
    assert create(developer, "customer-support")["slug"] == "my-customer-support-2"  # a free slug


def test_create_takes_a_workspace_of_the_user(developer, user):
    second = MembershipFactory(user=user).workspace

    document = create(developer, "lead-capture", workspaceId=second.id)

    assert Project.objects.get(id=document["id"]).workspace == second


def test_a_workspace_of_someone_else_is_not_found(developer, other_project):
    response = developer.post(URL, {"templateId": "lead-capture", "workspaceId": other_project.workspace_id},
                              format="json")

    assert_error(response, 404, "NOT_FOUND")
    assert not Project.objects.filter(name="Lead capture").exists()


@pytest.mark.parametrize(("body", "field"), [
    ({"templateId": "no-such-template"}, "templateId"),
    ({}, "templateId"),
    ({"templateId": 7}, "templateId"),
    ({"templateId": "lead-capture", "nmae": "typo"}, "nmae"),
    ({"templateId": "lead-capture", "name": ""}, "name"),
])
def test_bad_bodies_are_400_and_store_nothing(developer, body, field):
    count = Project.objects.count()

    body = assert_error(developer.post(URL, body, format="json"), 400, "BAD_REQUEST")

    assert field in body["details"] and Project.objects.count() == count


def test_a_project_key_may_not_use_templates(server_client):
    assert_error(server_client.get(URL), 403, "FORBIDDEN")
    assert_error(server_client.post(URL, {"templateId": "lead-capture"}, format="json"), 403, "FORBIDDEN")


def test_customer_support_greets_with_its_menu_and_takes_an_order_number(developer, no_model):
    project = create(developer, "customer-support")

    first = chat(developer, project, LAUNCH)
    assert texts(first) == ["Hi there! I'm the support assistant.", "How can I help you today?"]
    assert [b["label"] for b in first[-1]["payload"]["buttons"]][0] == "Where is my order?"
    assert texts(chat(developer, project, say("track my order"))) == ["What's your order number? It looks like A-1234."]
    assert "Order A-1234 is on its way" in texts(chat(developer, project, say("a-1234")))[0]


def test_lead_capture_qualifies_a_lead(developer, no_model):
    project = create(developer, "lead-capture")

    assert texts(chat(developer, project, LAUNCH)) == [
        "Hi! I'd love to tell you more. It takes four quick questions.", "What's your name?"]
    assert texts(chat(developer, project, say("Ada"))) == ["Thanks Ada! What's your work email?"]
    chat(developer, project, say("ada@example.com"))
    chat(developer, project, say("120"))
    last = chat(developer, project, {"action": {"type": "button", "payload": {"label": "A demo", "value": "demo"}}})
    assert texts(last) == ["Great, Ada! A member of our sales team will email ada@example.com within one business "
                           "day to set up a call."]


def test_agentic_support_greets_through_the_model(developer, model):
    project = create(developer, "agentic-support-kb")
    model.default = None  # "You said: …"

    traces = chat(developer, project, LAUNCH)

    assert "".join(texts(traces)).strip()
    request = model.requests[0].body
    assert "knowledge_search" in request["messages"][0]["content"]  # its instructions
    assert any(tool["function"]["name"] == "handoff" for tool in request.get("tools", []))


def test_agentic_support_without_a_model_says_what_to_configure(developer, no_model):
    project = create(developer, "agentic-support-kb")

    assert "CONDUET_LLM_BASE_URL" in " ".join(texts(chat(developer, project, say("hello"))))


def test_data_analyst_greets_without_a_model_and_answers_with_one(developer, model, settings):
    project = create(developer, "data-analyst")

    assert texts(chat(developer, project, LAUNCH))[0].startswith("Hi! I'm your data analyst.")
    answer = texts(chat(developer, project, say("Which month sold most?")))
    assert "".join(answer) == "You said: Which month sold most?"
    # No data port here: the agent is not offered query_data, and the summary flow still answers.
    assert all(tool["function"]["name"] != "query_data" for tool in model.requests[0].body.get("tools", []))
    summary = texts(chat(developer, project, say("summarize my data")))
    assert "".join(summary).startswith("You said:")


def test_data_analyst_summarizes_an_uploaded_table_in_a_v2_conversation(developer, model):
    """The summary flow samples the frame the `dataset` variable names (a file `data.csv` becomes the frame `data`)
    and hands its columns and first rows to the model."""
    from tests.conversations.test_v2_conversations import conversation_create, conversations_url

    agent = Project.objects.get(id=create(developer, "data-analyst")["id"])
    conversation = conversation_create(developer, agent, "Sales review")
    base = conversations_url(agent, f"/{conversation['id']}")
    upload = SimpleUploadedFile("data.csv", b"month,sales\njan,120\nfeb,340\n", content_type="text/csv")
    assert developer.post(f"{base}/files", {"files": [upload]}, format="multipart").status_code == 201

    response = developer.post(f"{base}/messages", {"content": "summarize my data"}, format="json")

    assert response.status_code == 200, response.content
    prompt = json.dumps(model.requests[-1].body["messages"])
    assert "month, sales" in prompt and "feb" in prompt and "340" in prompt
    assert response.json()["messages"][1]["traces"][0]["type"] == "data_frame"


def test_data_analyst_summary_without_the_frame_asks_for_a_file(developer, model):
    from tests.conversations.test_v2_conversations import conversation_create, conversations_url

    agent = Project.objects.get(id=create(developer, "data-analyst")["id"])
    conversation = conversation_create(developer, agent, "Sales review")

    response = developer.post(conversations_url(agent, f"/{conversation['id']}/messages"),
                              {"content": "summarize my data"}, format="json")

    assert response.status_code == 200, response.content
    assert "ask the user to upload a file" in json.dumps(model.requests[-1].body["messages"])
