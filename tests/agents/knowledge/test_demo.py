"""The demo's help centre (agents/demo.py): Acme Support answers a newcomer's typed question from its documents,
with a citation and no model — at the menu, and as the first thing they type; the documents are loaded (and
processed, with no worker) idempotently."""
import re
from io import StringIO

import pytest
from django.core.management import call_command

from agents import demo
from agents.demo import HELP_CENTRE, demo_documents_load
from agents.knowledge.models import KnowledgeChunk, KnowledgeDocument
from agents.knowledge.services import document_create_text

LAUNCH = {"action": {"type": "launch", "payload": None}}
MENU = "What can I help you with?"


def run_command(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def say(client, user: str, words: str) -> list[dict]:
    response = client.post(f"/api/v1/conversations/{user}/interact", {"action": {"type": "text", "payload": words}},
                           format="json")
    assert response.status_code == 200
    return response.json()


def assert_answered_from(traces: list[dict], name: str, heading: str, passage: str) -> None:
    """A quoted passage of the document `name` under `heading`, then the knowledge trace citing it."""
    said, cited = traces[0], traces[1]
    assert said["type"] == "text"
    assert said["payload"]["message"].startswith(f'From "{name}" ({heading}):\n> ')
    assert passage in said["payload"]["message"]
    assert cited["type"] == "knowledge"
    [source] = cited["payload"]["sources"]
    document = KnowledgeDocument.objects.get(pk=source["documentId"])
    assert (document.name, source["documentName"]) == (name, name)
    assert KnowledgeChunk.objects.get(pk=int(source["chunkId"].removeprefix("chk_"))).heading_path[-1] == heading


@pytest.fixture
def help_centre(demo_project):
    return demo_documents_load(project=demo_project)


def test_the_help_centre_is_loaded_ready_and_again_changes_nothing(demo_project, help_centre):
    assert [(d.name, d.status) for d in help_centre] == [(name, "ready") for name in HELP_CENTRE]
    assert all(d.chunk_count >= 3 and d.metadata == {"collection": "help-centre"} for d in help_centre)

    again = demo_documents_load(project=demo_project)

    assert [d.pk for d in again] == [d.pk for d in help_centre]
    assert KnowledgeDocument.objects.count() == len(HELP_CENTRE)


def test_a_changed_page_is_replaced_a_removed_one_goes_and_the_projects_own_documents_stay(
        demo_project, help_centre, monkeypatch):
    own = document_create_text(project=demo_project, name="Opening hours", content="Our own page.")
    pages = {**HELP_CENTRE, "Refund policy": HELP_CENTRE["Refund policy"].replace("30 days", "60 days")}
    del pages["Shipping and delivery"]
    monkeypatch.setattr(demo, "HELP_CENTRE", pages)

    loaded = demo_documents_load(project=demo_project)

    kept = {d.name: d.pk for d in help_centre}
    assert [(d.name, d.pk == kept[d.name]) for d in loaded] == [
        ("Opening hours", True), ("Password reset", True), ("Refund policy", False)]
    assert loaded[2].status == "ready"
    assert KnowledgeChunk.objects.filter(document=loaded[2], content__contains="60 days").exists()
    assert set(KnowledgeDocument.objects.values_list("pk", flat=True)) == {d.pk for d in loaded} | {own.pk}


def test_at_the_menu_a_typed_question_is_answered_from_the_help_centre_with_a_citation(server_client, help_centre):
    server_client.post("/api/v1/conversations/jane/interact", LAUNCH, format="json")

    traces = say(server_client, "jane", "how do I reset my password?")

    assert_answered_from(traces, "Password reset", "Reset your password yourself", 'choose "Forgot password?"')
    assert [t["type"] for t in traces[2:]] == ["text", "choice"]  # then the menu again
    assert traces[2]["payload"]["message"] == MENU


@pytest.mark.parametrize(("question", "name", "heading", "passage"), [
    ("when are you open?", "Opening hours", "Support hours", "Monday to Friday, 9:00–17:00 CET"),
    ("are you open on Saturday?", "Opening hours", "Weekends and public holidays", "closed on Saturdays"),
    ("how do I reset my password", "Password reset", "Reset your password yourself", "expires after 60 minutes"),
    ("how long does a refund take?", "Refund policy", "How long a refund takes", "5 to 10 business days"),
    ("how much does shipping cost?", "Shipping and delivery", "Shipping costs", "free for orders over 50 euros"),
])
def test_a_newcomers_first_question_is_answered_with_a_citation(server_client, help_centre, question, name,
                                                                 heading, passage):
    assert_answered_from(say(server_client, "newcomer", question), name, heading, passage)


def test_what_the_help_centre_does_not_cover_gets_the_menus_own_answers(server_client, help_centre):
    server_client.post("/api/v1/conversations/jane/interact", LAUNCH, format="json")
    assert [t["payload"].get("message") for t in say(server_client, "jane", "sing me a song")] == [
        "Please pick one of the options.", MENU, None]  # None: the choice
    assert say(server_client, "newcomer", "sing me a song") == [{"type": "text", "payload": {
        "message": "Sorry, I didn't understand that. You can ask about your account or our opening hours."}}]


def test_without_the_help_centre_the_demo_answers_as_before(server_client):
    assert say(server_client, "newcomer", "when are you open?") == [
        {"type": "text", "payload": {"message": "We're open Monday to Friday, 9:00–17:00 CET."}}, {"type": "end",
                                                                                                  "payload": {}}]


def test_rundemo_loads_the_help_centre_so_its_printed_key_gets_cited_answers(db, client_for):
    first = run_command("rundemo", "--no-serve")
    output = run_command("rundemo", "--no-serve")

    assert "It answers from its help centre (Opening hours: ready, Password reset: ready" in output
    assert KnowledgeDocument.objects.count() == len(HELP_CENTRE)  # loaded once
    key = re.search(r"API key \(shown once\):\s+(cdt_\w{40})", output).group(1)
    response = client_for(key).post("/api/v1/conversations/sam/interact", {
        "action": {"type": "text", "payload": "How do I reset my password?"}, "versionId": "production"},
        format="json")
    assert_answered_from(response.json(), "Password reset", "Reset your password yourself", "Forgot password?")
    assert "How do I reset my password?" in first
