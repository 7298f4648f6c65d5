"""v2 conversations (API.md §7): create, list (keyset pages), get and delete — with its messages, files, data
frames and their stored bytes — for a developer token of a member or a server key of the agent, and nobody else."""
import polars as pl
import pytest
from asgiref.sync import async_to_sync
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile

from agents.services import developer_token_create, project_api_key_create, project_create
from conversations.lease import ConversationKey, lease_acquire
from conversations.models import Conversation, Message
from files.models import DataFrame, StoredFile
from files.store import frame_create
from tests.asserts import assert_error
from tests.factories import MembershipFactory, ProjectFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db


def conversations_url(agent, tail: str = "") -> str:
    return f"/tenants/{agent.workspace.slug}/api/v2/agents/{agent.id}/conversations{tail}"


def conversation_create(client, agent, name: str = "Q3 reconciliation") -> dict:
    response = client.post(conversations_url(agent), {"name": name}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def stored_file(conversation_id: str, name: str = "invoice.pdf", mime_type: str = "application/pdf",
                data: bytes = b"%PDF-1.4 an invoice") -> StoredFile:
    """A stored file as an upload leaves it: its bytes in storage, its row."""
    row = StoredFile(conversation_id=conversation_id, name=name, mime_type=mime_type, size=len(data),
                     sha256="0" * 64)
    row.stored_name = default_storage.save(f"conversations/{conversation_id}/files/{row.id}/{name}",
                                           ContentFile(data))
    row.save(force_insert=True)
    return row


# --- create, get, list

def test_create_the_seed_conversation_and_get_it(developer, demo_project):
    created = conversation_create(developer, demo_project)

    assert set(created) == {"id", "name", "agent_id", "created_at", "updated_at"}
    assert created["name"] == "Q3 reconciliation" and created["agent_id"] == demo_project.id
    assert created["id"].startswith("conv_") and created["created_at"].endswith("Z")
    row = Conversation.objects.get()
    assert (row.kind, row.name, row.user_id, row.platform) == ("v2", "Q3 reconciliation", row.id, "v2")
    fetched = developer.get(conversations_url(demo_project, f"/{created['id']}"))
    assert fetched.status_code == 200 and fetched.json() == created


def test_a_server_key_of_the_agent_creates_and_reads_too(server_client, demo_project):
    created = conversation_create(server_client, demo_project, "From the integration")

    assert server_client.get(conversations_url(demo_project, f"/{created['id']}")).json()["name"] == (
        "From the integration")


def test_pages_of_45_conversations_give_each_once_newest_first_and_stay_stable_under_inserts(developer,
                                                                                          demo_project):
    ids = [conversation_create(developer, demo_project, f"c{n}")["id"] for n in range(45)]
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 10, **({"next": cursor} if cursor else {})}
        body = developer.get(conversations_url(demo_project), params).json()
        assert set(body) == {"data", "next", "has_more"} and body["has_more"] == (body["next"] is not None)
        seen += [item["id"] for item in body["data"]]
        pages += 1
        if pages == 2:  # created while paging: before the cursor, so on no later page
            conversation_create(developer, demo_project, "late")
        cursor = body["next"]
        if not cursor:
            break

    assert pages == 5 and seen == ids[::-1]
    assert developer.get(conversations_url(demo_project)).json()["data"][0]["name"] == "late"
    assert len(developer.get(conversations_url(demo_project), {"limit": 100}).json()["data"]) == 46


def test_the_list_shows_v2_conversations_only(developer, demo_project):
    developer.post("/api/v1/conversations/jane/interact", {"action": {"type": "launch", "payload": None}},
                   format="json", HTTP_X_PROJECT_ID=demo_project.id)
    v1_id = Conversation.objects.get(kind="v1").id
    created = conversation_create(developer, demo_project)

    assert [c["id"] for c in developer.get(conversations_url(demo_project)).json()["data"]] == [created["id"]]
    assert_error(developer.get(conversations_url(demo_project, f"/{v1_id}")), 404, "NOT_FOUND")
    assert_error(developer.delete(conversations_url(demo_project, f"/{v1_id}")), 404, "NOT_FOUND")


# --- who may call

@pytest.fixture
def elsewhere(db):
    """Another tenant: its agent, a member's token and a server key."""
    workspace = WorkspaceFactory()
    member = MembershipFactory(workspace=workspace)
    agent = project_create(workspace=workspace, name="Elsewhere", document={"name": "Elsewhere"})
    return agent, developer_token_create(user=member.user, name="t")[1], project_api_key_create(
        project=agent, name="s")[1]


def test_keys_and_tokens_of_another_tenant_or_agent_get_404(client_for, developer, demo_project, workspace,
                                                          elsewhere):
    created = conversation_create(developer, demo_project)
    other_agent, other_token, other_key = elsewhere
    sibling = ProjectFactory(workspace=workspace)  # the same tenant, another agent
    sibling_key = project_api_key_create(project=sibling, name="s")[1]
    own = conversations_url(demo_project, f"/{created['id']}")

    for key in (other_token, other_key, sibling_key):
        assert_error(client_for(key).get(own), 404, "NOT_FOUND")
        assert_error(client_for(key).get(conversations_url(demo_project)), 404, "NOT_FOUND")
        assert_error(client_for(key).delete(own), 404, "NOT_FOUND")
    # the agent named under another tenant's slug, and the conversation under another agent of the member
    wrong_tenant = f"/tenants/{other_agent.workspace.slug}/api/v2/agents/{demo_project.id}/conversations"
    assert_error(developer.get(wrong_tenant), 404, "NOT_FOUND")
    own_sibling = project_create(workspace=workspace, name="Sibling", document={"name": "Sibling"})
    assert_error(developer.get(conversations_url(own_sibling, f"/{created['id']}")), 404, "NOT_FOUND")
    assert Conversation.objects.filter(id=created["id"]).exists()


