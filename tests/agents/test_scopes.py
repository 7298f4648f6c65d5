"""API.md §1's table of who may call what, one rule at a time: a project key (either scope) is refused on every
endpoint of the Project Management API; a developer token reaches only its user's workspaces' projects (404 for
any other) and never the public Project API; a widget key reaches only the Project API and interact, its stream
and GET state for `anon_` users on production. A refused call writes nothing."""
import copy

import pytest

from agents.demo import DEMO_PROJECT
from agents.models import Project, ProjectApiKey, ProjectVersion
from agents.services import project_api_key_create, version_publish
from conversations.models import Conversation
from tests.asserts import assert_error
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db

LAUNCH = {"action": {"type": "launch", "payload": None}}
WORKFLOW = {"id": "wf_extra", "name": "Extra", "steps": [{"id": "start", "type": "start", "data": {}}],
            "connections": []}
TOOL = {"id": "lookup", "description": "Look something up.",
        "parameters": {"type": "object", "properties": {}}, "http": {"method": "GET", "url": "https://example.com"}}

# The 24 endpoints of the Project Management API (API.md §3), with a body each would accept.
MANAGEMENT = [
    ("get", "/api/v1/projects", None),
    ("post", "/api/v1/projects", {"name": "New"}),
    ("get", "/api/v1/projects/templates", None),
    ("post", "/api/v1/projects/templates", {"templateId": "customer-support", "name": "New"}),
    ("post", "/api/v1/projects/generate", {"brief": "A bot that books tables."}),
    ("post", "/api/v1/projects/import", {"name": "Imported", "workflows": DEMO_PROJECT["workflows"]}),
    ("get", "/api/v1/projects/{pid}", None),
    ("patch", "/api/v1/projects/{pid}", {"instructions": "Be brief."}),
    ("delete", "/api/v1/projects/{pid}", None),
    ("post", "/api/v1/projects/{pid}/persist", {k: v for k, v in DEMO_PROJECT.items() if k != "slug"}),
    ("post", "/api/v1/projects/{pid}/chat", LAUNCH),
    ("post", "/api/v1/projects/{pid}/chat/stream", LAUNCH),
    ("get", "/api/v1/projects/{pid}/workflows", None),
    ("put", "/api/v1/projects/{pid}/workflows/wf_extra", WORKFLOW),
    ("delete", "/api/v1/projects/{pid}/workflows/wf_hours", None),
    ("put", "/api/v1/projects/{pid}/tools/lookup", TOOL),
    ("delete", "/api/v1/projects/{pid}/tools/lookup", None),
    ("put", "/api/v1/projects/{pid}/variables", []),
    ("get", "/api/v1/projects/{pid}/versions", None),
    ("post", "/api/v1/projects/{pid}/versions", {"name": "v2"}),
    ("post", "/api/v1/projects/{pid}/versions/{vid}/promote", None),
    ("get", "/api/v1/projects/{pid}/api-keys", None),
    ("post", "/api/v1/projects/{pid}/api-keys", {"name": "x", "scope": "server"}),
    ("delete", "/api/v1/projects/{pid}/api-keys/{kid}", None),
]
MANAGEMENT_IDS = [f"{method.upper()} {path.removeprefix('/api/v1')}" for method, path, _body in MANAGEMENT]


def test_the_matrix_covers_the_24_endpoints():
    assert len({(method, path) for method, path, _body in MANAGEMENT}) == 24


def snapshot_of_writes(project: Project) -> tuple:
    """Everything a management call could change."""
    project.refresh_from_db()
    return (Project.objects.count(), copy.deepcopy(project.document), project.name, project.production_version_id,
            ProjectVersion.objects.count(), sorted(ProjectApiKey.objects.values_list("pk", "revoked_at")),
            Conversation.objects.count())


def call(client, method: str, path: str, body, project: Project):
    kid = ProjectApiKey.objects.filter(project=project).values_list("pk", flat=True).first() or "key_none"
    url = path.format(pid=project.pk, vid=project.production_version_id, kid=kid)
    if body is None:
        return getattr(client, method)(url)
    return getattr(client, method)(url, body, format="json")


