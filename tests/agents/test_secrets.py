"""Tool secrets at rest (agents/secrets.py): sealed on every write, redacted on every output, opened only for the
runtime spec — and the plaintext never in a stored row, an admin page, a log line or an API response, while it
still reaches the tool server."""
import importlib
import json
import logging

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

from agents.models import Project, ProjectVersion
from agents.runtime import DocumentError
from agents.secrets import REDACTED, document_open, document_redact, document_seal, is_sealed
from agents.services import project_api_key_create, project_create, project_update, version_publish
from tests.admin_urls import admin_url

SECRET = "sk-live-4f9c1b7e2a6d8035"
MCP_SECRET = "mcp-token-91e0c3b5d7a2"


def document(url: str = "https://api.example.com", *, secret: str = SECRET, path: str = "/echo") -> dict:
    """One HTTP tool with a secret header (called by the flow), and an MCP server with one."""
    return {
        "tools": [
            {"id": "lookup", "description": "Looks up", "http": {
                "method": "GET", "url": f"{url}{path}", "headers": {"Authorization": f"Bearer {secret}",
                                                                   "X-Plain": "not secret either"}}},
            {"id": "docs", "kind": "mcp", "mcp": {"url": "https://docs.example.com/mcp",
                                                  "headers": {"X-Api-Key": MCP_SECRET}}},
        ],
        "workflows": [{"id": "wf_main", "name": "Main", "steps": [
            {"id": "start", "type": "start", "data": {}},
            {"id": "call", "type": "api", "data": {"tool": "lookup", "save": {"seen": "method"}}},
            {"id": "ok", "type": "message", "data": {"text": "Looked it up."}},
            {"id": "failed", "type": "message", "data": {"text": "The lookup failed."}},
        ], "connections": [
            {"source": "start", "port": "next", "target": "call"},
            {"source": "call", "port": "next", "target": "ok"},
            {"source": "call", "port": "error", "target": "failed"},
        ]}],
    }


def headers_of(doc: dict, i: int = 0, section: str = "http") -> dict:
    return doc["tools"][i][section]["headers"]


@pytest.fixture
def keys(settings):
    """Two Fernet keys; none configured yet (the key derived from SECRET_KEY)."""
    settings.CONDUET_SECRET_KEYS = []
    return Fernet.generate_key().decode(), Fernet.generate_key().decode()


# --- the document functions

def test_seal_open_and_redact_round_trip(keys):
    plain = document()
    sealed = document_seal(plain)

    assert is_sealed(headers_of(sealed)["Authorization"]) and is_sealed(headers_of(sealed, 1, "mcp")["X-Api-Key"])
    assert is_sealed(headers_of(sealed)["X-Plain"])  # every header value is treated as a secret
    assert SECRET not in json.dumps(sealed) and MCP_SECRET not in json.dumps(sealed)
    assert document_open(sealed) == plain
    redacted = document_redact(sealed)
    assert headers_of(redacted) == {"Authorization": REDACTED, "X-Plain": REDACTED}
    assert headers_of(redacted, 1, "mcp") == {"X-Api-Key": REDACTED}
    assert redacted["workflows"] == plain["workflows"]
    assert plain == document()  # arguments are never changed


def test_rotation_reads_old_values_and_seals_with_the_first_key(settings, keys):
    old, new = keys
    settings.CONDUET_SECRET_KEYS = [old]
    sealed_old = document_seal(document())

    settings.CONDUET_SECRET_KEYS = [new, old]
    assert document_open(sealed_old) == document()
    sealed_new = document_seal(document())
    token = headers_of(sealed_new)["Authorization"]["$secret"]
    assert Fernet(new).decrypt(token.encode()) == f"Bearer {SECRET}".encode()
    with pytest.raises(InvalidToken):
        Fernet(old).decrypt(token.encode())

    settings.CONDUET_SECRET_KEYS = [new]  # the old key dropped too early
    with pytest.raises(DocumentError) as raised:
        document_open(sealed_old)
    assert set(raised.value.details) == {"tools[0].http.headers.Authorization", "tools[0].http.headers.X-Plain",
                                         "tools[1].mcp.headers.X-Api-Key"}
    assert "'Authorization' of tool 'lookup'" in raised.value.details["tools[0].http.headers.Authorization"][0]


