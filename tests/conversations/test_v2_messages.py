"""v2 messages (API.md §7): POST …/messages runs one turn of the shared pipeline and returns the conversation and
the turn's two messages; files attach to the user message (alone, they are a `media` action); GET lists the
messages oldest first in keyset pages; one rate limit per (agent, conversation)."""
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from agents.services import developer_token_create, project_api_key_create, project_create, version_publish
from conversations.models import Conversation, Message
from tests.asserts import assert_error
from tests.conversations.test_v2_conversations import conversation_create, conversations_url, stored_file
from tests.factories import MembershipFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db

SEED = "Summarize the attached invoice."


def agent_document(**settings) -> dict:
    return {"framework": "agentic", "instructions": "You reconcile accounts. Be brief.", "workflows": [],
            "settings": {"fallbackMessage": "No model here.", **settings}}


@pytest.fixture
def agent(workspace):
    return project_create(workspace=workspace, name="Reconciler", document=agent_document())


def messages_url(agent, conversation_id: str, tail: str = "messages") -> str:
    return conversations_url(agent, f"/{conversation_id}/{tail}")


def post(client, agent, conversation_id: str, body):
    return client.post(messages_url(agent, conversation_id), body, format="json")


def test_the_seed_message_with_its_invoice_waits_for_the_agent(developer, agent, model):
    from tests.fakes.llm_server import Reply

    conversation = conversation_create(developer, agent)
    uploaded = developer.post(conversations_url(agent, f"/{conversation['id']}/files"), {"files": [
        SimpleUploadedFile("invoice.pdf", b"%PDF-1.4\n% an invoice of 1,200 EUR\n", "application/pdf")]},
        format="multipart")
    assert uploaded.status_code == 201, uploaded.content
    invoice_ref = uploaded.json()[0]["file_ref"]
    model.script(Reply("The invoice totals 1,200 EUR.", chunk_size=5))

    response = post(developer, agent, conversation["id"], {"content": SEED, "files": [invoice_ref]})

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"conversation", "messages"}
    assert body["conversation"]["id"] == conversation["id"] and body["conversation"]["name"] == "Q3 reconciliation"
    assert body["conversation"]["updated_at"] >= conversation["updated_at"]
    user, reply = body["messages"]
    assert {k: user[k] for k in ("role", "content", "traces", "files")} == {
        "role": "user", "content": SEED, "traces": [], "files": [invoice_ref]}
    assert reply["role"] == "agent" and reply["files"] == []
    assert reply["content"] == "The invoice totals 1,200 EUR."
    assert reply["traces"] == [{"type": "text", "payload": {"message": "The invoice totals 1,200 EUR."}}]
    assert set(user) == set(reply) == {"id", "role", "content", "traces", "files", "created_at"}
    assert model.requests[-1].messages[-1] == {"role": "user", "content": SEED}
    row = Conversation.objects.get()
    assert (row.turn, row.platform, row.version_id) == (1, "v2", "development")
    assert Message.objects.get(role="user").files == [invoice_ref]
    # the listing shows the same two messages
    listed = developer.get(messages_url(agent, conversation["id"])).json()
    assert listed == {"data": body["messages"], "next": None, "has_more": False}


def test_a_conversation_keeps_its_history_across_messages(developer, agent, model):
    from tests.fakes.llm_server import Reply

    conversation = conversation_create(developer, agent)
    model.script(Reply("Noted: 42 open items."), Reply("Still 42."))
    post(developer, agent, conversation["id"], {"content": "We have 42 open items."})
    post(developer, agent, conversation["id"], {"content": "How many again?"})

    sent = [m for m in model.requests[-1].messages if m["role"] != "system"]
    assert sent == [{"role": "user", "content": "We have 42 open items."},
                    {"role": "assistant", "content": "Noted: 42 open items."},
                    {"role": "user", "content": "How many again?"}]


