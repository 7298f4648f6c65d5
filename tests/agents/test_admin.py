"""Admin for agents and keys: keys are created by the service and shown once, revocable but not revivable, their
grant fixed; documents validated before they are saved or published; versions read-only, production's undeletable."""
import json
import re

import pytest

from agents.ids import key_digest
from agents.models import DeveloperToken, Project, ProjectApiKey, ProjectVersion
from agents.services import developer_token_create, project_api_key_create, version_publish
from tests.admin_urls import admin_url

pytestmark = pytest.mark.django_db


def test_every_admin_page_renders(admin_client, demo_project, developer_token, project_key):
    version = version_publish(project=demo_project)
    pages = ["/admin/", "/admin/agents/workspace/", "/admin/agents/workspace/add/", "/admin/agents/membership/",
             "/admin/agents/project/", admin_url("project", demo_project.pk),
             "/admin/agents/projectversion/", admin_url("projectversion", version.pk),
             "/admin/agents/projectapikey/", "/admin/agents/projectapikey/add/",
             admin_url("projectapikey", ProjectApiKey.objects.get().pk),
             "/admin/agents/developertoken/", "/admin/agents/developertoken/add/",
             admin_url("workspace", demo_project.workspace_id)]
    for page in pages:
        response = admin_client.get(page)
        assert response.status_code == 200, (page, response.status_code, response.content[:2000])


def test_adding_a_key_shows_it_once_and_stores_its_digest(admin_client, demo_project):
    response = admin_client.post("/admin/agents/projectapikey/add/",
                                 {"project": demo_project.pk, "name": "ci", "scope": "server"}, follow=True)

    shown = re.search(r"The new key is (cdt_[A-Za-z0-9]{40})", response.content.decode()).group(1)
    row = ProjectApiKey.objects.get()
    assert row.digest == key_digest(shown) and row.name == "ci"
    assert shown not in admin_client.get(admin_url("projectapikey", row.pk)).content.decode()
    assert f"cdt_{row.prefix}…" in admin_client.get("/admin/agents/projectapikey/").content.decode()


def test_adding_a_developer_token(admin_client, user):
    response = admin_client.post("/admin/agents/developertoken/add/", {"user": user.pk, "name": "laptop"},
                                 follow=True)

    shown = re.search(r"The new key is (cdt_acc_[A-Za-z0-9]{40})", response.content.decode()).group(1)
    assert DeveloperToken.objects.get().digest == key_digest(shown)


def test_revoke_action(admin_client, demo_project, client_for):
    row, key = project_api_key_create(project=demo_project)
    admin_client.post("/admin/agents/projectapikey/", {"action": "revoke", "_selected_action": [row.pk]})

    row.refresh_from_db()
    assert row.revoked_at is not None
    response = client_for(key).get("/api/v1/conversations/jane/state")
    assert response.status_code == 401


def test_publish_action_makes_a_production_version(admin_client, demo_project):
    admin_client.post("/admin/agents/project/", {"action": "publish", "_selected_action": [demo_project.pk]})

    project = Project.objects.get()
    assert project.production_version is not None
    assert project.production_version.snapshot["workflows"] == project.document["workflows"]


def test_versions_cannot_be_added_or_changed(admin_client, demo_project):
    version = version_publish(project=demo_project, name="v1")

    assert admin_client.get("/admin/agents/projectversion/add/").status_code == 403
    admin_client.post(admin_url("projectversion", version.pk), {"name": "renamed"})
    assert ProjectVersion.objects.get().name == "v1"


# --- A project document is validated by the engine before it is saved or published.

def project_form(project: Project, **changes) -> dict:
    data = {"workspace": project.workspace_id, "name": project.name, "slug": project.slug,
            "description": project.description or "", "framework": project.framework,
            "language": project.language, "document": json.dumps(project.document)}
    return {**data, **changes}


def form_errors(response, field: str) -> list[str]:
    return [str(error) for error in response.context["adminform"].form.errors.get(field, [])]


def test_an_invalid_document_is_refused_with_its_fault_named(admin_client, published_demo, server_client):
    response = admin_client.post(admin_url("project", published_demo.pk),
                                 project_form(published_demo, document=json.dumps({"workflows": "nope"})))

    assert response.status_code == 200
    assert form_errors(response, "document") == ["workflows: Expected a list."]
    published_demo.refresh_from_db()
    assert isinstance(published_demo.document["workflows"], list)
    interact = server_client.post("/api/v1/conversations/jane/interact",
                                  {"action": {"type": "launch", "payload": None}, "versionId": "development"},
                                  format="json")
    assert interact.status_code == 200


