"""The error shape under /api/ (API.md §1) for what DRF views do not see: unknown paths, server faults."""
import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/api/nope", "/api/v1/conversations", "/api/v1/conversations/jane/interact/",
                                  "/api/v9/conversations/jane/state"])
def test_unknown_api_paths_are_json_404(server_client, path):
    response = server_client.get(path)

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"] == "NOT_FOUND"


def test_unknown_paths_outside_the_api_are_not_forced_to_json(client):
    response = client.get("/nope")
    assert response.status_code == 404


def test_a_server_fault_is_json_500_without_a_traceback(server_client, monkeypatch):
    from conversations.api import v1

    async def explode(**_kwargs):
        raise RuntimeError("secret internals: /srv/conduet/services.py line 12")

    monkeypatch.setattr(v1, "turn_start", explode)
    response = server_client.post("/api/v1/conversations/jane/interact",
                                  {"action": {"type": "launch", "payload": None}}, format="json")

    assert response.status_code == 500
    assert response.json() == {"error": "Internal server error.", "code": "INTERNAL"}
    assert b"secret internals" not in response.content
    assert b"Traceback" not in response.content


def test_405_names_the_allowed_methods(server_client):
    response = server_client.put("/api/v1/conversations/jane/interact", {}, format="json")

    assert response.status_code == 405
    assert response.json()["code"] == "METHOD_NOT_ALLOWED"
    assert "POST" in response["Allow"]
