"""Project keys over the API (API.md §3, endpoints 22–24): listed by prefix, created and shown once, revoked for
good; and the key_revoke command beside key_create."""
import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from agents.ids import key_digest
from agents.models import DeveloperToken, ProjectApiKey
from agents.services import developer_token_create, project_api_key_create
from tests.asserts import assert_error

pytestmark = pytest.mark.django_db

LAUNCH = {"action": {"type": "launch", "payload": None}}


def keys_url(project) -> str:
    return f"/api/v1/projects/{project.pk}/api-keys"


@pytest.fixture
def developer(developer_token, client_for):
    return client_for(developer_token)


@pytest.mark.parametrize("scope", ["server", "widget"])
def test_create_shows_the_key_once_and_stores_its_digest(developer, demo_project, scope):
    response = developer.post(keys_url(demo_project), {"name": "site", "scope": scope}, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    row = ProjectApiKey.objects.get()
    assert re.fullmatch(r"cdt_[0-9A-Za-z]{40}", body["key"])
    assert row.digest == key_digest(body["key"]) and row.scope == scope and row.project_id == demo_project.pk
    assert body == {"id": row.pk, "key": body["key"], "prefix": body["key"][:12], "name": "site", "scope": scope,
                    "lastUsedAt": None, "createdAt": body["createdAt"], "revokedAt": None}
    listed = developer.get(keys_url(demo_project))
    assert body["key"] not in listed.content.decode()


def test_a_created_key_works_within_its_scope(developer, published_demo, client_for):
    server = developer.post(keys_url(published_demo), {"name": "back end", "scope": "server"}, format="json")
    widget = developer.post(keys_url(published_demo), {"name": "site", "scope": "widget"}, format="json")

    assert client_for(server.json()["key"]).post("/api/v1/conversations/jane/interact", LAUNCH,
                                                 format="json").status_code == 200
    widget_client = client_for(widget.json()["key"])
    assert widget_client.get("/api/v1/project").status_code == 200
    assert widget_client.post("/api/v1/conversations/anon_1/interact", LAUNCH, format="json").status_code == 200
    assert_error(widget_client.post("/api/v1/conversations/jane/interact", LAUNCH, format="json"), 403, "FORBIDDEN")


def test_list_shows_prefix_name_scope_and_use_newest_first(developer, demo_project, client_for):
    older, older_key = project_api_key_create(project=demo_project, name="old", scope="server")
    newer, _key = project_api_key_create(project=demo_project, name="new", scope="widget")
    ProjectApiKey.objects.filter(pk=older.pk).update(created_at=newer.created_at.replace(year=2020))
    client_for(older_key).post("/api/v1/conversations/jane/interact", LAUNCH, format="json")

    body = developer.get(keys_url(demo_project)).json()

    assert [(k["id"], k["name"], k["scope"]) for k in body["data"]] == [(newer.pk, "new", "widget"),
                                                                       (older.pk, "old", "server")]
    assert body["data"][1]["prefix"] == older_key[:12] and body["data"][1]["lastUsedAt"] is not None
    assert body["data"][0]["lastUsedAt"] is None
    assert body["has_more"] is False and body["next"] is None
    assert "digest" not in body["data"][0] and "key" not in body["data"][0]


def test_list_pages(developer, demo_project):
    for i in range(3):
        project_api_key_create(project=demo_project, name=str(i))

    first = developer.get(keys_url(demo_project), {"limit": 2}).json()
    second = developer.get(keys_url(demo_project), {"limit": 2, "next": first["next"]}).json()

    assert len(first["data"]) == 2 and first["has_more"] and len(second["data"]) == 1
    assert_error(developer.get(keys_url(demo_project), {"limit": "many"}), 400, "BAD_REQUEST")


def test_the_list_holds_only_this_projects_keys(developer, demo_project, other_project):
    project_api_key_create(project=other_project, name="theirs")
    assert developer.get(keys_url(demo_project)).json()["data"] == []


@pytest.mark.parametrize(("body", "field"), [
    ({"scope": "server"}, "name"),
    ({"name": "x"}, "scope"),
    ({"name": "x", "scope": "admin"}, "scope"),
    ({"name": 7, "scope": "server"}, "name"),
    ({"name": "", "scope": "server"}, "name"),
    ({"name": "x" * 201, "scope": "server"}, "name"),
    ({"name": "x", "scope": "server", "project": "proj_x"}, "project"),
    ("a string", "non_field_errors"),
])
def test_create_refuses_a_bad_body(developer, demo_project, body, field):
    response = developer.post(keys_url(demo_project), body, format="json")

    assert field in assert_error(response, 400, "BAD_REQUEST")["details"]
    assert not ProjectApiKey.objects.exists()


def test_revoke_makes_the_key_401_for_good(developer, published_demo, client_for):
    row, key = project_api_key_create(project=published_demo, name="ci")
    client = client_for(key)
    assert client.post("/api/v1/conversations/jane/interact", LAUNCH, format="json").status_code == 200

    response = developer.delete(f"{keys_url(published_demo)}/{row.pk}")

    assert response.status_code == 204 and response.content == b""
    assert_error(client.post("/api/v1/conversations/jane/interact", LAUNCH, format="json"), 401, "UNAUTHORIZED")
    assert_error(client.get("/api/v1/project"), 401, "UNAUTHORIZED")
    listed = developer.get(keys_url(published_demo)).json()["data"]
    assert listed[0]["revokedAt"] is not None
    revoked_at = ProjectApiKey.objects.get().revoked_at
    assert developer.delete(f"{keys_url(published_demo)}/{row.pk}").status_code == 204  # again: no change
    assert ProjectApiKey.objects.get().revoked_at == revoked_at


def test_revoking_an_unknown_or_foreign_key_is_404(developer, demo_project, other_project):
    theirs, _key = project_api_key_create(project=other_project)

    for key_id in ("key_nope", theirs.pk):
        assert_error(developer.delete(f"{keys_url(demo_project)}/{key_id}"), 404, "NOT_FOUND")
    assert ProjectApiKey.objects.get().revoked_at is None


def test_another_users_project_is_404(developer, other_project):
    row, _key = project_api_key_create(project=other_project)

    assert_error(developer.get(keys_url(other_project)), 404, "NOT_FOUND")
    assert_error(developer.post(keys_url(other_project), {"name": "x", "scope": "server"}, format="json"),
                 404, "NOT_FOUND")
    assert_error(developer.delete(f"{keys_url(other_project)}/{row.pk}"), 404, "NOT_FOUND")
    assert ProjectApiKey.objects.count() == 1 and ProjectApiKey.objects.get().revoked_at is None


def test_a_project_key_may_not_manage_keys(demo_project, client_for):
    row, key = project_api_key_create(project=demo_project)
    client = client_for(key)

    assert_error(client.get(keys_url(demo_project)), 403, "FORBIDDEN")
    assert_error(client.post(keys_url(demo_project), {"name": "x", "scope": "server"}, format="json"),
                 403, "FORBIDDEN")
    assert_error(client.delete(f"{keys_url(demo_project)}/{row.pk}"), 403, "FORBIDDEN")
    assert ProjectApiKey.objects.count() == 1 and ProjectApiKey.objects.get().revoked_at is None


# --- key_revoke, beside key_create


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_key_create_then_key_revoke_by_id(demo_project, client_for):
    key = run("key_create", "--project", demo_project.pk, "--scope", "widget", "--name", "site").strip()
    row = ProjectApiKey.objects.get()
    assert row.digest == key_digest(key) and row.scope == "widget"

    output = run("key_revoke", "--key", row.pk)

    assert f"{row.pk} revoked" in output
    assert_error(client_for(key).get("/api/v1/project"), 401, "UNAUTHORIZED")
    assert "already revoked" in run("key_revoke", "--key", row.pk)


@pytest.mark.parametrize("named", [
    pytest.param(lambda key: key[:12], id="the listed prefix"),
    pytest.param(lambda key: key[:12] + "…", id="as the admin shows it"),
    pytest.param(lambda key: key[4:12], id="bare prefix"),
    pytest.param(lambda key: key, id="the whole key"),
])
def test_key_revoke_by_prefix(demo_project, named):
    row, key = project_api_key_create(project=demo_project)
    other, _other_key = project_api_key_create(project=demo_project)

    run("key_revoke", "--key", named(key))

    assert ProjectApiKey.objects.get(pk=row.pk).revoked_at is not None
    assert ProjectApiKey.objects.get(pk=other.pk).revoked_at is None


def test_key_revoke_takes_developer_tokens_too(user, client_for):
    row, token = developer_token_create(user=user)

    run("key_revoke", "--key", token[:16])

    assert DeveloperToken.objects.get().revoked_at is not None
    assert_error(client_for(token).get("/api/v1/projects"), 401, "UNAUTHORIZED")


@pytest.mark.parametrize("named", ["key_nope", "cdt_short", "cdt_ZZZZZZZZ", "", "cdt_acc_" + "Z" * 40])
def test_key_revoke_names_what_it_could_not_find(demo_project, named):
    project_api_key_create(project=demo_project)

    with pytest.raises(CommandError, match="No key"):
        run("key_revoke", "--key", named)
    assert ProjectApiKey.objects.get().revoked_at is None


def test_key_revoke_refuses_an_ambiguous_prefix(demo_project):
    first, key = project_api_key_create(project=demo_project)
    second, _key = project_api_key_create(project=demo_project)
    ProjectApiKey.objects.filter(pk=second.pk).update(prefix=first.prefix)

    with pytest.raises(CommandError, match="names 2 keys"):
        run("key_revoke", "--key", key[:12])
    assert not ProjectApiKey.objects.filter(revoked_at__isnull=False).exists()
