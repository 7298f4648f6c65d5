"""The management commands a newcomer types, and `rundemo`, the README's run command."""
import json
import os
import re
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from agents.ids import key_digest
from agents.models import DeveloperToken, Membership, Project, ProjectApiKey, ProjectVersion, Workspace
from agents.services import version_publish

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_rundemo_sets_up_a_working_agent_and_prints_a_fresh_key(client_for):
    output = run("rundemo", "--no-serve", "--port", "8123")

    key = re.search(r"API key \(shown once\):\s+(cdt_[A-Za-z0-9]{40})", output).group(1)
    assert "curl -s -X POST http://127.0.0.1:8123/api/v1/conversations/jane/interact" in output
    response = client_for(key).post("/api/v1/conversations/jane/interact",
                                    {"action": {"type": "launch", "payload": None}, "versionId": "production"},
                                    format="json")
    assert response.status_code == 200
    assert response.json()[0]["payload"]["message"] == "Hi there! Welcome to Acme Support."
    password = re.search(r"user demo, password (\S+)", output).group(1)
    assert get_user_model().objects.get(username="demo").check_password(password)


def test_rundemo_is_idempotent_but_issues_a_new_key_each_time():
    first = run("rundemo", "--no-serve")
    second = run("rundemo", "--no-serve")

    assert Workspace.objects.count() == 1
    assert Project.objects.count() == ProjectVersion.objects.count() == 2  # Acme Support and Acme Copilot
    assert Membership.objects.get().role == "owner"
    keys = [re.findall(r"Bearer (cdt_\w{40})", text) for text in (first, second)]
    assert len(set(keys[0])) == len(set(keys[1])) == 2 and not set(keys[0]) & set(keys[1])
    assert {k.digest for k in ProjectApiKey.objects.all()} == {key_digest(k) for k in keys[0] + keys[1]}


def test_rundemo_republishes_when_the_demo_changed():
    run("rundemo", "--no-serve")
    project = Project.objects.get(slug="acme-support")
    project.document["settings"]["fallbackMessage"] = "edited by hand"
    project.save()
    version_publish(project=project, name="hand edit")

    run("rundemo", "--no-serve")

    project.refresh_from_db()
    assert project.document["settings"]["fallbackMessage"].startswith("Sorry")
    assert ProjectVersion.objects.filter(project=project).count() == 3
    assert project.production_version.snapshot["settings"]["fallbackMessage"].startswith("Sorry")


def test_workspace_user_project_key_and_token_from_the_command_line(tmp_path):
    run("workspace_create", "--name", "Globex", "--slug", "globex")
    output = run("user_create", "alice", "--workspace", "globex", "--role", "admin")
    password = re.search(r"Password: (\S+)", output).group(1)
    assert get_user_model().objects.get(username="alice").check_password(password)
    assert Membership.objects.get(user__username="alice").role == "admin"

    document = tmp_path / "agent.json"
    document.write_text(json.dumps({"instructions": "Be brief."}))
    project_id = run("project_create", "--workspace", "globex", "--name", "Bot", "--file", str(document)).strip()
    assert Project.objects.get(id=project_id).document["instructions"] == "Be brief."

    key = run("key_create", "--project", project_id, "--scope", "widget").strip()
    assert ProjectApiKey.objects.get(digest=key_digest(key)).scope == "widget"
    token = run("token_create", "--user", "alice").strip()
    assert token.startswith("cdt_acc_") and DeveloperToken.objects.get().digest == key_digest(token)
    version_id = run("version_publish", "--project", project_id, "--name", "v1").strip()
    assert Project.objects.get(id=project_id).production_version_id == version_id


def test_project_create_with_the_demo():
    run("workspace_create", "--name", "Globex")
    project_id = run("project_create", "--workspace", "globex", "--name", "Support", "--demo").strip()
    assert len(Project.objects.get(id=project_id).document["workflows"]) == 3


