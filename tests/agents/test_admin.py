"""Admin for agents and keys: keys are created by the service and shown once, revocable; versions read-only."""
import re

import pytest

from agents.ids import key_digest
from agents.models import DeveloperToken, Project, ProjectApiKey, ProjectVersion
from agents.services import project_api_key_create, version_publish

pytestmark = pytest.mark.django_db


def test_every_admin_page_renders(admin_client, demo_project, developer_token, project_key):
    version = version_publish(project=demo_project)
    pages = ["/admin/", "/admin/agents/workspace/", "/admin/agents/workspace/add/", "/admin/agents/membership/",
             "/admin/agents/project/", f"/admin/agents/project/{demo_project.pk}/change/",
             "/admin/agents/projectversion/", f"/admin/agents/projectversion/{version.pk}/change/",
             "/admin/agents/projectapikey/", "/admin/agents/projectapikey/add/",
             f"/admin/agents/projectapikey/{ProjectApiKey.objects.get().pk}/change/",
             "/admin/agents/developertoken/", "/admin/agents/developertoken/add/",
             f"/admin/agents/workspace/{demo_project.workspace_id}/change/"]
    for page in pages:
        assert admin_client.get(page).status_code == 200, page


def test_adding_a_key_shows_it_once_and_stores_its_digest(admin_client, demo_project):
    response = admin_client.post("/admin/agents/projectapikey/add/",
                                 {"project": demo_project.pk, "name": "ci", "scope": "server"}, follow=True)

    shown = re.search(r"The new key is (cdt_[A-Za-z0-9]{40})", response.content.decode()).group(1)
    row = ProjectApiKey.objects.get()
    assert row.digest == key_digest(shown) and row.name == "ci"
    assert shown not in admin_client.get(f"/admin/agents/projectapikey/{row.pk}/change/").content.decode()
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
    admin_client.post(f"/admin/agents/projectversion/{version.pk}/change/", {"name": "renamed"})
    assert ProjectVersion.objects.get().name == "v1"
