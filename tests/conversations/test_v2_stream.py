"""POST …/{cid}/stream (API.md §7): the reply's text as `delta` events that concatenate to the stored agent
message, other traces as `trace` events, then the `message` and `[DONE]` — read in process and, with a real SSE
client, from a real daphne process whose model is the fake OpenAI-compatible server. A client that leaves does not
stop the turn; a delete while it runs is a 409."""
import json
import threading
import time

import httpx
import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient
from httpx_sse import connect_sse

from agents.services import developer_token_create, project_create
from conversations.models import Conversation, Message
from tests.conftest import server_env
from tests.conversations.test_v2_conversations import conversations_url
from tests.fakes.llm_server import LlmServer, Reply
from tests.live import daphne_server

SEED = "Walk me through the reconciliation."
LLM_REPLY = "First match the bank lines, then the open invoices."


def walkthrough_document() -> dict:
    """A flow the seed's words start: a message, a model's streamed reply, then buttons (text and a choice)."""
    return {"name": "Reconciler", "instructions": "You reconcile accounts.", "workflows": [{
        "id": "wf_main", "name": "Main", "steps": [
            {"id": "start", "type": "start", "data": {"intents": ["walk me through the reconciliation"]}},
            {"id": "intro", "type": "message", "data": {"text": "Here is how it goes."}},
            {"id": "explain", "type": "ai", "data": {"prompt": "Explain the reconciliation steps."}},
            {"id": "more", "type": "buttons", "data": {"text": "Anything else?", "buttons": [
                {"label": "Yes", "value": "yes"}, {"label": "No", "value": "no"}]}},
        ], "connections": [
            {"source": "start", "port": "next", "target": "intro"},
            {"source": "intro", "port": "next", "target": "explain"},
            {"source": "explain", "port": "next", "target": "more"},
        ]}]}


def parse_sse(raw: str) -> list[tuple[str | None, str]]:
    """(event name, data) of each event; a comment (`: ping`) as (":", the comment)."""
    events = []
    for block in raw.split("\n\n"):
        if not block:
            continue
        if block.startswith(":"):
            events.append((":", block[1:].strip()))
            continue
        name, data = None, []
        for line in block.split("\n"):
            field, _, value = line.partition(": ")
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
        events.append((name, "\n".join(data)))
    return events


def check_stream(events: list[tuple[str | None, str]], stored: Message) -> dict:
    """The contract's order and the deltas' sum; returns the `message` event's Message."""
    names = [name for name, _data in events if name != ":"]
    assert names[-2:] == ["message", None] and events[-1][1] == "[DONE]"
    assert set(names[:-2]) <= {"delta", "trace"}
    deltas = "".join(json.loads(data)["delta"] for name, data in events if name == "delta")
    message = json.loads(next(data for name, data in events if name == "message"))
    assert deltas == message["content"] == stored.content
    assert message["id"] == stored.id and message["role"] == "agent"
    return message


# --- in process

