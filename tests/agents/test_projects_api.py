"""The Project Management API's project endpoints (API.md §3: 1, 2, 7–10, 13–18): a developer token of a member,
the document as the contract shows it, every write validated as a whole and merged under a row lock, ETag and
If-Match."""
import threading

import pytest
from django.core.files.storage import default_storage
from django.db import connections

from agents.knowledge.models import KnowledgeDocument
from agents.knowledge.services import document_create_text
from agents.models import Project, ProjectApiKey, ProjectVersion
from agents.secrets import REDACTED, is_sealed, secret_open
from agents.services import developer_token_create, project_api_key_create, project_create, version_publish
from config import db  # noqa: F401  (the skip conditions read it)
from conversations.models import Conversation
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db

DOCUMENT_KEYS = ["id", "name", "description", "framework", "language", "slug", "instructions", "model", "workflows",
                 "variables", "tools", "phases", "behaviourConfig", "widget", "settings", "createdAt", "updatedAt"]
START = {"id": "start", "type": "start", "data": {}}
HELLO = {"id": "hello", "type": "message", "data": {"text": "Hello {{ name }}"}}


def flow(workflow_id="wf_new", name="New", steps=None):
    steps = steps or [START, HELLO]
    pairs = zip(steps, steps[1:], strict=False)
    return {"id": workflow_id, "name": name, "steps": steps,
            "connections": [{"source": a["id"], "port": "next", "target": b["id"]} for a, b in pairs]}


def http_tool(tool_id="lookup", url="https://api.example.com/accounts/{{ email }}", headers=None):
    return {"id": tool_id, "description": "Look an account up",
            "parameters": {"type": "object", "properties": {"email": {"type": "string"}}},
            "http": {"method": "GET", "url": url, "headers": headers or {}}}


@pytest.fixture
def dev(client_for, developer_token):
    return client_for(developer_token)


@pytest.fixture
def url(demo_project):
    return f"/api/v1/projects/{demo_project.id}"


def stored(project: Project) -> tuple:
    project.refresh_from_db()
    return project.document, project.updated_at, project.name


# --- list and create

def test_the_list_holds_the_projects_of_the_users_workspaces_in_keyset_pages(dev, user, demo_project, other_project):
    second_workspace = MembershipFactory(user=user).workspace
    mine = [demo_project] + [project_create(workspace=second_workspace, name=f"P{i}") for i in range(4)]

    first = dev.get("/api/v1/projects", {"limit": 3}).json()
    second = dev.get("/api/v1/projects", {"limit": 3, "next": first["next"]}).json()

    assert (first["has_more"], second["has_more"], second["next"]) == (True, False, None)
    listed = [item["id"] for item in first["data"] + second["data"]]
    assert listed == [p.id for p in reversed(mine)]  # newest first, the stranger's project absent
    assert set(first["data"][0]) == {"id", "name", "description", "framework", "language", "slug", "workspaceId",
                                     "productionVersionId", "createdAt", "updatedAt"}


@pytest.mark.parametrize("query", [{"limit": 0}, {"limit": "many"}, {"next": "garbage!"}])
def test_a_bad_page_request_is_400(dev, query):
    response = dev.get("/api/v1/projects", query)
    assert response.status_code == 400 and response.json()["code"] == "BAD_REQUEST"


