"""Bearer keys (API.md §1): both kinds, their scopes, and every way a key can be wrong."""
import pytest
from django.utils import timezone

from agents.ids import key_digest
from agents.models import DeveloperToken, ProjectApiKey
from agents.services import key_revoke, project_api_key_create, version_publish
from conversations.models import Conversation
from tests.asserts import assert_error, assert_nothing_written

pytestmark = pytest.mark.django_db

INTERACT = "/api/v1/conversations/jane/interact"
LAUNCH = {"action": {"type": "launch", "payload": None}}




def test_keys_are_stored_as_prefix_and_digest_only(demo_project):
    row, key = project_api_key_create(project=demo_project, name="server")

    assert key.startswith("cdt_") and len(key) == len("cdt_") + 40
    assert not key.startswith("cdt_acc_")
    stored = ProjectApiKey.objects.get(pk=row.pk)
    assert stored.digest == key_digest(key)
    assert key not in {stored.prefix, stored.digest, stored.name}


def test_developer_token_shape(developer_token):
    assert developer_token.startswith("cdt_acc_") and len(developer_token) == len("cdt_acc_") + 40
    assert DeveloperToken.objects.get().digest == key_digest(developer_token)


@pytest.mark.parametrize("header", [
    pytest.param(None, id="missing"),
    pytest.param("Bearer", id="no key"),
    pytest.param("Basic dXNlcjpwYXNz", id="not bearer"),
    pytest.param("Bearer cdt_short", id="too short"),
    pytest.param("Bearer xyz_" + "a" * 40, id="wrong prefix"),
    pytest.param("Bearer cdt_" + "!" * 40, id="not base62"),
    pytest.param("Bearer cdt_" + "a" * 40, id="unknown project key"),
    pytest.param("Bearer cdt_acc_" + "a" * 40, id="unknown developer token"),
])
def test_bad_keys_are_401(api, demo_project, header):
    if header:
        api.credentials(HTTP_AUTHORIZATION=header)
    response = api.post(INTERACT, LAUNCH, format="json")

    assert_error(response, 401, "UNAUTHORIZED")
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert_nothing_written()


def test_revoked_key_is_401(demo_project, client_for):
    row, key = project_api_key_create(project=demo_project)
    client = client_for(key)
    assert client.post(INTERACT, LAUNCH, format="json").status_code == 200

    key_revoke(key=row)
    assert_error(client.post(INTERACT, LAUNCH, format="json"), 401, "UNAUTHORIZED")
    assert_error(client.get("/api/v1/conversations/jane/state"), 401, "UNAUTHORIZED")


def test_revoked_developer_token_is_401(developer_token, demo_project, client_for):
    key_revoke(key=DeveloperToken.objects.get())
    response = client_for(developer_token, HTTP_X_PROJECT_ID=demo_project.id).post(INTERACT, LAUNCH, format="json")
    assert_error(response, 401, "UNAUTHORIZED")


def test_use_records_last_used_time(server_client):
    assert ProjectApiKey.objects.get().last_used_at is None
    server_client.post(INTERACT, LAUNCH, format="json")
    assert ProjectApiKey.objects.get().last_used_at <= timezone.now()


def test_project_key_acts_on_its_own_project_only(other_project, client_for, demo_project):
    _row, their_key = project_api_key_create(project=other_project)
    client_for(their_key).post(INTERACT, LAUNCH, format="json")

    assert Conversation.objects.get().project_id == other_project.id


def test_developer_token_names_the_project_with_a_header(developer_token, demo_project, client_for):
    response = client_for(developer_token, HTTP_X_PROJECT_ID=demo_project.id).post(INTERACT, LAUNCH, format="json")

    assert response.status_code == 200
    assert Conversation.objects.get().project_id == demo_project.id


def test_developer_token_without_project_header_is_400(developer_token, demo_project, client_for):
    assert_error(client_for(developer_token).post(INTERACT, LAUNCH, format="json"), 400, "BAD_REQUEST")
    assert_nothing_written()


def test_developer_token_for_a_project_outside_its_workspaces_is_404(developer_token, other_project, client_for):
    client = client_for(developer_token, HTTP_X_PROJECT_ID=other_project.id)

    assert_error(client.post(INTERACT, LAUNCH, format="json"), 404, "NOT_FOUND")
    assert_error(client.get("/api/v1/conversations/jane/state"), 404, "NOT_FOUND")
    assert_nothing_written()


def test_developer_token_for_an_unknown_project_is_404(developer_token, client_for):
    client = client_for(developer_token, HTTP_X_PROJECT_ID="proj_nope")
    assert_error(client.post(INTERACT, LAUNCH, format="json"), 404, "NOT_FOUND")


def test_sessions_of_another_project_are_invisible(server_client, other_project, client_for):
    _row, their_key = project_api_key_create(project=other_project)
    client_for(their_key).post(INTERACT, LAUNCH, format="json")

    assert_error(server_client.get("/api/v1/conversations/jane/state"), 404, "NOT_FOUND")


# --- widget keys: anon_ users, production only, interact and read state only


@pytest.fixture
def widget_client(published_demo, widget_key, client_for):
    return client_for(widget_key)


def test_widget_key_interacts_for_anonymous_users_on_production(widget_client):
    response = widget_client.post("/api/v1/conversations/anon_42/interact", LAUNCH, format="json")

    assert response.status_code == 200
    conversation = Conversation.objects.get()
    assert conversation.platform == "widget"
    assert conversation.version_id.startswith("ver_")
    assert widget_client.get("/api/v1/conversations/anon_42/state").status_code == 200


def test_widget_key_for_a_named_user_is_403(widget_client):
    assert_error(widget_client.post(INTERACT, LAUNCH, format="json"), 403, "FORBIDDEN")
    assert_nothing_written()


def test_widget_key_on_development_is_403(widget_client):
    response = widget_client.post("/api/v1/conversations/anon_42/interact", {**LAUNCH, "versionId": "development"},
                                  format="json")
    assert_error(response, 403, "FORBIDDEN")
    assert_nothing_written()


@pytest.mark.parametrize(("method", "tail"), [("put", "state"), ("delete", "state"), ("patch", "variables")])
def test_widget_key_may_not_write_state(widget_client, method, tail):
    response = getattr(widget_client, method)(f"/api/v1/conversations/anon_42/{tail}", {}, format="json")
    assert_error(response, 403, "FORBIDDEN")
    assert_nothing_written()


def test_widget_key_without_a_production_version_is_404(demo_project, widget_key, client_for):
    response = client_for(widget_key).post("/api/v1/conversations/anon_42/interact", LAUNCH, format="json")
    assert_error(response, 404, "NOT_FOUND")


def test_published_version_is_immutable(demo_project):
    from django.core.exceptions import ValidationError

    version = version_publish(project=demo_project, name="v1")
    version.name = "renamed"
    with pytest.raises(ValidationError):
        version.save()