async def _stream(path: str, body: dict, token: str) -> str:
    response = await AsyncClient().post(path, body, content_type="application/json",
                                        headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/event-stream")
    return b"".join([chunk async for chunk in response.streaming_content]).decode()


@pytest.mark.django_db
def test_the_seed_streams_deltas_that_make_the_stored_reply(developer, developer_token, workspace, model):
    agent = project_create(workspace=workspace, name="Reconciler", document=walkthrough_document())
    conversation = developer.post(conversations_url(agent), {"name": "Q3 reconciliation"}, format="json").json()
    model.script(Reply(LLM_REPLY, chunk_size=6))

    raw = async_to_sync(_stream)(conversations_url(agent, f"/{conversation['id']}/stream"), {"content": SEED},
                                 developer_token)

    events = parse_sse(raw)
    message = check_stream(events, Message.objects.get(role="assistant"))
    deltas = [json.loads(data)["delta"] for name, data in events if name == "delta"]
    assert len(deltas) > 5  # the model's chunks arrive one by one
    assert deltas[0] == "Here is how it goes." and deltas[1] == "\nFirst "
    assert message["content"] == f"Here is how it goes.\n{LLM_REPLY}\nAnything else?"
    traces = [json.loads(data) for name, data in events if name == "trace"]
    assert [t["type"] for t in traces] == ["choice"]
    assert message["traces"] == [{"type": "text", "payload": {"message": text}} for text in (
        "Here is how it goes.", LLM_REPLY, "Anything else?")] + traces  # the model's reply as one text trace
    # what the messages' list shows is what the stream ended with
    listed = developer.get(conversations_url(agent, f"/{conversation['id']}/messages")).json()["data"]
    assert listed[1] == message and listed[0]["content"] == SEED


@pytest.mark.django_db
def test_a_quiet_turn_gets_pings(developer, developer_token, workspace, model, settings):
    settings.CONDUET_SSE_PING_SECONDS = 0.05
    agent = project_create(workspace=workspace, name="Reconciler", document=walkthrough_document())
    conversation = developer.post(conversations_url(agent), {"name": "Slow"}, format="json").json()
    model.script(Reply(LLM_REPLY, first_token_delay=0.4))

    events = parse_sse(async_to_sync(_stream)(conversations_url(agent, f"/{conversation['id']}/stream"),
                                              {"content": SEED}, developer_token))

    assert (":", "ping") in events
    check_stream(events, Message.objects.get(role="assistant"))


@pytest.mark.django_db
def test_errors_before_the_stream_are_plain_json(developer, demo_project):
    conversation = developer.post(conversations_url(demo_project), {"name": "x"}, format="json").json()
    url = conversations_url(demo_project, f"/{conversation['id']}/stream")

    response = developer.post(url, {"content": 5}, format="json")
    assert response.status_code == 400 and response["Content-Type"] == "application/json"
    assert developer.post(conversations_url(demo_project, "/conv_nope/stream"), {"content": "hi"},
                          format="json").status_code == 404


# --- a real daphne process, a real SSE client

@pytest.fixture(scope="module")
def live_model():
    with LlmServer() as server:
        yield server


@pytest.fixture(scope="module")
def live_url(django_db_setup, django_db_blocker, live_model, tmp_path_factory):
    env = server_env(**live_model.env(), CONDUET_TURN_WAIT_SECONDS="1")
    with daphne_server(env=env, log_path=tmp_path_factory.mktemp("daphne-v2") / "daphne.log") as url:
        yield url


@pytest.fixture
def live(live_url, workspace, user):
    """(http client with a member's token, the agent, a new conversation's id)."""
    agent = project_create(workspace=workspace, name="Reconciler", document=walkthrough_document())
    token = developer_token_create(user=user, name="live")[1]
    http = httpx.Client(base_url=live_url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    conversation = http.post(conversations_url(agent), json={"name": "Q3 reconciliation"}).json()
    yield http, agent, conversation["id"]
    http.close()


@pytest.mark.server
@pytest.mark.django_db(transaction=True)
def test_live_the_seed_streams_to_a_real_sse_client(live, live_model):
    http, agent, cid = live
    live_model.script(Reply(LLM_REPLY, chunk_size=4, pace=0.02))

    with connect_sse(http, "POST", conversations_url(agent, f"/{cid}/stream"), json={"content": SEED}) as source:
        assert source.response.headers["content-type"].startswith("text/event-stream")
        events = [(event.event if event.event != "message" or event.data != "[DONE]" else None, event.data)
                  for event in source.iter_sse()]

    events = [(None if data == "[DONE]" else name, data) for name, data in events]
    message = check_stream(events, Message.objects.get(role="assistant"))
    assert message["content"] == f"Here is how it goes.\n{LLM_REPLY}\nAnything else?"
    listed = http.get(conversations_url(agent, f"/{cid}/messages")).json()["data"]
    assert [m["role"] for m in listed] == ["user", "agent"] and listed[1] == message


@pytest.mark.server
@pytest.mark.django_db(transaction=True)
def test_live_a_client_that_leaves_does_not_stop_the_turn(live, live_model):
    http, agent, cid = live
    live_model.script(Reply(LLM_REPLY, chunk_size=2, pace=0.05))

    with connect_sse(http, "POST", conversations_url(agent, f"/{cid}/stream"), json={"content": SEED}) as source:
        first = next(source.iter_sse())
        assert first.event == "delta"
    # gone after the first delta; the turn goes on and is stored whole
    deadline = time.monotonic() + 10
    while not Message.objects.filter(role="assistant").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    reply = Message.objects.get(role="assistant")
    assert reply.status == "complete" and LLM_REPLY in reply.content
    assert Conversation.objects.get(id=cid).turn == 1


@pytest.mark.server
@pytest.mark.django_db(transaction=True)
def test_live_a_delete_while_a_turn_runs_is_409_then_works(live, live_model):
    http, agent, cid = live
    live_model.script(Reply(LLM_REPLY, chunk_size=2, pace=0.1))  # ~2.5 s of streaming
    url = conversations_url(agent, f"/{cid}")
    streamed: list = []

    def run():
        with connect_sse(http, "POST", f"{url}/stream", json={"content": SEED}) as source:
            streamed.extend(source.iter_sse())

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 5
    while not Message.objects.filter(role="user").exists() and time.monotonic() < deadline:
        time.sleep(0.05)

    response = http.delete(url)

    assert response.status_code == 409 and response.json()["code"] == "CONFLICT"
    thread.join(15)
    assert streamed[-1].data == "[DONE]"
    deleted = http.delete(url)
    assert deleted.status_code == 200 and deleted.json()["id"] == cid
    assert not Conversation.objects.filter(id=cid).exists() and Message.objects.count() == 0