def test_a_flow_reply_of_several_messages_is_one_line_each(developer, demo_project):
    conversation = conversation_create(developer, demo_project)

    reply = post(developer, demo_project, conversation["id"], {"content": "What are your opening hours?"}).json()[
        "messages"][1]

    texts = [t["payload"]["message"] for t in reply["traces"] if t["type"] == "text"]
    assert texts and reply["content"] == "\n".join(texts)
    assert Message.objects.get(role="assistant").content == reply["content"]  # what the pipeline stored


def test_files_alone_are_a_media_action_of_the_first_file(developer, agent, model):
    conversation = conversation_create(developer, agent)
    receipt = stored_file(conversation["id"], name="receipt.png", mime_type="image/png", data=b"\x89PNG")
    invoice = stored_file(conversation["id"])

    response = post(developer, agent, conversation["id"], {"content": "", "files": [receipt.id, invoice.id]})

    assert response.status_code == 200, response.content
    user = response.json()["messages"][0]
    assert user["content"] == "" and user["files"] == [receipt.id, invoice.id]
    download = (f"/tenants/{agent.workspace.slug}/api/v2/agents/{agent.id}/conversations/{conversation['id']}"
                f"/files/download/?file_ref={receipt.id}")
    media = {"url": download, "mimeType": "image/png", "fileRef": receipt.id, "name": "receipt.png"}
    assert Message.objects.get(role="user").action == {"type": "media", "payload": media}
    row = Conversation.objects.get()
    assert row.state["variables"]["last_media"] == media  # what the engine's `last_media` holds
    assert download in model.requests[-1].messages[-1]["content"]  # the model is told of the file
    fetched = developer.get(download)  # the url is the file's download path
    assert fetched.status_code == 200 and b"".join(fetched.streaming_content) == b"\x89PNG"


def test_a_file_of_another_conversation_is_404_and_nothing_is_written(developer, agent):
    conversation = conversation_create(developer, agent)
    other = conversation_create(developer, agent, "Other")
    foreign = stored_file(other["id"])

    for refs in ([foreign.id], ["file_nope"]):
        response = post(developer, agent, conversation["id"], {"content": SEED, "files": refs})
        assert_error(response, 404, "NOT_FOUND")
    assert Message.objects.count() == 0


@pytest.mark.parametrize(("body", "field"), [
    ({}, "content"),
    ({"content": None}, "content"),
    ({"content": 42}, "content"),
    ({"content": ["Summarize"]}, "content"),
    ({"content": ""}, "content"),
    ({"content": "   \n"}, "content"),
    ({"content": "x" * 4001}, "content"),
    ({"content": SEED, "files": "file_abc"}, "files"),
    ({"content": SEED, "files": {"file_abc": 1}}, "files"),
    ({"content": SEED, "files": [7]}, "files"),
    ({"content": "", "files": []}, "content"),
    ({"content": SEED, "version_id": "production"}, "version_id"),
    ({"content": SEED, "action": {"type": "launch"}}, "action"),
    ([SEED], "non_field_errors"),
    (SEED, "non_field_errors"),
])
def test_a_bad_message_is_400_naming_the_field_and_writes_nothing(developer, agent, body, field):
    conversation = conversation_create(developer, agent)

    response = post(developer, agent, conversation["id"], body)

    assert field in assert_error(response, 400, "BAD_REQUEST")["details"]
    assert Message.objects.count() == 0


def test_content_of_4000_characters_is_taken(developer, demo_project):
    conversation = conversation_create(developer, demo_project)
    assert post(developer, demo_project, conversation["id"], {"content": "x" * 4000}).status_code == 200