@pytest.fixture
def project(published_demo):
    """The demo, published, with a server and a widget key."""
    project_api_key_create(project=published_demo, name="server")
    return published_demo


@pytest.mark.parametrize("scope", ["server", "widget"])
@pytest.mark.parametrize(("method", "path", "body"), MANAGEMENT, ids=MANAGEMENT_IDS)
def test_a_project_key_is_refused_by_every_management_endpoint(project, client_for, scope, method, path, body):
    _row, key = project_api_key_create(project=project, name=scope, scope=scope)
    before = snapshot_of_writes(project)

    response = call(client_for(key), method, path, body, project)

    assert_error(response, 403, "FORBIDDEN")
    assert "developer token" in response.json()["error"]
    assert snapshot_of_writes(project) == before


@pytest.mark.parametrize(("method", "path", "body"), [m for m in MANAGEMENT if "{pid}" in m[1]],
                         ids=[i for i, m in zip(MANAGEMENT_IDS, MANAGEMENT, strict=True) if "{pid}" in m[1]])
def test_a_developer_token_sees_only_its_users_workspaces(project, stranger, client_for, method, path, body):
    """The stranger is a member of another workspace: the demo project is, for them, a 404 on every endpoint."""
    from agents.services import developer_token_create

    MembershipFactory(user=stranger)
    _row, token = developer_token_create(user=stranger)
    before = snapshot_of_writes(project)

    response = call(client_for(token), method, path, body, project)

    assert_error(response, 404, "NOT_FOUND")
    assert snapshot_of_writes(project) == before


def test_a_developer_token_lists_only_its_users_projects(project, stranger, client_for):
    from agents.services import developer_token_create

    MembershipFactory(user=stranger)
    _row, token = developer_token_create(user=stranger)

    assert client_for(token).get("/api/v1/projects").json()["data"] == []


# --- the public Project API takes project keys only


@pytest.mark.parametrize("path", ["/api/v1/project", "/api/v1/project/versions"])
def test_a_developer_token_is_refused_by_the_public_project_api(project, developer_token, client_for, path):
    for client in (client_for(developer_token), client_for(developer_token, HTTP_X_PROJECT_ID=project.pk)):
        body = assert_error(client.get(path), 403, "FORBIDDEN")
        assert "project key" in body["error"]


# --- widget keys: the Project API, and anon_ users' interact, stream and state on production


@pytest.fixture
def widget(project, client_for):
    _row, key = project_api_key_create(project=project, name="site", scope="widget")
    return client_for(key)


@pytest.mark.parametrize(("method", "path", "body"), [
    ("get", "/api/v1/project", None),
    ("get", "/api/v1/project/versions", None),
    ("post", "/api/v1/conversations/anon_1/interact", LAUNCH),
    ("post", "/api/v1/conversations/anon_1/interact", {**LAUNCH, "versionId": "production"}),
    ("post", "/api/v1/conversations/anon_1/interact/stream", LAUNCH),
], ids=["project", "versions", "interact", "interact on production", "interact/stream"])
def test_what_a_widget_key_may_do(widget, method, path, body):
    response = getattr(widget, method)(path, body, format="json") if body else getattr(widget, method)(path)
    assert response.status_code == 200, response.content


def test_a_widget_key_reads_an_anonymous_users_state(widget):
    widget.post("/api/v1/conversations/anon_1/interact", LAUNCH, format="json")

    state = widget.get("/api/v1/conversations/anon_1/state")

    assert state.status_code == 200 and state.json()["versionId"].startswith("ver_")


def test_a_widget_key_may_name_productions_own_version_id(widget, project):
    response = widget.post("/api/v1/conversations/anon_1/interact",
                           {**LAUNCH, "versionId": project.production_version_id}, format="json")
    assert response.status_code == 200, response.content


KB = "/api/v1/knowledge-base"