def test_create_makes_a_blank_valid_project_with_a_free_slug(dev, workspace, demo_project):
    response = dev.post("/api/v1/projects", {"name": "Acme Support", "framework": "agentic", "language": "pt-BR",
                                             "description": "Second try"}, format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert list(body) == DOCUMENT_KEYS
    assert (body["framework"], body["language"], body["slug"], body["description"]) == (
        "agentic", "pt-BR", "acme-support-2", "Second try")
    assert body["workflows"] == [] and body["settings"]["rateLimit"] == {"perMinute": 60}
    assert Project.objects.get(id=body["id"]).workspace == workspace
    assert response.headers["ETag"]


@pytest.mark.parametrize(("body", "field"), [
    ({}, "name"),
    ({"name": ""}, "name"),
    ({"name": 5}, "name"),
    ({"name": "x" * 201}, "name"),
    ({"name": "A", "framework": "magic"}, "framework"),
    ({"name": "A", "language": "english please"}, "language"),
    ({"name": "A", "colour": "red"}, "colour"),
])
def test_create_refuses_a_bad_body_naming_the_field(dev, body, field):
    response = dev.post("/api/v1/projects", body, format="json")
    assert response.status_code == 400, response.json()
    assert field in response.json()["details"]
    assert not Project.objects.exclude(name="Acme Support").exists()


def test_create_in_a_workspace_not_the_users_is_404(dev, other_project):
    response = dev.post("/api/v1/projects", {"name": "A", "workspaceId": other_project.workspace_id}, format="json")
    assert response.status_code == 404


# --- scope: a developer token of a member only

ENDPOINTS = [("get", ""), ("patch", ""), ("delete", ""), ("post", "/persist"), ("get", "/workflows"),
             ("put", "/workflows/wf_x"), ("delete", "/workflows/wf_x"), ("put", "/tools/t"), ("delete", "/tools/t"),
             ("put", "/variables")]


@pytest.mark.parametrize(("method", "suffix"), ENDPOINTS)
def test_a_project_key_is_forbidden(client_for, project_key, url, method, suffix):
    response = getattr(client_for(project_key), method)(url + suffix, {}, format="json")
    assert response.status_code == 403 and response.json()["code"] == "FORBIDDEN"


@pytest.mark.parametrize(("method", "suffix"), ENDPOINTS)
def test_another_users_project_is_404_and_unchanged(dev, other_project, method, suffix):
    before = stored(other_project)
    response = getattr(dev, method)(f"/api/v1/projects/{other_project.id}{suffix}", {}, format="json")
    assert response.status_code == 404 and response.json()["code"] == "NOT_FOUND"
    assert stored(other_project) == before


def test_a_project_key_cannot_list_or_create(client_for, project_key):
    assert client_for(project_key).get("/api/v1/projects").status_code == 403
    assert client_for(project_key).post("/api/v1/projects", {"name": "A"}, format="json").status_code == 403


def test_no_key_is_401(api, url):
    assert api.get(url).status_code == 401


# --- get, patch, persist

def test_get_returns_the_document_redacted_with_its_etag(dev, url, demo_project):
    dev.put(f"{url}/tools/lookup", http_tool(headers={"Authorization": "Bearer s3cret"}), format="json")

    response = dev.get(url)

    body = response.json()
    assert list(body) == DOCUMENT_KEYS
    assert body["id"] == demo_project.id and [w["id"] for w in body["workflows"]] == [
        "wf_welcome", "wf_account", "wf_hours"]
    assert body["tools"][0]["http"]["headers"] == {"Authorization": REDACTED}
    assert "s3cret" not in response.content.decode()
    assert response.headers["ETag"].startswith('"')


def test_the_document_a_write_answers_is_the_one_read_back_from_the_database(dev, url):
    """The answer of a write is assembled from the texts the write made (and cached); read from the database
    afresh, the same document (redacted the same way) comes back."""
    from agents.selectors import document_texts

    dev.put(f"{url}/tools/lookup", http_tool(headers={"Authorization": "Bearer s3cret"}), format="json")
    written = dev.patch(url, {"instructions": "Ünïcode ✓", "settings": {"fallbackMessage": 'Say "hi"'}},
                        format="json")
    cached = dev.get(url)
    document_texts.clear()
    fresh = dev.get(url)

    assert written.json() == cached.json() == fresh.json()
    assert fresh.json()["tools"][0]["http"]["headers"] == {"Authorization": REDACTED}
    assert written.headers["ETag"] == cached.headers["ETag"] == fresh.headers["ETag"]
    assert written["Content-Type"] == "application/json"


def test_patch_replaces_the_parts_it_has_and_keeps_the_others(dev, url, demo_project):
    before = dev.get(url).json()

    response = dev.patch(url, {"instructions": "Be brief.", "settings": {"fallbackMessage": "Sorry?"},
                               "name": "Renamed", "id": "ignored", "updatedAt": "ignored"}, format="json")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["instructions"], body["settings"], body["name"]) == ("Be brief.", {"fallbackMessage": "Sorry?"},
                                                                      "Renamed")
    assert body["workflows"] == before["workflows"] and body["id"] == demo_project.id
    demo_project.refresh_from_db()
    assert demo_project.document["instructions"] == "Be brief." and demo_project.name == "Renamed"