def test_a_widget_key_is_403_and_no_key_401(client_for, api, widget_key, demo_project):
    assert_error(client_for(widget_key).get(conversations_url(demo_project)), 403, "FORBIDDEN")
    assert_error(client_for(widget_key).post(conversations_url(demo_project), {"name": "x"}, format="json"),
                 403, "FORBIDDEN")
    assert_error(api.get(conversations_url(demo_project)), 401, "UNAUTHORIZED")
    assert_error(api.post(conversations_url(demo_project), {"name": "x"}, format="json"), 401, "UNAUTHORIZED")
    assert Conversation.objects.count() == 0


# --- bad input

@pytest.mark.parametrize(("body", "field"), [
    ({}, "name"),
    ({"name": ""}, "name"),
    ({"name": "   "}, "name"),
    ({"name": "x" * 201}, "name"),
    ({"name": 7}, "name"),
    ({"name": None}, "name"),
    ({"name": "ok", "agent_id": "proj_x"}, "agent_id"),
    (["Q3 reconciliation"], "non_field_errors"),
    ("Q3 reconciliation", "non_field_errors"),
])
def test_a_bad_create_body_is_400_naming_the_field(developer, demo_project, body, field):
    response = developer.post(conversations_url(demo_project), body, format="json")

    details = assert_error(response, 400, "BAD_REQUEST")["details"]
    assert field in details
    assert Conversation.objects.count() == 0


def test_a_name_of_200_characters_is_taken(developer, demo_project):
    assert conversation_create(developer, demo_project, "n" * 200)["name"] == "n" * 200


def test_malformed_json_and_another_content_type_are_refused(developer, demo_project):
    assert_error(developer.post(conversations_url(demo_project), "{", content_type="application/json"),
                 400, "BAD_REQUEST")
    assert_error(developer.post(conversations_url(demo_project), "name=x", content_type="text/plain"),
                 415, "UNSUPPORTED_MEDIA_TYPE")


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 101}, {"limit": "ten"}, {"next": "garbage!"}])
def test_bad_page_parameters_are_400(developer, demo_project, params):
    assert_error(developer.get(conversations_url(demo_project), params), 400, "BAD_REQUEST")


def test_an_unknown_conversation_is_404(developer, demo_project):
    assert_error(developer.get(conversations_url(demo_project, "/conv_nope")), 404, "NOT_FOUND")
    assert_error(developer.delete(conversations_url(demo_project, "/conv_nope")), 404, "NOT_FOUND")


# --- delete

def test_delete_returns_the_conversation_and_takes_messages_files_frames_and_their_bytes(
        developer, demo_project, django_capture_on_commit_callbacks):
    created = conversation_create(developer, demo_project)
    kept = conversation_create(developer, demo_project, "Kept")
    url = conversations_url(demo_project, f"/{created['id']}")
    developer.post(f"{url}/messages", {"content": "Hello there"}, format="json")
    uploaded = developer.post(f"{url}/files", {"files": [
        SimpleUploadedFile("invoice.pdf", b"%PDF-1.4 an invoice", "application/pdf"),
        SimpleUploadedFile("lines.csv", b"amount,vendor\n1,Acme\n2,Globex\n", "text/csv")]}, format="multipart")
    assert uploaded.status_code == 201, uploaded.content
    invoice = StoredFile.objects.get(name="invoice.pdf")
    frame = frame_create(conversation_id=created["id"], name="invoice lines",
                         table=pl.DataFrame({"amount": [1, 2]}), file=invoice)
    assert DataFrame.objects.filter(conversation_id=created["id"]).count() == 2  # lines.csv's, and this one
    kept_file = stored_file(kept["id"], name="keep.csv", mime_type="text/csv", data=b"a\n1\n")
    names = [*StoredFile.objects.filter(conversation_id=created["id"]).values_list("stored_name", flat=True),
             *DataFrame.objects.filter(conversation_id=created["id"]).values_list("stored_name", flat=True)]
    assert frame.stored_name in names and len(names) == 4
    assert all(default_storage.exists(name) for name in names) and Message.objects.count() == 2

    with django_capture_on_commit_callbacks(execute=True):
        response = developer.delete(url)

    assert response.status_code == 200
    assert response.json() == {**created, "updated_at": response.json()["updated_at"]}
    assert not Conversation.objects.filter(id=created["id"]).exists()
    assert Message.objects.count() == 0
    assert not StoredFile.objects.filter(id=invoice.id).exists() and DataFrame.objects.count() == 0
    assert not any(default_storage.exists(name) for name in names)
    assert default_storage.exists(kept_file.stored_name)  # another conversation's bytes stay
    assert_error(developer.get(url), 404, "NOT_FOUND")
    assert_error(developer.delete(url), 404, "NOT_FOUND")
    assert_error(developer.post(f"{url}/messages", {"content": "Still there?"}, format="json"), 404, "NOT_FOUND")


def test_delete_while_a_turn_holds_the_conversation_is_409_and_deletes_nothing(developer, demo_project, settings):
    settings.CONDUET_TURN_WAIT_SECONDS = 0.2
    created = conversation_create(developer, demo_project)
    stored_file(created["id"])
    # a turn of another process holds the lease (the live stream test runs a real one)
    async_to_sync(lease_acquire)(key=ConversationKey(demo_project.id, conversation_id=created["id"]),
                                 token="turn_0123456789abcdef0123")

    response = developer.delete(conversations_url(demo_project, f"/{created['id']}"))

    assert_error(response, 409, "CONFLICT")
    assert Conversation.objects.filter(id=created["id"]).exists() and StoredFile.objects.count() == 1