@pytest.mark.parametrize(("args", "message"), [
    (("project_create", "--workspace", "nope", "--name", "X"), "No workspace with the slug 'nope'"),
    (("key_create", "--project", "proj_nope"), "No project with the id 'proj_nope'"),
    (("token_create", "--user", "nobody"), "No user named 'nobody'"),
    (("version_publish", "--project", "proj_nope"), "No project with the id"),
    (("workspace_create", "--name", "X", "--owner", "nobody"), "No user named 'nobody'"),
    (("user_create", "bob", "--workspace", "nope"), "No workspace with the slug 'nope'"),
])
def test_commands_name_what_they_could_not_find(args, message):
    with pytest.raises(CommandError, match=message):
        run(*args)
    assert ProjectApiKey.objects.count() == DeveloperToken.objects.count() == 0
    assert not get_user_model().objects.filter(username="bob").exists()


def test_project_create_rejects_an_invalid_document(tmp_path):
    run("workspace_create", "--name", "Globex")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"workflows": [{"id": "w", "name": "W", "steps": [], "connections": []}]}))

    with pytest.raises(CommandError, match=r"workflows\[0\].*exactly one start step"):
        run("project_create", "--workspace", "globex", "--name", "Bot", "--file", str(bad))
    assert Project.objects.count() == 0


def test_duplicate_workspace_and_user_are_errors():
    run("workspace_create", "--name", "Globex")
    with pytest.raises(CommandError, match="already exists"):
        run("workspace_create", "--name", "Globex")
    run("user_create", "alice", "--password", "s3cret-enough")
    with pytest.raises(CommandError, match="already exists"):
        run("user_create", "alice")


def test_key_create_rejects_an_unknown_scope():
    with pytest.raises(CommandError):
        run("key_create", "--project", "proj_x", "--scope", "root")


def test_rundemo_serves_in_development_mode(monkeypatch):
    """rundemo is the development command: the daphne it runs may start on the development SECRET_KEY."""
    calls = []
    monkeypatch.delenv("CONDUET_DEVELOPMENT", raising=False)
    monkeypatch.setattr("os.execvpe", lambda file, args, env: calls.append((file, args, env)))
    monkeypatch.setattr("os.execvp", lambda file, args: calls.append((file, args, dict(os.environ))))
    workers = []
    monkeypatch.setattr("subprocess.Popen", lambda args, **kwargs: workers.append(args))

    run("rundemo", "--port", "8123")

    [(_file, args, env)] = calls
    [worker] = workers  # the knowledge base's worker, beside the server
    assert worker[-3:] == ["worker", "--no-reload", "--stop-with-parent"]
    assert args[-5:] == ["-b", "127.0.0.1", "-p", "8123", "config.asgi:application"]
    assert env["CONDUET_DEVELOPMENT"] == "true"
    assert "127.0.0.1" in env["CONDUET_OUTBOUND_ALLOWLIST"].split(",")  # the copilot's tool calls this server


def test_rundemo_without_a_model_says_what_to_set_and_the_copilot_says_it_too(client_for, settings):
    settings.CONDUET_LLM_BASE_URL = ""
    output = run("rundemo", "--no-serve", "--port", "8123")

    assert "Acme Copilot" in output and "set CONDUET_LLM_BASE_URL" in output
    key = re.search(r"Its API key \(shown once\): (cdt_\w{40})", output).group(1)
    response = client_for(key).post("/api/v1/conversations/jane/interact", {
        "action": {"type": "text", "payload": "Where is my order A-1001?"}, "versionId": "production"},
        format="json")
    assert response.status_code == 200
    assert "needs a language model" in response.json()[0]["payload"]["message"]
    copilot = Project.objects.get(slug="acme-copilot")
    assert copilot.framework == "agentic"
    assert copilot.document["tools"][0]["http"]["url"] == "http://127.0.0.1:8123/demo/orders/{{ order_id }}"