def test_values_sealed_with_the_derived_key_still_open_once_keys_are_configured(settings, keys):
    sealed = document_seal(document())  # no keys: the one derived from SECRET_KEY

    settings.CONDUET_SECRET_KEYS = [keys[0]]
    assert document_open(sealed) == document()


def test_a_bad_key_setting_fails_loudly(settings):
    settings.CONDUET_SECRET_KEYS = ["not-a-fernet-key"]

    with pytest.raises(ImproperlyConfigured, match=r"CONDUET_SECRET_KEYS\[0\]"):
        document_seal(document())


def test_the_redaction_marker_keeps_the_stored_value(keys):
    stored = document_seal(document())
    edited = document_redact(stored)
    edited["tools"][0]["description"] = "Looks up, better"
    headers_of(edited)["X-Plain"] = "changed"
    headers_of(edited)["authorization"] = headers_of(edited).pop("Authorization")  # renamed in case only

    sealed = document_seal(edited, previous=stored)

    assert headers_of(sealed)["authorization"] == headers_of(stored)["Authorization"]  # the same token
    assert headers_of(sealed, 1, "mcp") == headers_of(stored, 1, "mcp")
    assert document_open(sealed)["tools"][0]["http"]["headers"] == {"authorization": f"Bearer {SECRET}",
                                                                    "X-Plain": "changed"}


def test_the_marker_with_nothing_to_keep_is_refused(keys):
    stored = document_seal(document())
    moved = document_redact(stored)
    moved["tools"][0]["id"] = "renamed"  # another tool id: the stored value is not its own

    for previous in (None, stored):
        with pytest.raises(DocumentError) as raised:
            document_seal(moved if previous else document_redact(stored), previous=previous)
        assert "tools[0].http.headers.Authorization" in raised.value.details


def test_a_sealed_value_no_key_opens_is_refused_on_write(settings, keys):
    settings.CONDUET_SECRET_KEYS = [keys[0]]
    foreign = document_seal(document())
    settings.CONDUET_SECRET_KEYS = [keys[1]]

    with pytest.raises(DocumentError) as raised:
        document_seal(foreign)
    assert "tools[0].http.headers.Authorization" in raised.value.details


# --- every write seals; every output redacts

def raw_json(table: str, column: str, pk: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} WHERE id = %s", [pk])  # noqa: S608 (test, fixed names)
        value = cursor.fetchone()[0]
    return value if isinstance(value, str) else json.dumps(value)


def test_the_stored_rows_hold_no_plaintext(workspace):
    project = project_create(workspace=workspace, name="Secrets", document=document())
    version = version_publish(project=project)

    for table, column, pk in [("agents_project", "document", project.pk),
                              ("agents_projectversion", "snapshot", version.pk)]:
        stored = raw_json(table, column, pk)
        assert SECRET not in stored and MCP_SECRET not in stored and '"$secret"' in stored
    assert SECRET not in json.dumps(project.as_document())  # the API's view
    assert headers_of(project.as_document())["Authorization"] == REDACTED


def test_an_update_keeps_redacted_values_and_seals_new_ones(workspace):
    project = project_create(workspace=workspace, name="Secrets", document=document())
    shown = project.as_document()
    headers_of(shown, 1, "mcp")["X-Api-Key"] = "a-new-key-value"

    project_update(project=project, document={"tools": shown["tools"]})

    project.refresh_from_db()
    opened = document_open(project.document)
    assert headers_of(opened)["Authorization"] == f"Bearer {SECRET}"
    assert headers_of(opened, 1, "mcp")["X-Api-Key"] == "a-new-key-value"
    assert "a-new-key-value" not in raw_json("agents_project", "document", project.pk)


