"""Probes and the OpenAPI document."""
import pytest

pytestmark = pytest.mark.django_db

V1_OPERATIONS = {
    ("/api/v1/conversations/{user_id}/interact", "post"),
    ("/api/v1/conversations/{user_id}/interact/stream", "post"),
    ("/api/v1/conversations/{user_id}/interact/stream", "get"),
    ("/api/v1/conversations/{user_id}/interact/stop", "post"),
    ("/api/v1/conversations/{user_id}/state", "get"),
    ("/api/v1/conversations/{user_id}/state", "put"),
    ("/api/v1/conversations/{user_id}/state", "delete"),
    ("/api/v1/conversations/{user_id}/variables", "patch"),
}


def test_healthz_and_readyz_need_no_key(client, settings):
    assert client.get("/healthz").json() == {"status": "ok"}
    expected = {"status": "ok", "database": "ok", **({"redis": "ok"} if settings.REDIS_URL else {}),
                "knowledge": {"modes": ["lexical"], "embeddings": None}}
    settings.CONDUET_EMBEDDINGS_BASE_URL = ""
    assert client.get("/readyz").json() == expected


def test_readyz_is_503_when_the_database_is_unreachable(client, settings, monkeypatch):
    from config import db

    async def down():
        raise OSError("connection refused")

    monkeypatch.setattr(db, "ping", down)
    response = client.get("/readyz")
    assert response.status_code == 503 and response.json()["database"] == "unreachable"


def test_metrics_answer_allowed_networks_only(client, settings):
    assert "conduet_turns_total" in client.get("/metrics", REMOTE_ADDR="127.0.0.1").content.decode()
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.9").status_code == 403


def test_schema_documents_every_v1_operation_with_its_errors(client):
    response = client.get("/api/schema/?format=json")

    assert response.status_code == 200
    schema = response.json()
    operations = {(path, method) for path, item in schema["paths"].items() for method in item}
    assert V1_OPERATIONS <= operations
    for path, method in V1_OPERATIONS:
        responses = schema["paths"][path][method]["responses"]
        assert {"400", "401"} <= set(responses), (path, method)
        error = responses["401"]["content"]["application/json"]["schema"]
        assert "Error" in error.get("$ref", "")
    interact = schema["paths"]["/api/v1/conversations/{user_id}/interact"]["post"]
    assert {"404", "409", "429"} <= set(interact["responses"])
    stream = schema["paths"]["/api/v1/conversations/{user_id}/interact/stream"]["post"]
    assert "text/event-stream" in stream["responses"]["200"]["content"]
    assert schema["components"]["securitySchemes"]["BearerKey"]["scheme"] == "bearer"
    action = schema["components"]["schemas"]["InteractInputRequest"]["properties"]["action"]
    assert [variant["properties"]["type"]["enum"] for variant in action["oneOf"]] == [
        ["launch"], ["text"], ["button"], ["media"]]


def test_docs_page_is_served_without_a_cdn(client):
    response = client.get("/api/docs/")

    assert response.status_code == 200
    assert b"swagger" in response.content.lower()
    assert b"cdn.jsdelivr" not in response.content


def test_the_schema_generates_without_a_warning(tmp_path):
    """Two serializers that drf-spectacular would name alike (two nested `OutputSerializer`s, two `kind` enums) make
    one silently stand for the other in the document: the generator warns, and this makes that a failure."""
    from django.core.management import call_command

    call_command("spectacular", "--fail-on-warn", "--validate", "--file", str(tmp_path / "schema.yaml"))
