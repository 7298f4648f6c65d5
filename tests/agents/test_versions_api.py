"""Versions (API.md §3, endpoints 19–21): publish freezes development into an immutable snapshot that production
runs; conversations pinned to a version id keep running it; promote rolls production back."""
import copy

import pytest

from agents.models import Project, ProjectVersion
from agents.services import project_api_key_create, project_update, snapshot_digest, version_publish
from tests.asserts import assert_error
from tests.factories import MembershipFactory, ProjectFactory

pytestmark = pytest.mark.django_db

LAUNCH = {"type": "launch", "payload": None}
OLD_GREETING = "Hi there! Welcome to Acme Support."


def versions_url(project) -> str:
    return f"/api/v1/projects/{project.pk}/versions"


def greet(project, text: str) -> None:
    """Changes the development document's greeting and the account flow's question (through the service, as a
    PATCH does)."""
    workflows = copy.deepcopy(project.document["workflows"])
    workflows[0]["steps"][1]["data"]["text"] = text
    workflows[1]["steps"][1]["data"]["prompt"] = "Your email, please?"
    project_update(project=project, document={"workflows": workflows})


def first_text(response) -> str:
    assert response.status_code == 200, response.content
    return response.json()[0]["payload"]["message"]


def test_publish_freezes_development_and_becomes_production(developer, demo_project):
    response = developer.post(versions_url(demo_project), {"name": "launch"}, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    version = ProjectVersion.objects.get()
    assert body == {"id": version.pk, "name": "launch", "digest": version.digest, "production": True,
                    "createdAt": body["createdAt"]}
    assert body["id"].startswith("ver_") and body["createdAt"].endswith("Z")
    assert version.digest == snapshot_digest(version.snapshot)
    assert version.snapshot["workflows"] == demo_project.document["workflows"]
    assert Project.objects.get().production_version_id == version.pk

    greet(demo_project, "Changed after publishing.")
    version.refresh_from_db()
    assert version.snapshot["workflows"][0]["steps"][1]["data"]["text"] != "Changed after publishing."


@pytest.mark.parametrize("body", [None, {}])
def test_publish_without_a_name(developer, demo_project, body):
    response = developer.post(versions_url(demo_project), body, format="json")

    assert response.status_code == 201, response.content
    assert response.json()["name"] == ""


@pytest.mark.parametrize(("body", "field"), [
    ({"name": 5}, "name"), ({"name": "x" * 201}, "name"), ({"nmae": "typo"}, "nmae"),
    (["not", "an", "object"], "non_field_errors"),
])
def test_publish_refuses_a_bad_body(developer, demo_project, body, field):
    response = developer.post(versions_url(demo_project), body, format="json")

    assert field in assert_error(response, 400, "BAD_REQUEST")["details"]
    assert not ProjectVersion.objects.exists()


def test_publish_refuses_a_development_document_that_cannot_run(developer, published_demo):
    Project.objects.filter(pk=published_demo.pk).update(document={"workflows": "nope"})  # written by an old release

    body = assert_error(developer.post(versions_url(published_demo), {}, format="json"), 409, "CONFLICT")

    assert body["details"] == {"workflows": ["Expected a list."]}
    assert ProjectVersion.objects.count() == 1
    assert Project.objects.get().production_version_id == published_demo.production_version_id


def test_list_is_newest_first_and_marks_production(developer, demo_project):
    older = version_publish(project=demo_project, name="one")
    newer = version_publish(project=demo_project, name="two")
    ProjectVersion.objects.filter(pk=older.pk).update(created_at=newer.created_at.replace(year=2020))

    body = developer.get(versions_url(demo_project)).json()

    assert [(v["id"], v["name"], v["production"]) for v in body["data"]] == [(newer.pk, "two", True),
                                                                            (older.pk, "one", False)]
    assert body["next"] is None and body["has_more"] is False
    assert "snapshot" not in body["data"][0]


def test_list_pages_with_a_cursor(developer, demo_project):
    made = [version_publish(project=demo_project, name=str(i)) for i in range(3)]

    first = developer.get(versions_url(demo_project), {"limit": 2}).json()
    second = developer.get(versions_url(demo_project), {"limit": 2, "next": first["next"]}).json()

    assert first["has_more"] is True and second["has_more"] is False
    assert {v["id"] for v in first["data"] + second["data"]} == {v.pk for v in made}
    assert_error(developer.get(versions_url(demo_project), {"limit": 0}), 400, "BAD_REQUEST")
    assert_error(developer.get(versions_url(demo_project), {"next": "garbage!"}), 400, "BAD_REQUEST")


def test_a_project_without_versions_lists_none(developer, demo_project):
    assert developer.get(versions_url(demo_project)).json() == {"data": [], "next": None, "has_more": False}


# --- the runtime picks the snapshot by versionId


def interact(client, user_id: str, action: dict, version: str):
    return client.post(f"/api/v1/conversations/{user_id}/interact", {"action": action, "versionId": version},
                       format="json")


def test_publish_serves_the_new_snapshot_while_a_pinned_conversation_keeps_its_version(
        developer, demo_project, server_client):
    v1 = developer.post(versions_url(demo_project), {"name": "v1"}, format="json").json()["id"]
    # A conversation started on v1, pinned to its id, waits at v1's menu.
    assert first_text(interact(server_client, "pinned", LAUNCH, v1)) == OLD_GREETING

    greet(demo_project, "Hello from version two!")
    v2 = developer.post(versions_url(demo_project), {"name": "v2"}, format="json").json()["id"]

    assert first_text(interact(server_client, "fresh", LAUNCH, "production")) == "Hello from version two!"
    account = {"type": "button", "payload": {"label": "Account help", "value": "account"}}
    assert first_text(interact(server_client, "fresh", account, "production")) == "Your email, please?"
    # The pinned conversation goes on with v1's flow: its menu's first button jumps to v1's account workflow.
    assert first_text(interact(server_client, "pinned", account, v1)) == "What's the email on your account?"
    assert first_text(interact(server_client, "pinned2", LAUNCH, v1)) == OLD_GREETING
    assert v1 != v2


def test_promote_rolls_production_back(developer, demo_project, server_client):
    v1 = developer.post(versions_url(demo_project), {"name": "v1"}, format="json").json()["id"]
    greet(demo_project, "Hello from version two!")
    developer.post(versions_url(demo_project), {"name": "v2"}, format="json")
    assert first_text(interact(server_client, "a", LAUNCH, "production")) == "Hello from version two!"

    response = developer.post(f"{versions_url(demo_project)}/{v1}/promote")

    assert response.status_code == 200, response.content
    assert response.json()["id"] == v1 and response.json()["production"] is True
    assert Project.objects.get().production_version_id == v1
    assert first_text(interact(server_client, "b", LAUNCH, "production")) == OLD_GREETING
    # Development is not touched by a rollback.
    assert first_text(interact(server_client, "c", LAUNCH, "development")) == "Hello from version two!"
    listed = developer.get(versions_url(demo_project)).json()["data"]
    assert [v["id"] for v in listed if v["production"]] == [v1]


def test_promote_is_idempotent(developer, published_demo):
    version = published_demo.production_version_id
    for _ in range(2):
        response = developer.post(f"{versions_url(published_demo)}/{version}/promote")
        assert response.status_code == 200 and response.json()["production"] is True


def test_promote_of_an_unknown_or_foreign_version_is_404(developer, published_demo, other_project):
    foreign = version_publish(project=other_project, name="theirs")

    for version_id in ("ver_nope", foreign.pk):
        response = developer.post(f"{versions_url(published_demo)}/{version_id}/promote")
        assert_error(response, 404, "NOT_FOUND")
    assert Project.objects.get(pk=published_demo.pk).production_version_id == published_demo.production_version_id


# --- who may call


def test_another_users_project_is_404_and_unchanged(developer, client_for):
    theirs = ProjectFactory()
    version = version_publish(project=theirs)
    MembershipFactory(workspace=theirs.workspace)  # a member, but not the token's user

    assert_error(developer.get(versions_url(theirs)), 404, "NOT_FOUND")
    assert_error(developer.post(versions_url(theirs), {}, format="json"), 404, "NOT_FOUND")
    assert_error(developer.post(f"{versions_url(theirs)}/{version.pk}/promote"), 404, "NOT_FOUND")
    assert ProjectVersion.objects.count() == 1


def test_a_project_key_is_403(published_demo, client_for):
    _row, key = project_api_key_create(project=published_demo)
    client = client_for(key)

    assert_error(client.get(versions_url(published_demo)), 403, "FORBIDDEN")
    assert_error(client.post(versions_url(published_demo), {}, format="json"), 403, "FORBIDDEN")
    assert_error(client.post(f"{versions_url(published_demo)}/{published_demo.production_version_id}/promote"),
                 403, "FORBIDDEN")
    assert ProjectVersion.objects.count() == 1


def test_publish_and_promote_leave_the_development_etag(developer, demo_project):
    """Neither changes the development document: a client's If-Match taken before them still holds."""
    etag = developer.get(f"/api/v1/projects/{demo_project.pk}")["ETag"]
    v1 = developer.post(versions_url(demo_project), {}, format="json").json()["id"]
    developer.post(versions_url(demo_project), {}, format="json")
    developer.post(f"{versions_url(demo_project)}/{v1}/promote")

    assert developer.get(f"/api/v1/projects/{demo_project.pk}")["ETag"] == etag
    response = developer.patch(f"/api/v1/projects/{demo_project.pk}", {"instructions": "Be brief."}, format="json",
                               HTTP_IF_MATCH=etag)
    assert response.status_code == 200, response.content
