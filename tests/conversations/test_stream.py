"""POST /interact/stream (API.md §2) read by a real HTTP client from a real daphne process."""
import json

import httpx
import pytest
from asgiref.sync import async_to_sync
from httpx_sse import connect_sse

from agents.runtime import Action
from agents.selectors import agent_spec_aget
from conversations.lease import ConversationKey
from conversations.models import Message
from conversations.turns import TurnRequest, turn_start

LAUNCH = {"action": {"type": "launch", "payload": None}}


def stream(base_url: str, key: str, body: dict, user_id: str = "jane"):
    client = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    return client, connect_sse(client, "POST", f"/api/v1/conversations/{user_id}/interact/stream", json=body)


@pytest.mark.server
@pytest.mark.django_db(transaction=True)
def test_stream_sends_each_trace_as_an_event_then_done(daphne_url, project_key):
    client, source = stream(daphne_url, project_key, LAUNCH)
    with client, source as events:
        assert events.response.headers["content-type"].startswith("text/event-stream")
        received = list(events.iter_sse())

    assert received[-1].data == "[DONE]"
    traces = [json.loads(event.data) for event in received[:-1]]
    assert [t["type"] for t in traces] == ["text", "text", "choice"]
    assert traces[0]["payload"]["message"] == "Hi there! Welcome to Acme Support."
    turn_ids = {event.id.rsplit(":", 1)[0] for event in received}
    assert len(turn_ids) == 1
    assert [event.id.rsplit(":", 1)[1] for event in received] == ["1", "2", "3", "4"]
    reply = Message.objects.get(role="assistant")
    assert reply.turn_id == turn_ids.pop()
    assert reply.traces == traces


@pytest.mark.server
@pytest.mark.django_db(transaction=True)
def test_stream_and_json_endpoints_continue_the_same_conversation(daphne_url, project_key):
    headers = {"Authorization": f"Bearer {project_key}"}
    httpx.post(f"{daphne_url}/api/v1/conversations/jane/interact", json=LAUNCH, headers=headers)
    client, source = stream(daphne_url, project_key, {
        "action": {"type": "button", "payload": {"label": "Account help", "value": "account"}},
        "config": {"excludeTypes": ["debug"]}})
    with client, source as events:
        traces = [json.loads(e.data) for e in events.iter_sse() if e.data != "[DONE]"]

    assert traces[-1] == {"type": "text", "payload": {"message": "What's the email on your account?"}}
    state = httpx.get(f"{daphne_url}/api/v1/conversations/jane/state", headers=headers).json()
    assert state["turn"] == 2
    assert state["waiting"]["kind"] == "capture"


@pytest.mark.server
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("key", "body", "status", "code"), [
    ("cdt_" + "a" * 40, LAUNCH, 401, "UNAUTHORIZED"),
    (None, {"action": {"type": "dance"}}, 400, "BAD_REQUEST"),
    (None, {**LAUNCH, "versionId": "ver_nope"}, 404, "NOT_FOUND"),
])
def test_errors_before_the_stream_starts_are_plain_json(daphne_url, project_key, key, body, status, code):
    response = httpx.post(f"{daphne_url}/api/v1/conversations/jane/interact/stream", json=body,
                          headers={"Authorization": f"Bearer {key or project_key}"})

    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert response.json()["code"] == code
    assert int(response.headers["x-ratelimit-limit"]) > 0
    assert Message.objects.count() == 0


@pytest.mark.server
@pytest.mark.django_db(transaction=True)
def test_malformed_json_on_the_stream_is_400(daphne_url, project_key):
    response = httpx.post(f"{daphne_url}/api/v1/conversations/jane/interact/stream", content=b'{"action":',
                          headers={"Authorization": f"Bearer {project_key}", "Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["code"] == "BAD_REQUEST"


@pytest.mark.server
@pytest.mark.django_db(transaction=True)
def test_unknown_paths_and_methods_are_json_under_daphne(daphne_url, project_key):
    headers = {"Authorization": f"Bearer {project_key}"}
    missing = httpx.get(f"{daphne_url}/api/v1/nothing-here", headers=headers)
    wrong = httpx.delete(f"{daphne_url}/api/v1/conversations/jane/interact/stream", headers=headers)

    assert (missing.status_code, missing.json()["code"]) == (404, "NOT_FOUND")
    assert (wrong.status_code, wrong.json()["code"]) == (405, "METHOD_NOT_ALLOWED")


def test_idle_streams_get_pings_between_events(workspace, tool_server, settings):
    """While a turn waits on a slow tool, its followers get a ping (None) per idle interval, then the rest."""
    from agents.services import project_create
    from tests.turns import slow_document

    settings.CONDUET_OUTBOUND_ALLOWLIST = ["127.0.0.1"]
    project = project_create(workspace=workspace, name="Slow", document=slow_document(tool_server.url, seconds=0.5))

    async def scenario():
        spec, version_id = await agent_spec_aget(project=project)
        turn = await turn_start(request=TurnRequest(project=project, key=ConversationKey(project.id, "jane"),
                                                    action=Action("launch", None), spec=spec, version_id=version_id))
        return [None if event is None else event.data async for event in turn.follow(idle=0.1)]

    items = async_to_sync(scenario)()

    assert items[0]["payload"]["message"] == "Looking it up…"
    assert items[-2]["payload"]["message"] == "Done after 0.5 s." and items[-1] == "[DONE]"
    assert items.count(None) >= 2  # one per idle 0.1 s; a loaded machine may add more, never fewer
    assert set(map(str, items[1:-2])) == {"None"}


@pytest.mark.server
@pytest.mark.django_db(transaction=True)
def test_nul_characters_on_the_stream_are_400(daphne_url, project_key):
    response = httpx.post(f"{daphne_url}/api/v1/conversations/jane/interact/stream",
                          json={"action": {"type": "text", "payload": "a\u0000b"}},
                          headers={"Authorization": f"Bearer {project_key}"})
    assert (response.status_code, response.json()["code"]) == (400, "BAD_REQUEST")
    assert Message.objects.count() == 0