@pytest.mark.parametrize(("body", "field"), [
    ({"workflows": None}, "workflows"),
    ({"workflows": {"a": 1}}, "workflows"),
    ({"settings": []}, "settings"),
    ({"instructions": 5}, "instructions"),
    ({"colour": "red"}, "colour"),
    ({"name": ""}, "name"),
])
def test_patch_refuses_a_bad_shape_and_stores_nothing(dev, url, demo_project, body, field):
    before = stored(demo_project)
    response = dev.patch(url, body, format="json")
    assert response.status_code == 400, response.json()
    assert field in response.json()["details"]
    assert stored(demo_project) == before


def test_patch_of_a_document_that_does_not_validate_is_400_naming_the_fault_and_stores_nothing(dev, url,
                                                                                             demo_project):
    before = stored(demo_project)
    document = dev.get(url).json()
    document["workflows"][0]["steps"][3]["type"] = "teleport"

    response = dev.patch(url, {"workflows": document["workflows"], "instructions": "changed"}, format="json")

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "BAD_REQUEST"
    assert body["details"]["workflows[0].steps[3]"] == ["Unknown step type 'teleport'."]
    assert "workflows[0].steps[3]" in body["error"]
    assert stored(demo_project) == before


def test_persist_replaces_the_whole_document(dev, url, demo_project):
    response = dev.post(f"{url}/persist", {"workflows": [flow()], "instructions": "New"}, format="json")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert [w["id"] for w in body["workflows"]] == ["wf_new"]
    assert body["variables"] == [] and body["instructions"] == "New"
    assert body["settings"]["fallbackMessage"] == "Sorry, I didn't understand that."  # a blank project's


def test_persist_of_what_get_returned_round_trips(dev, url):
    document = dev.get(url).json()
    response = dev.post(f"{url}/persist", document, format="json")
    assert response.status_code == 200, response.json()
    assert {k: v for k, v in response.json().items() if k != "updatedAt"} == {
        k: v for k, v in document.items() if k != "updatedAt"}


def test_persist_of_an_invalid_document_stores_nothing(dev, url, demo_project):
    before = stored(demo_project)
    response = dev.post(f"{url}/persist", {"workflows": [flow(steps=[HELLO])]}, format="json")
    assert response.status_code == 400
    assert "exactly one start step" in response.json()["details"]["workflows[0]"][0]
    assert stored(demo_project) == before


# --- delete

def test_delete_removes_the_project_and_all_its_data(dev, url, demo_project, django_capture_on_commit_callbacks):
    version_publish(project=demo_project, name="v1")
    project_api_key_create(project=demo_project, name="server")
    Conversation.objects.create(project=demo_project, user_id="jane")
    with django_capture_on_commit_callbacks(execute=True):
        document = document_create_text(project=demo_project, name="Hours", content="We open at nine.")
    assert default_storage.exists(document.stored_path)

    with django_capture_on_commit_callbacks(execute=True):
        response = dev.delete(url)

    assert response.status_code == 204
    assert not Project.objects.filter(id=demo_project.id).exists()
    for model in (ProjectVersion, ProjectApiKey, Conversation, KnowledgeDocument):
        assert not model.objects.filter(project_id=demo_project.id).exists(), model
    assert not default_storage.exists(document.stored_path)
    assert dev.get(url).status_code == 404


