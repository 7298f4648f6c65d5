"""Import of Conduet-native documents (API.md §3, endpoint 6): GET then import gives an equal project with a new
id; redacted secrets cannot be imported as values (the header is left out and listed); an invalid document is a
400 naming the fault with nothing stored. The catalogue's paths are for developer tokens only."""
import pytest

from agents.models import DOCUMENT_PARTS, Project
from agents.secrets import REDACTED
from agents.services import project_update
from tests.asserts import assert_error
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/projects/import"
TOOL = {"id": "lookup", "description": "Look up an account.", "parameters": {"type": "object"},
        "http": {"method": "GET", "url": "https://api.example.com/accounts",
                 "headers": {"Authorization": "Bearer s3cret", "Accept": "application/json"}}}


@pytest.fixture
def mine(user, workspace, demo_project):
    return demo_project  # in the token user's workspace


def exported(developer, project) -> dict:
    response = developer.get(f"/api/v1/projects/{project.id}")
    assert response.status_code == 200, response.content
    return response.json()


def test_get_then_import_gives_an_equal_project(developer, mine):
    document = exported(developer, mine)

    response = developer.post(URL, document, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["format"] == "conduet" and body["warnings"] == []
    assert body["id"] != document["id"] and body["id"].startswith("proj_")
    for key in (*DOCUMENT_PARTS, "name", "description", "framework", "language"):
        assert body[key] == document[key], key
    copy = Project.objects.get(id=body["id"])
    assert copy.workspace == mine.workspace and copy.slug == f"{mine.slug}-2"
    assert {k: v for k, v in exported(developer, copy).items() if k not in ("id", "slug", "createdAt", "updatedAt")} \
        == {k: v for k, v in document.items() if k not in ("id", "slug", "createdAt", "updatedAt")}


def test_a_redacted_secret_is_left_out_and_listed(developer, mine):
    project_update(project=mine, document={"tools": [TOOL]})
    document = exported(developer, mine)
    assert document["tools"][0]["http"]["headers"]["Authorization"] == REDACTED

    body = developer.post(URL, document, format="json").json()

    assert body["tools"][0]["http"].get("headers", {}) == {}
    assert sorted(w.split(":")[0] for w in body["warnings"]) == ["tools[0].http.headers.Accept",
                                                                 "tools[0].http.headers.Authorization"]
    assert all("enter its value again" in warning for warning in body["warnings"])


def test_import_takes_a_workspace_and_a_name(developer, mine, user):
    second = MembershipFactory(user=user).workspace
    document = exported(developer, mine)

    response = developer.post(f"{URL}?workspaceId={second.id}&name=Copy", document, format="json")

    assert response.status_code == 201
    project = Project.objects.get(id=response.json()["id"])
    assert (project.workspace, project.name, project.slug) == (second, "Copy", mine.slug)


def test_unknown_fields_are_warned_about(developer, mine):
    document = {**exported(developer, mine), "colour": "blue"}

    assert developer.post(URL, document, format="json").json()["warnings"] == ["Unknown fields ignored: colour."]


@pytest.mark.parametrize(("change", "field"), [
    ({"name": ""}, "name"),
    ({"name": 5}, "name"),
    ({"language": "x" * 40}, "language"),
    ({"workflows": [{"id": "wf", "name": "W", "steps": [{"id": "a", "type": "teleport"}], "connections": []}]},
     "workflows[0].steps[0]"),
    ({"tools": [{**TOOL, "http": {"method": "GET", "url": "ftp://example.com"}}]}, "tools[0].http.url"),
])
def test_an_invalid_document_is_400_naming_the_fault(developer, mine, change, field):
    count = Project.objects.count()

    body = assert_error(developer.post(URL, {**exported(developer, mine), **change}, format="json"), 400,
                        "BAD_REQUEST")

    assert field in body["details"] and Project.objects.count() == count


def test_a_workspace_of_someone_else_is_404(developer, mine, other_project):
    response = developer.post(f"{URL}?workspaceId={other_project.workspace_id}", exported(developer, mine),
                              format="json")

    assert_error(response, 404, "NOT_FOUND")


def test_a_user_in_no_workspace_is_400(client_for, stranger):
    from agents.services import developer_token_create

    _row, key = developer_token_create(user=stranger)

    body = assert_error(client_for(key).post("/api/v1/projects/templates", {"templateId": "lead-capture"},
                                             format="json"), 400, "BAD_REQUEST")
    assert "no workspace" in body["error"]


@pytest.mark.parametrize(("method", "path"), [("get", "/api/v1/projects/templates"),
                                              ("post", "/api/v1/projects/templates"),
                                              ("post", "/api/v1/projects/generate"), ("post", URL)])
def test_project_keys_are_refused_and_no_key_is_401(server_client, api, method, path):
    assert getattr(server_client, method)(path, {}, format="json").status_code == 403
    assert_error(getattr(api, method)(path, {}, format="json"), 401, "UNAUTHORIZED")