def test_every_fault_of_a_document_is_listed_by_location(admin_client, demo_project):
    document = {**demo_project.document}
    document["workflows"] = [{**document["workflows"][0], "steps": [{"id": "s", "type": "start", "data": {}},
                                                                     {"id": "x", "type": "teleport", "data": {}}]},
                             {"id": "w2", "name": "Second", "steps": [], "connections": []}]
    response = admin_client.post(admin_url("project", demo_project.pk),
                                 project_form(demo_project, document=json.dumps(document)))

    errors = form_errors(response, "document")
    assert any(error.startswith("workflows[0].steps[1]: ") for error in errors), errors
    assert any(error.startswith("workflows[1]: ") and "start" in error for error in errors), errors
    assert Project.objects.get().document == demo_project.document


@pytest.mark.parametrize("document", ['["a"]', '"text"', "42"])
def test_a_document_that_is_not_an_object_is_refused(admin_client, demo_project, document):
    response = admin_client.post(admin_url("project", demo_project.pk),
                                 project_form(demo_project, document=document))

    assert form_errors(response, "document") == ["document: The project document must be a JSON object."]


def test_a_valid_document_is_saved(admin_client, demo_project):
    document = {**demo_project.document, "instructions": "Be brief."}
    response = admin_client.post(admin_url("project", demo_project.pk),
                                 project_form(demo_project, document=json.dumps(document)))

    assert response.status_code == 302
    assert Project.objects.get().document["instructions"] == "Be brief."


def test_adding_a_project_with_an_invalid_document_is_refused(admin_client, workspace):
    response = admin_client.post("/admin/agents/project/add/", {
        "workspace": workspace.pk, "name": "Bot", "slug": "bot", "framework": "conversation-flow", "language": "en",
        "document": json.dumps({"workflows": [{"id": "w", "name": "W", "steps": [], "connections": []}]})})

    assert response.status_code == 200
    assert any(error.startswith("workflows[0]: ") for error in form_errors(response, "document"))
    assert not Project.objects.exists()


def test_publish_refuses_an_invalid_development_document(admin_client, published_demo):
    Project.objects.filter(pk=published_demo.pk).update(document={"workflows": "nope"})  # e.g. written before

    response = admin_client.post("/admin/agents/project/", {"action": "publish",
                                                             "_selected_action": [published_demo.pk]}, follow=True)

    shown = [str(message) for message in response.context["messages"]]
    assert shown == [f"{published_demo.name}: not published, its development document is invalid: "
                     "workflows: Expected a list."]
    assert ProjectVersion.objects.count() == 1
    assert Project.objects.get().production_version_id == published_demo.production_version_id


# --- Keys: what a key grants is fixed when it is made, and a revoked key stays revoked.

def key_form(row: ProjectApiKey, **changes) -> dict:
    return {"project": row.project_id, "name": row.name, "scope": row.scope, "revoked_at_0": "",
            "revoked_at_1": "", **changes}


def test_a_revoked_key_cannot_be_revived_in_its_form(admin_client, demo_project, client_for):
    row, key = project_api_key_create(project=demo_project, name="ci")
    admin_client.post("/admin/agents/projectapikey/", {"action": "revoke", "_selected_action": [row.pk]})
    row.refresh_from_db()
    revoked_at = row.revoked_at

    response = admin_client.post(admin_url("projectapikey", row.pk), key_form(row, name="renamed"))

    assert response.status_code == 302
    row.refresh_from_db()
    assert row.revoked_at == revoked_at and row.name == "renamed"
    assert client_for(key).get("/api/v1/conversations/jane/state").status_code == 401


def test_a_key_keeps_its_project_and_scope(admin_client, demo_project, other_project):
    row, _key = project_api_key_create(project=demo_project, name="ci")

    admin_client.post(admin_url("projectapikey", row.pk),
                      key_form(row, project=other_project.pk, scope="widget",
                               revoked_at_0="2020-01-01", revoked_at_1="00:00:00"))

    row.refresh_from_db()
    assert (row.project_id, row.scope, row.revoked_at) == (demo_project.pk, "server", None)
    page = admin_client.get(admin_url("projectapikey", row.pk)).content.decode()
    assert 'name="project"' not in page and 'name="scope"' not in page and 'name="revoked_at' not in page
    assert 'name="name"' in page