def test_messages_page_oldest_first_every_one_once_and_stable_under_inserts(developer, demo_project):
    conversation = conversation_create(developer, demo_project)
    row = Conversation.objects.get()
    Message.objects.bulk_create(
        Message(conversation=row, seq=seq, turn_id=f"turn_{seq // 2:020x}", role="user" if seq % 2 else "assistant",
                content=f"m{seq}", traces=[] if seq % 2 else [{"type": "text", "payload": {"message": f"m{seq}"}}])
        for seq in range(1, 121))
    Conversation.objects.filter(id=row.id).update(message_seq=120)

    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 25, **({"next": cursor} if cursor else {})}
        body = developer.get(messages_url(demo_project, conversation["id"]), params).json()
        seen += [message["content"] for message in body["data"]]
        pages += 1
        if pages == 2:  # a turn while paging: its two messages come after the last page seen so far
            assert post(developer, demo_project, conversation["id"], {"content": "One more"}).status_code == 200
        cursor = body["next"]
        if not cursor:
            break

    assert pages == 5
    assert seen[:120] == [f"m{seq}" for seq in range(1, 121)]
    assert seen[120] == "One more" and len(seen) == 122
    assert [m["role"] for m in developer.get(messages_url(demo_project, conversation["id"]),
                                             {"limit": 3}).json()["data"]] == ["user", "agent", "user"]


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 101}, {"next": "bm9wZQ"}, {"next": "%%%"}])
def test_bad_message_page_parameters_are_400(developer, demo_project, params):
    conversation = conversation_create(developer, demo_project)
    assert_error(developer.get(messages_url(demo_project, conversation["id"]), params), 400, "BAD_REQUEST")


def test_the_rate_limit_is_per_conversation_at_the_version_rate(developer, workspace):
    agent = project_create(workspace=workspace, name="Limited", document={
        "name": "Limited", "settings": {"rateLimit": {"perMinute": 2}}})
    first = conversation_create(developer, agent)
    second = conversation_create(developer, agent, "Second")

    responses = [post(developer, agent, first["id"], {"content": "hello"}) for _ in range(3)]

    assert [r.status_code for r in responses] == [200, 200, 429]
    assert responses[0]["X-RateLimit-Limit"] == "2" and "Retry-After" in responses[2]
    assert_error(responses[2], 429, "RATE_LIMITED")
    assert post(developer, agent, second["id"], {"content": "hello"}).status_code == 200
    assert developer.get(messages_url(agent, first["id"]))["X-RateLimit-Limit"] == "1200"  # reads: per key


def test_a_server_key_runs_production_and_a_developer_token_development(client_for, developer, demo_project):
    server = client_for(project_api_key_create(project=demo_project, name="s")[1])
    conversation = conversation_create(developer, demo_project)

    post(server, demo_project, conversation["id"], {"content": "hello"})
    assert Conversation.objects.get().version_id == "development"  # nothing published yet
    version = version_publish(project=demo_project, name="v1")
    post(server, demo_project, conversation["id"], {"content": "hello"})
    assert Conversation.objects.get().version_id == version.id
    post(developer, demo_project, conversation["id"], {"content": "hello"})
    assert Conversation.objects.get().version_id == "development"


def test_message_endpoints_are_scoped_like_the_conversation(client_for, api, developer, demo_project, widget_key):
    conversation = conversation_create(developer, demo_project)
    workspace = WorkspaceFactory()
    stranger_token = developer_token_create(user=MembershipFactory(workspace=workspace).user, name="t")[1]
    for path in ("messages", "stream"):
        url = messages_url(demo_project, conversation["id"], path)
        assert_error(client_for(stranger_token).post(url, {"content": "hi"}, format="json"), 404, "NOT_FOUND")
        assert_error(client_for(widget_key).post(url, {"content": "hi"}, format="json"), 403, "FORBIDDEN")
        assert_error(api.post(url, {"content": "hi"}, format="json"), 401, "UNAUTHORIZED")
    assert_error(client_for(stranger_token).get(messages_url(demo_project, conversation["id"])), 404, "NOT_FOUND")
    assert_error(client_for(widget_key).get(messages_url(demo_project, conversation["id"])), 403, "FORBIDDEN")
    assert Message.objects.count() == 0


def test_a_v1_sessions_id_is_no_v2_conversation(developer, demo_project):
    developer.post("/api/v1/conversations/jane/interact", {"action": {"type": "launch", "payload": None}},
                   format="json", HTTP_X_PROJECT_ID=demo_project.id)
    v1 = Conversation.objects.get()

    assert_error(post(developer, demo_project, v1.id, {"content": "hi"}), 404, "NOT_FOUND")
    assert_error(developer.get(messages_url(demo_project, v1.id)), 404, "NOT_FOUND")
    assert Message.objects.count() == 2