@pytest.mark.parametrize(("method", "path", "body"), [
    ("get", KB, None),
    ("post", KB, {"name": "x", "type": "text", "content": "x"}),
    ("get", f"{KB}/doc_x", None),
    ("delete", f"{KB}/doc_x", None),
    ("post", f"{KB}/upload", {"name": "x", "url": "https://example.com"}),
    ("post", f"{KB}/search", {"query": "refunds"}),
    ("patch", "/api/v1/conversations/anon_1/variables", {"plan_tier": "premium"}),
    ("put", "/api/v1/conversations/anon_1/state", {"variables": {}}),
    ("delete", "/api/v1/conversations/anon_1/state", None),
    ("post", "/api/v1/conversations/anon_1/interact/stop", None),
    ("post", "/api/v1/conversations/jane/interact", LAUNCH),
    ("post", "/api/v1/conversations/jane/interact/stream", LAUNCH),
    ("get", "/api/v1/conversations/jane/state", None),
    ("post", "/api/v1/conversations/anon_1/interact", {**LAUNCH, "versionId": "development"}),
    ("post", "/api/v1/conversations/anon_1/interact/stream", {**LAUNCH, "versionId": "development"}),
    ("post", "/api/v1/conversations/anon_1/interact", {**LAUNCH, "config": {"debug": True}}),
], ids=["kb list", "kb create", "kb get", "kb delete", "kb upload", "kb search", "variables patch", "state put",
        "state delete", "stop", "interact named user", "stream named user", "state of a named user",
        "interact development", "stream development", "debug traces"])
def test_what_a_widget_key_may_not_do(widget, method, path, body):
    response = getattr(widget, method)(path, body, format="json") if body else getattr(widget, method)(path)

    assert_error(response, 403, "FORBIDDEN")
    assert Conversation.objects.count() == 0


def test_a_widget_key_may_not_run_another_version(widget, project):
    older = project.production_version_id
    version_publish(project=project, name="newer")

    response = widget.post("/api/v1/conversations/anon_1/interact", {**LAUNCH, "versionId": older}, format="json")

    assert_error(response, 403, "FORBIDDEN")
    assert Conversation.objects.count() == 0


@pytest.mark.parametrize("path", ["/api/v1/analytics", "/api/v1/transcripts", "/api/v1/anything-else"])
def test_a_widget_key_is_refused_outside_its_paths_by_the_default_permission(path):
    """Analytics and transcripts are not built yet: the rule of the default permission (every DRF view's) is tested
    on its own, so that they are in scope from their first line."""
    from agents.authentication import Credential, scope_refusal

    widget = Credential(kind="project", key_id="key_x", scope="widget")
    server = Credential(kind="project", key_id="key_y", scope="server")
    assert "widget key" in scope_refusal(widget, path)
    assert scope_refusal(server, path) is None
    assert scope_refusal(widget, "/api/v1/project") is None
    assert scope_refusal(widget, "/api/v1/projects") is not None
    assert scope_refusal(widget, "/api/v1/projectsx") is not None


def test_a_widget_key_may_resume_its_anonymous_users_stream(widget):
    """GET interact/stream (the resume) is part of interact/stream, which the widget uses: a dropped page picks up
    its turn's events; for a named user it is refused like the rest."""
    from asgiref.sync import async_to_sync

    from conversations.models import Message

    async def read(response) -> bytes:
        return b"".join([chunk async for chunk in response.streaming_content])

    widget.post("/api/v1/conversations/anon_1/interact", LAUNCH, format="json")
    turn_id = Message.objects.get(role="assistant").turn_id

    resumed = widget.get("/api/v1/conversations/anon_1/interact/stream", {"turn": turn_id})

    assert resumed.status_code == 200
    body = async_to_sync(read)(resumed)
    assert b"Welcome to Acme Support" in body and body.endswith(b"data: [DONE]\n\n")
    assert_error(widget.get("/api/v1/conversations/jane/interact/stream", {"turn": turn_id}), 403, "FORBIDDEN")