def test_a_developer_token_keeps_its_user(admin_client, user, stranger):
    row, _key = developer_token_create(user=user, name="laptop")

    admin_client.post(admin_url("developertoken", row.pk),
                      {"user": stranger.pk, "name": "laptop", "revoked_at_0": "2020-01-01",
                       "revoked_at_1": "00:00:00"})

    row.refresh_from_db()
    assert (row.user_id, row.revoked_at) == (user.pk, None)
    page = admin_client.get(admin_url("developertoken", row.pk)).content.decode()
    assert 'name="user"' not in page and 'name="revoked_at' not in page


def test_the_add_forms_choose_the_owner_and_scope_but_not_revocation(admin_client):
    key_page = admin_client.get("/admin/agents/projectapikey/add/").content.decode()
    token_page = admin_client.get("/admin/agents/developertoken/add/").content.decode()

    assert 'name="project"' in key_page and 'name="scope"' in key_page and 'name="revoked_at' not in key_page
    assert 'name="user"' in token_page and 'name="revoked_at' not in token_page


# --- The version production runs cannot be deleted; the others can.

def test_the_production_version_cannot_be_deleted(admin_client, demo_project):
    older = version_publish(project=demo_project, name="v1")
    production = version_publish(project=demo_project, name="v2")
    url = admin_url("projectversion", production.pk, "delete")

    page = admin_client.get(url)
    refused = admin_client.post(url, {"post": "yes"})

    assert page.status_code == refused.status_code == 200
    message = f"Version {production.pk} is the production version of {demo_project.name} and cannot be deleted"
    assert message in page.content.decode() and message in refused.content.decode()
    assert ProjectVersion.objects.filter(pk=production.pk).exists()
    assert admin_client.post(admin_url("projectversion", older.pk, "delete"), {"post": "yes"}).status_code == 302
    assert list(ProjectVersion.objects.values_list("pk", flat=True)) == [production.pk]


def test_bulk_delete_refuses_a_selection_holding_the_production_version(admin_client, demo_project):
    older = version_publish(project=demo_project, name="v1")
    production = version_publish(project=demo_project, name="v2")
    bulk = {"action": "delete_selected", "post": "yes"}

    response = admin_client.post("/admin/agents/projectversion/",
                                 {**bulk, "_selected_action": [older.pk, production.pk]})

    assert response.status_code == 200
    assert "cannot be deleted; publish another version first" in response.content.decode()
    assert ProjectVersion.objects.count() == 2
    admin_client.post("/admin/agents/projectversion/", {**bulk, "_selected_action": [older.pk]})
    assert list(ProjectVersion.objects.values_list("pk", flat=True)) == [production.pk]
    assert Project.objects.get().production_version_id == production.pk


def test_a_project_can_still_be_deleted_with_its_versions(admin_client, published_demo):
    response = admin_client.post(admin_url("project", published_demo.pk, "delete"), {"post": "yes"})

    assert response.status_code == 302
    assert not Project.objects.exists() and not ProjectVersion.objects.exists()


# --- No page shows a secret: a key is shown once, in the message of the request that made it.

def test_no_admin_page_shows_a_key_or_its_digest(admin_client, demo_project, user):
    made = admin_client.post("/admin/agents/projectapikey/add/",
                             {"project": demo_project.pk, "name": "ci", "scope": "server"})
    shown_once = admin_client.get(made["Location"]).content.decode()
    key = re.search(r"The new key is (cdt_[A-Za-z0-9]{40})", shown_once).group(1)
    _token_row, token = developer_token_create(user=user, name="laptop")
    key_row, token_row = ProjectApiKey.objects.get(), DeveloperToken.objects.get()

    pages = ["/admin/agents/projectapikey/", admin_url("projectapikey", key_row.pk),
             admin_url("projectapikey", key_row.pk, "delete"), "/admin/agents/developertoken/",
             admin_url("developertoken", token_row.pk), admin_url("project", demo_project.pk),
             admin_url("project", demo_project.pk, "delete"), "/admin/agents/projectapikey/?q=ci"]
    for page in pages:
        html = admin_client.get(page).content.decode()
        for secret in (key, key[len("cdt_"):], token, token[len("cdt_acc_"):], key_row.digest, token_row.digest):
            assert secret not in html, page
    assert shown_once.count(key) == 1


# --- Tool secrets: shown redacted, sealed on save, a redacted value keeps the stored one.

ADMIN_SECRET = "sk-admin-5e8d2c0a9b17"


def secret_tool(value: str) -> dict:
    return {"id": "lookup", "description": "d", "http": {"method": "GET", "url": "https://api.example.com/x",
                                                         "headers": {"Authorization": value}}}


@pytest.fixture
def project_with_secret(workspace):
    from agents.services import project_create

    return project_create(workspace=workspace, name="Secret", document={"tools": [secret_tool(ADMIN_SECRET)]})