def test_an_update_with_an_unkeepable_marker_stores_nothing(workspace):
    project = project_create(workspace=workspace, name="Secrets", document=document())
    before = project.document
    tools = project.as_document()["tools"]
    tools[0]["http"]["headers"]["X-New"] = REDACTED

    with pytest.raises(DocumentError) as raised:
        project_update(project=project, document={"tools": tools})

    assert list(raised.value.details) == ["tools[0].http.headers.X-New"]
    project.refresh_from_db()
    assert project.document == before


def test_the_admin_shows_no_plaintext(admin_client, workspace):
    project = project_create(workspace=workspace, name="Secrets", document=document())
    version = version_publish(project=project)

    for page in [admin_url("project", project.pk), admin_url("projectversion", version.pk),
                 "/admin/agents/project/", "/admin/agents/projectversion/"]:
        html = admin_client.get(page).content.decode()
        assert SECRET not in html and MCP_SECRET not in html, page
    assert REDACTED in admin_client.get(admin_url("project", project.pk)).content.decode()


def test_the_migration_seals_plaintext_already_stored(workspace):
    project = project_create(workspace=workspace, name="Secrets", document=document())
    version = version_publish(project=project)
    Project.objects.filter(pk=project.pk).update(document=document())  # as stored before this release
    ProjectVersion.objects.filter(pk=version.pk).update(snapshot={**version.snapshot, "tools": document()["tools"]})

    importlib.import_module("agents.migrations.0002_seal_tool_secrets").seal(apps, None)

    for table, column, pk in [("agents_project", "document", project.pk),
                              ("agents_projectversion", "snapshot", version.pk)]:
        assert SECRET not in raw_json(table, column, pk)
    project.refresh_from_db()
    assert document_open(project.document)["tools"] == document()["tools"]


# --- the runtime: the header reaches the tool, and nothing shows it

def interact(client, *, debug=True):
    return client.post("/api/v1/conversations/jane/interact",
                       {"action": {"type": "launch", "payload": None}, "versionId": "development",
                        "config": {"debug": debug}}, format="json")


@pytest.mark.parametrize("path", ["/echo", "/status/500"])
def test_the_secret_reaches_the_tool_and_no_response_or_log(path, workspace, tool_server, settings, client_for,
                                                             caplog):
    caplog.set_level(logging.DEBUG)
    settings.CONDUET_OUTBOUND_ALLOWLIST = ["127.0.0.1"]
    project = project_create(workspace=workspace, name="Secrets", document=document(tool_server.url, path=path))
    client = client_for(project_api_key_create(project=project)[1])

    response = interact(client)
    state = client.get("/api/v1/conversations/jane/state")

    assert response.status_code == 200, response.content
    assert tool_server.requests[-1].headers["authorization"] == f"Bearer {SECRET}"
    said = [trace["payload"].get("message") for trace in response.json() if trace["type"] == "text"]
    assert said == (["Looked it up."] if path == "/echo" else ["The lookup failed."])
    if path == "/status/500":
        debug = [trace for trace in response.json() if trace["type"] == "debug"]
        assert any("answered 500" in json.dumps(trace) for trace in debug)
    assert state.status_code == 200 and state.json()["variables"].get("seen") == ("GET" if path == "/echo" else None)
    assert caplog.records  # the call was logged (httpx at least), without the value
    for shown in (response.content.decode(), state.content.decode(), caplog.text):
        assert SECRET not in shown


def test_a_secret_no_key_opens_is_a_clear_409_not_a_500(workspace, settings, client_for, keys):
    settings.CONDUET_SECRET_KEYS = [keys[0]]
    project = project_create(workspace=workspace, name="Secrets", document=document())
    client = client_for(project_api_key_create(project=project)[1])
    settings.CONDUET_SECRET_KEYS = [keys[1]]  # rotated away

    response = interact(client, debug=False)

    assert response.status_code == 409, response.content
    body = response.json()
    assert body["code"] == "CONFLICT"
    assert "'Authorization' of tool 'lookup'" in body["details"]["tools[0].http.headers.Authorization"][0]
    assert body["error"].startswith("This version of the project cannot run: ")
