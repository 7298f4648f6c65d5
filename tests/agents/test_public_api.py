"""The public Project API (API.md §6): a project key of either scope reads its own project's public metadata and
its published versions; nothing of the document's workflows, tools or instructions."""
import pytest

from agents.models import ProjectVersion
from agents.services import key_revoke, project_api_key_create, version_publish
from tests.asserts import assert_error

pytestmark = pytest.mark.django_db


@pytest.fixture(params=["server", "widget"])
def keyed(request, demo_project, client_for):
    _row, key = project_api_key_create(project=demo_project, name=request.param, scope=request.param)
    return client_for(key)


def test_the_project(keyed, demo_project):
    response = keyed.get("/api/v1/project")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body == {
        "id": demo_project.pk, "name": "Acme Support", "description": demo_project.description,
        "framework": "conversation-flow", "language": "en", "slug": demo_project.slug,
        "widget": demo_project.document["widget"], "createdAt": body["createdAt"], "updatedAt": body["updatedAt"],
    }
    assert body["createdAt"].endswith("Z")


def test_the_project_of_the_key_only(keyed, other_project, demo_project):
    assert keyed.get("/api/v1/project").json()["id"] == demo_project.pk


def test_versions_newest_first(keyed, demo_project):
    older = version_publish(project=demo_project, name="one")
    newer = version_publish(project=demo_project, name="two")
    ProjectVersion.objects.filter(pk=older.pk).update(created_at=newer.created_at.replace(year=2020))

    response = keyed.get("/api/v1/project/versions")

    assert response.status_code == 200
    body = response.json()
    assert body == [{"id": newer.pk, "name": "two", "createdAt": body[0]["createdAt"]},
                    {"id": older.pk, "name": "one", "createdAt": body[1]["createdAt"]}]
    assert "X-Next-Cursor" not in response


def test_no_versions_is_an_empty_list(keyed):
    assert keyed.get("/api/v1/project/versions").json() == []


def test_versions_page_through_headers(keyed, demo_project, other_project):
    made = {version_publish(project=demo_project, name=str(i)).pk for i in range(3)}
    version_publish(project=other_project, name="theirs")

    first = keyed.get("/api/v1/project/versions", {"limit": 2})
    cursor = first["X-Next-Cursor"]
    assert len(first.json()) == 2 and f"next={cursor}" in first["Link"] and first["Link"].endswith('rel="next"')
    second = keyed.get("/api/v1/project/versions", {"limit": 2, "next": cursor})

    assert {v["id"] for v in first.json() + second.json()} == made
    assert "X-Next-Cursor" not in second


@pytest.mark.parametrize("query", [{"limit": 0}, {"limit": 101}, {"limit": "x"}, {"next": "%%%"}])
def test_bad_paging_is_400(keyed, query):
    assert_error(keyed.get("/api/v1/project/versions", query), 400, "BAD_REQUEST")


@pytest.mark.parametrize("path", ["/api/v1/project", "/api/v1/project/versions"])
def test_no_key_or_a_revoked_key_is_401(api, demo_project, client_for, path):
    assert_error(api.get(path), 401, "UNAUTHORIZED")
    row, key = project_api_key_create(project=demo_project)
    key_revoke(key=row)
    assert_error(client_for(key).get(path), 401, "UNAUTHORIZED")


@pytest.mark.parametrize("path", ["/api/v1/project", "/api/v1/project/versions"])
def test_a_developer_token_is_403(developer_token, demo_project, client_for, path):
    assert_error(client_for(developer_token, HTTP_X_PROJECT_ID=demo_project.pk).get(path), 403, "FORBIDDEN")


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_read_only(keyed, method):
    assert_error(getattr(keyed, method)("/api/v1/project"), 405, "METHOD_NOT_ALLOWED")