def test_the_change_form_shows_the_document_redacted(admin_client, project_with_secret):
    from agents.secrets import REDACTED

    html = admin_client.get(admin_url("project", project_with_secret.pk)).content.decode()

    assert ADMIN_SECRET not in html and '"$secret"' not in html
    assert REDACTED in html


def test_saving_the_redacted_document_keeps_the_secret(admin_client, project_with_secret):
    from agents.secrets import document_open, document_redact

    shown = {**document_redact(project_with_secret.document), "instructions": "Be brief."}
    response = admin_client.post(admin_url("project", project_with_secret.pk),
                                 project_form(project_with_secret, document=json.dumps(shown)))

    assert response.status_code == 302
    stored = Project.objects.get().document
    assert stored["instructions"] == "Be brief."
    assert stored["tools"][0]["http"]["headers"] == project_with_secret.document["tools"][0]["http"]["headers"]
    assert document_open(stored)["tools"][0]["http"]["headers"]["Authorization"] == ADMIN_SECRET


def test_a_new_value_typed_in_the_admin_is_sealed(admin_client, project_with_secret):
    from agents.secrets import document_open, document_redact

    shown = document_redact(project_with_secret.document)
    shown["tools"][0]["http"]["headers"]["Authorization"] = "Bearer typed-in-the-admin"
    admin_client.post(admin_url("project", project_with_secret.pk),
                      project_form(project_with_secret, document=json.dumps(shown)))

    stored = Project.objects.get().document
    assert "typed-in-the-admin" not in json.dumps(stored)
    assert document_open(stored)["tools"][0]["http"]["headers"]["Authorization"] == "Bearer typed-in-the-admin"


def test_a_redacted_value_with_nothing_to_keep_is_refused_in_the_admin(admin_client, workspace):
    from agents.secrets import REDACTED

    response = admin_client.post("/admin/agents/project/add/", {
        "workspace": workspace.pk, "name": "Bot", "slug": "bot", "framework": "conversation-flow", "language": "en",
        "document": json.dumps({"tools": [secret_tool(REDACTED)]})})

    assert response.status_code == 200
    assert [error.split(":")[0] for error in form_errors(response, "document")] == [
        "tools[0].http.headers.Authorization"]
    assert not Project.objects.exists()


# --- The project page outlines its workflows above the JSON, and validates like the API.

def outline_of(page: str) -> str:
    start = page.index('class="conduet-outline"')
    assert start < page.index('name="document"'), "the outline comes before the JSON field"
    return page[start:page.index("</div>", start)]


def test_the_project_page_outlines_the_demos_workflows(admin_client, demo_project):
    page = admin_client.get(admin_url("project", demo_project.pk)).content.decode()

    outline = re.sub(r"\s+", " ", outline_of(page))
    for workflow in demo_project.document["workflows"]:
        assert f"<strong>{workflow['name']}</strong> <code>{workflow['id']}</code>" in outline
        for step in workflow["steps"]:
            assert f'id="outline-{workflow["id"]}-{step["id"]}"' in outline
            assert f'<code>{step["id"]}</code> <strong class="step-type">{step["type"]}</strong>' in outline
    # Summaries, and each port with the step it leads to (a link to it), named buttons and unconnected ports.
    assert "Hi {{ customer_name }}! Welcome to Acme Support." in outline
    assert "What can I help you with? [Account help | Opening hours | Talk to a person]" in outline
    assert "→ workflow Account help" in outline
    assert "What&#x27;s the email on your account? → email" in outline
    assert "if plan_tier == &#x27;premium&#x27;" in outline and "priority = &#x27;high&#x27;" in outline
    assert 'button:0 “Account help” → <a href="#outline-wf_welcome-to_account">to_account</a>' in outline
    assert 'noMatch → <a href="#outline-wf_welcome-answer">answer</a>' in outline
    assert 'true → <a href="#outline-wf_account-vip">vip</a>' in outline
    assert 'false → <a href="#outline-wf_account-thanks">thanks</a>' in outline
    assert "next → <em>not connected</em>" in outline  # the jumps return to nothing
    connections = sum(len(w["connections"]) for w in demo_project.document["workflows"])
    assert outline.count('<a href="#outline-') == connections