# --- workflows, tools, variables

def test_workflows_are_listed_in_document_order_in_pages(dev, url):
    first = dev.get(f"{url}/workflows", {"limit": 2}).json()
    second = dev.get(f"{url}/workflows", {"limit": 2, "next": first["next"]}).json()

    assert [w["id"] for w in first["data"]] == ["wf_welcome", "wf_account"] and first["has_more"]
    assert [w["id"] for w in second["data"]] == ["wf_hours"] and second == {**second, "next": None,
                                                                             "has_more": False}
    assert dev.get(f"{url}/workflows", {"next": "bm9uZQ"}).status_code == 400


def test_put_workflow_adds_then_replaces_in_place(dev, url):
    created = dev.put(f"{url}/workflows/wf_new", flow(), format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["id"] == "wf_new" and created.headers["ETag"]

    welcome = dev.get(url).json()["workflows"][0]
    welcome["name"] = "Hello again"
    replaced = dev.put(f"{url}/workflows/wf_welcome", {**welcome, "layout": {"x": 1}}, format="json")

    assert replaced.status_code == 200, replaced.json()
    workflows = dev.get(url).json()["workflows"]
    assert [w["id"] for w in workflows] == ["wf_welcome", "wf_account", "wf_hours", "wf_new"]
    assert workflows[0]["name"] == "Hello again" and workflows[0]["layout"] == {"x": 1}


def test_put_workflow_refuses_an_invalid_one_naming_it_and_stores_nothing(dev, url, demo_project):
    before = stored(demo_project)
    bad = flow(steps=[START, {"id": "hello", "type": "message", "data": {"text": "Hi {{ name "}}])

    response = dev.put(f"{url}/workflows/wf_new", bad, format="json")

    assert response.status_code == 400
    assert "workflows[3].steps[1].data.text" in response.json()["details"]
    assert stored(demo_project) == before


@pytest.mark.parametrize(("body", "field"), [
    ({**flow(), "id": "other"}, "id"),
    ({"name": "No steps"}, "steps"),
    ({**flow(), "steps": "many"}, "steps"),
])
def test_put_workflow_refuses_a_bad_body(dev, url, body, field):
    response = dev.put(f"{url}/workflows/wf_new", body, format="json")
    assert response.status_code == 400 and field in response.json()["details"]


def test_delete_workflow(dev, url):
    dev.put(f"{url}/workflows/wf_new", flow(), format="json")
    assert dev.delete(f"{url}/workflows/wf_new").status_code == 204
    assert "wf_new" not in [w["id"] for w in dev.get(url).json()["workflows"]]
    assert dev.delete(f"{url}/workflows/wf_new").status_code == 404


def test_deleting_a_workflow_a_jump_names_is_400_naming_the_jump(dev, url, demo_project):
    before = stored(demo_project)
    response = dev.delete(f"{url}/workflows/wf_account")
    assert response.status_code == 400
    assert "existing workflowId" in response.json()["details"]["workflows[0].steps[3]"][0]
    assert stored(demo_project) == before


def test_put_tool_seals_its_headers_and_a_redacted_value_keeps_the_stored_one(dev, url, demo_project):
    created = dev.put(f"{url}/tools/lookup", http_tool(headers={"Authorization": "Bearer s3cret"}), format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["http"]["headers"] == {"Authorization": REDACTED}

    again = dev.put(f"{url}/tools/lookup", {**created.json(), "description": "Changed"}, format="json")

    assert again.status_code == 200, again.json()
    demo_project.refresh_from_db()
    (tool,) = demo_project.document["tools"]
    assert tool["description"] == "Changed"
    assert is_sealed(tool["http"]["headers"]["Authorization"])
    assert secret_open(tool["http"]["headers"]["Authorization"]) == "Bearer s3cret"


@pytest.mark.parametrize(("tool", "where"), [
    (http_tool(url="ftp://files.example.com/x"), "tools[0].http.url"),
    ({**http_tool(), "parameters": {"type": "object", "properties": {"a": {"type": "strnig"}}}},
     "tools[0].parameters"),
    ({**http_tool(), "paramters": {}}, "paramters"),
])
def test_put_tool_refuses_an_invalid_one(dev, url, demo_project, tool, where):
    before = stored(demo_project)
    response = dev.put(f"{url}/tools/lookup", tool, format="json")
    assert response.status_code == 400 and where in response.json()["details"], response.json()
    assert stored(demo_project) == before


def test_delete_tool(dev, url):
    dev.put(f"{url}/tools/lookup", http_tool(), format="json")
    assert dev.delete(f"{url}/tools/lookup").status_code == 204
    assert dev.get(url).json()["tools"] == []
    assert dev.delete(f"{url}/tools/lookup").status_code == 404


def test_put_variables_replaces_the_declarations(dev, url):
    variables = [{"name": "customer_name", "type": "string", "default": None, "description": ""},
                 {"name": "plan_tier", "type": "string", "default": "basic"}]
    response = dev.put(f"{url}/variables", variables, format="json")
    assert response.status_code == 200 and response.json() == variables
    assert dev.get(url).json()["variables"] == variables


@pytest.mark.parametrize(("body", "where"), [
    ({"variables": []}, "non_field_errors"),
    ([{"name": "a"}, {"name": "a"}], "variables[1].name"),
    ([{"name": "not valid"}], "variables[0]"),
    ([{"name": "a", "type": "date"}], "variables[0].type"),
])
def test_put_variables_refuses_bad_ones(dev, url, demo_project, body, where):
    before = stored(demo_project)
    response = dev.put(f"{url}/variables", body, format="json")
    assert response.status_code == 400 and where in response.json()["details"], response.json()
    assert stored(demo_project) == before


# --- ETag and If-Match

def test_if_match_with_the_current_etag_writes_and_a_stale_one_is_412_storing_nothing(dev, url, demo_project):
    etag = dev.get(url).headers["ETag"]

    fresh = dev.patch(url, {"instructions": "first"}, format="json", HTTP_IF_MATCH=etag)
    assert fresh.status_code == 200 and fresh.headers["ETag"] != etag
    assert dev.get(url).headers["ETag"] == fresh.headers["ETag"]
    before = stored(demo_project)

    stale = dev.patch(url, {"instructions": "second"}, format="json", HTTP_IF_MATCH=etag)

    assert stale.status_code == 412
    assert stale.json()["code"] == "PRECONDITION_FAILED"
    assert stored(demo_project) == before
    for method, suffix, body in [("post", "/persist", {}), ("put", "/workflows/wf_new", flow()),
                                 ("put", "/variables", []), ("delete", "/workflows/wf_hours", None)]:
        response = getattr(dev, method)(url + suffix, body, format="json", HTTP_IF_MATCH=etag)
        assert response.status_code == 412, (method, suffix)
    assert stored(demo_project) == before
    assert dev.patch(url, {"instructions": "any"}, format="json", HTTP_IF_MATCH="*").status_code == 200
    assert dev.patch(url, {"instructions": "listed"}, format="json",
                     HTTP_IF_MATCH=f'"nope", {dev.get(url).headers["ETag"]}').status_code == 200


@pytest.mark.postgres
@pytest.mark.skipif("not db.is_postgres()", reason="row locks under real concurrency: PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_concurrent_patches_of_different_parts_both_survive(client_for, user, workspace):
    project = project_create(workspace=workspace, name="Busy")
    _row, token = developer_token_create(user=user)
    url = f"/api/v1/projects/{project.id}"
    rounds = 15
    barrier = threading.Barrier(2)
    failures = []

    def patch(body_for) -> None:
        client = client_for(token)
        try:
            barrier.wait()
            for i in range(rounds):
                response = client.patch(url, body_for(i), format="json")
                if response.status_code != 200:
                    failures.append(response.json())
        finally:
            connections.close_all()

    threads = [threading.Thread(target=patch, args=(lambda i: {"instructions": f"a{i}"},)),
               threading.Thread(target=patch, args=(lambda i: {"widget": {"title": f"b{i}"}},))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    project.refresh_from_db()
    assert project.document["instructions"] == f"a{rounds - 1}"
    assert project.document["widget"] == {"title": f"b{rounds - 1}"}


@pytest.mark.postgres
@pytest.mark.skipif("not db.is_postgres()", reason="row locks under real concurrency: PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_a_patch_waits_for_the_row_lock_of_one_in_flight_and_merges_onto_its_result(client_for, user, workspace,
                                                                                    monkeypatch):
    """Deterministic: the first PATCH is held inside its transaction (after reading the row, before storing); the
    second must wait for it rather than merge onto the row as it was, else the first would overwrite its part."""
    from agents import services

    project = project_create(workspace=workspace, name="Busy")
    _row, token = developer_token_create(user=user)
    url = f"/api/v1/projects/{project.id}"
    inside, release, second_done = threading.Event(), threading.Event(), threading.Event()
    validate = services._validate

    def held(parts, fields, framework):
        if parts["instructions"] == "first" and not inside.is_set():
            inside.set()
            release.wait(10)
        return validate(parts, fields, framework)

    monkeypatch.setattr(services, "_validate", held)
    statuses = []

    def patch(body, done=None) -> None:
        try:
            statuses.append(client_for(token).patch(url, body, format="json").status_code)
        finally:
            connections.close_all()
            if done:
                done.set()

    first = threading.Thread(target=patch, args=({"instructions": "first"},))
    second = threading.Thread(target=patch, args=({"widget": {"title": "second"}}, second_done))
    first.start()
    assert inside.wait(10)
    second.start()
    waited = not second_done.wait(0.5)
    release.set()
    first.join()
    second.join()

    assert waited, "the second PATCH did not wait for the row lock"
    assert statuses == [200, 200]
    project.refresh_from_db()
    assert (project.document["instructions"], project.document["widget"]) == ("first", {"title": "second"})


@pytest.mark.postgres
@pytest.mark.skipif("not db.is_postgres()", reason="row locks under real concurrency: PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_concurrent_patches_with_the_same_if_match_one_wins_the_other_is_412(client_for, user, workspace):
    project = project_create(workspace=workspace, name="Busy")
    _row, token = developer_token_create(user=user)
    url = f"/api/v1/projects/{project.id}"
    etag = client_for(token).get(url).headers["ETag"]
    barrier = threading.Barrier(2)
    statuses = []

    def patch(text: str) -> None:
        try:
            barrier.wait()
            statuses.append(client_for(token).patch(url, {"instructions": text}, format="json",
                                                    HTTP_IF_MATCH=etag).status_code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=patch, args=(text,)) for text in ("left", "right")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(statuses) == [200, 412]
    project.refresh_from_db()
    assert project.document["instructions"] in ("left", "right")


def test_a_stale_service_instance_merges_onto_the_stored_row(demo_project):
    """The service merges onto the row as stored, not onto the caller's (possibly stale) instance."""
    from agents.services import project_update

    stale = Project.objects.get(pk=demo_project.pk)
    project_update(project=demo_project, document={"instructions": "kept"})
    project_update(project=stale, document={"widget": {"title": "also kept"}})

    demo_project.refresh_from_db()
    assert demo_project.document["instructions"] == "kept"
    assert demo_project.document["widget"] == {"title": "also kept"}
    assert stale.document["instructions"] == "kept"  # the instance is refreshed with what was stored