def test_the_outline_escapes_what_the_document_says(admin_client, demo_project):
    Project.objects.filter(pk=demo_project.pk).update(document={"workflows": [{
        "id": "wf_x", "name": "<script>alert(1)</script>",
        "steps": [{"id": "s", "type": "message", "data": {"text": "<b>bold</b>"}}], "connections": []}]})

    outline = outline_of(admin_client.get(admin_url("project", demo_project.pk)).content.decode())

    assert "<script>" not in outline and "&lt;script&gt;" in outline and "&lt;b&gt;bold" in outline


@pytest.mark.parametrize("document", [
    {"workflows": "nope"}, {"workflows": [1, None, {"steps": "x", "connections": [1]}]},
    {"workflows": [{"id": "w", "steps": [{"id": "b", "type": "buttons", "data": {"buttons": [1]}},
                                         {"type": "teleport", "data": []}],
                    "connections": [{"source": "b", "port": "button:0", "target": "gone"}, {"port": None}]}]},
], ids=["not a list", "odd items", "odd steps and connections"])
def test_the_outline_of_a_malformed_stored_document_still_renders(admin_client, demo_project, document):
    Project.objects.filter(pk=demo_project.pk).update(document=document)  # e.g. written by an old release

    response = admin_client.get(admin_url("project", demo_project.pk))

    assert response.status_code == 200
    if "gone" in json.dumps(document):
        assert "gone <em>(no such step)</em>" in re.sub(r"\s+", " ", outline_of(response.content.decode()))


def test_the_add_page_has_an_empty_outline(admin_client):
    page = admin_client.get("/admin/agents/project/add/").content.decode()
    assert "No workflows yet." in page


@pytest.mark.parametrize(("field", "value", "message"), [
    ("language", "not a language!", "Expected a language tag such as en or pt-BR."),
    ("name", "   ", None),
])
def test_the_projects_own_fields_are_validated_like_the_api(admin_client, demo_project, field, value, message):
    response = admin_client.post(admin_url("project", demo_project.pk),
                                 project_form(demo_project, **{field: value}))

    assert response.status_code == 200
    errors = form_errors(response, field)
    assert errors and (message is None or errors == [message])
    assert getattr(Project.objects.get(), field) == getattr(demo_project, field)


def test_the_admin_refuses_what_the_api_refuses(admin_client, demo_project, developer_token, client_for):
    """The same document, through both doors: refused by both, with the same fault named."""
    document = {**demo_project.document, "variables": [{"name": "email", "type": "string"},
                                                       {"name": "email", "type": "string"}]}
    api = client_for(developer_token).patch(f"/api/v1/projects/{demo_project.pk}", {"variables": document["variables"]},
                                            format="json")
    assert api.status_code == 400
    api_faults = [f"{where}: {message}" for where, found in api.json()["details"].items() for message in found]

    response = admin_client.post(admin_url("project", demo_project.pk),
                                 project_form(demo_project, document=json.dumps(document)))

    assert form_errors(response, "document") == api_faults
    assert Project.objects.get().document == demo_project.document


# --- Ids the admin's URL quoting would misread: about one in 190 of ours begins its random part with such a pair.

def test_objects_whose_ids_read_as_escapes_open_save_and_delete(admin_client, workspace, monkeypatch):
    from agents import ids
    from agents.demo import DEMO_PROJECT
    from agents.services import project_create

    random_base62 = ids.random_base62
    monkeypatch.setattr(ids, "random_base62", lambda length: "2F" + random_base62(length - 2))
    project = project_create(workspace=workspace, name=DEMO_PROJECT["name"], document=DEMO_PROJECT)
    older = version_publish(project=project, name="v1")
    version_publish(project=project, name="v2")
    row, _key = project_api_key_create(project=project, name="ci")
    assert project.pk.startswith("proj_2F") and older.pk.startswith("ver_2F") and row.pk.startswith("key_2F")
    # Unquoted, the admin reads `proj_2F…` as `proj/…`: "doesn't exist", a redirect to the index.
    assert admin_client.get(f"/admin/agents/project/{project.pk}/change/")["Location"] == "/admin/"

    document = {**project.document, "instructions": "Be brief."}
    saved = admin_client.post(admin_url("project", project.pk), project_form(project, document=json.dumps(document)))
    renamed = admin_client.post(admin_url("projectapikey", row.pk), key_form(row, name="renamed"))
    deleted = admin_client.post(admin_url("projectversion", older.pk, "delete"), {"post": "yes"})

    assert (saved["Location"], renamed["Location"]) == ("/admin/agents/project/", "/admin/agents/projectapikey/")
    assert Project.objects.get().document["instructions"] == "Be brief."
    row.refresh_from_db()
    assert row.name == "renamed"
    assert deleted.status_code == 302 and not ProjectVersion.objects.filter(pk=older.pk).exists()
