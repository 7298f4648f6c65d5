"""The AI runtime as clients see it (API.md §2): a daphne process whose model is a fake OpenAI-compatible server on
loopback, speaking the real wire protocol. Tokens stream as they come; a failing model ends the turn with
UPSTREAM_ERROR; a reply survives its client leaving; stop cancels the model's stream and a tool call mid-flight."""
import json
import threading
import time

import httpx
import pytest
from httpx_sse import connect_sse

from agents.services import project_api_key_create, project_create
from conversations.models import Message
from tests.conftest import server_env
from tests.fakes.llm_server import Call, Failure, LlmServer, Reply
from tests.live import daphne_server

pytestmark = [pytest.mark.server, pytest.mark.django_db(transaction=True)]

LAUNCH = {"action": {"type": "launch", "payload": None}}


def text(words: str) -> dict:
    return {"action": {"type": "text", "payload": words}}


@pytest.fixture(scope="module")
def model():
    with LlmServer() as server:
        yield server


@pytest.fixture(scope="module")
def ai_url(django_db_setup, django_db_blocker, model, tmp_path_factory):
    """A daphne process whose model is `model` (it gives up after one retry)."""
    env = server_env(**model.env(), CONDUET_LLM_MAX_RETRIES="1", CONDUET_LLM_TIMEOUT_SECONDS="5",
                     CONDUET_STOP_POLL_SECONDS="0.05")
    with daphne_server(env=env, log_path=tmp_path_factory.mktemp("daphne-ai") / "daphne.log") as url:
        yield url


def agent_document(**parts) -> dict:
    return {"framework": "agentic", "instructions": "You are a test agent. Be brief.", "workflows": [],
            "settings": {"fallbackMessage": "No model here."}, **parts}


@pytest.fixture
def agent_key(workspace, tool_server):
    document = agent_document(tools=[
        {"id": "lookup_account", "description": "The account of an email address.",
         "parameters": {"type": "object", "required": ["email"],
                        "properties": {"email": {"type": "string", "format": "email"}}},
         "http": {"method": "GET", "url": f"{tool_server.url}/accounts?email={{{{ email }}}}"}},
        {"id": "slow_tool", "description": "Takes its time.", "parameters": {"type": "object"},
         "http": {"method": "GET", "url": f"{tool_server.url}/slow?seconds=10"}},
    ])
    project = project_create(workspace=workspace, name="Agent", document=document)
    return project_api_key_create(project=project, name="server")[1]


def client(base_url: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def stream(http: httpx.Client, user_id: str, body: dict):
    return connect_sse(http, "POST", f"/api/v1/conversations/{user_id}/interact/stream", json=body)


def traces_of(events) -> list[dict]:
    return [json.loads(event.data) for event in events if event.data != "[DONE]"]


def reply_text(traces: list[dict]) -> str:
    return "".join(t["payload"]["message"] for t in traces if t["type"] == "text")


def test_tokens_reach_the_client_before_the_reply_is_complete(ai_url, agent_key, model):
    model.script(Reply.tokens(10, pace=0.1))
    arrivals = []
    with client(ai_url, agent_key) as http, stream(http, "streamer", text("hello")) as events:
        for event in events.iter_sse():
            arrivals.append((time.time(), event.data))

    traces = [json.loads(data) for _at, data in arrivals if data != "[DONE]"]
    assert traces[0]["type"] == "completion-start"
    chunks = [(at, t) for (at, _data), t in zip(arrivals, traces, strict=False) if t["type"] == "text"]
    assert len(chunks) == 10
    request = model.requests[-1]
    first_seen, last_written = chunks[0][0], request.chunk_times[-1]
    assert first_seen < last_written - 0.5  # the first token was read while the model still had 0.8 s to go
    assert arrivals[-1][1] == "[DONE]"


def test_json_interact_gives_the_whole_reply_and_the_message_records_the_cost(ai_url, agent_key, model):
    model.script(Reply("Hello there, friend.", chunk_size=3, prompt_tokens=42, completion_tokens=7))
    with client(ai_url, agent_key) as http:
        response = http.post("/api/v1/conversations/json-user/interact", json=text("hi"))

    assert response.status_code == 200
    assert response.json() == [{"type": "text", "payload": {"message": "Hello there, friend."}}]
    reply = Message.objects.get(conversation__user_id="json-user", role="assistant")
    assert (reply.content, reply.model, reply.prompt_tokens, reply.completion_tokens) == (
        "Hello there, friend.", model.requests[-1].model, 42, 7)
    assert reply.tokens_estimated is False
    assert reply.first_token_ms is not None and len(reply.llm_calls) == 1
    sent = model.requests[-1].messages
    assert sent[0]["role"] == "system" and "You are a test agent." in sent[0]["content"]
    assert sent[-1] == {"role": "user", "content": "hi"}


def test_a_failing_model_is_retried_then_the_turn_ends_with_upstream_error(ai_url, agent_key, model):
    before = len(model.requests)
    model.script(Failure(status=500), Failure(status=500))
    with client(ai_url, agent_key) as http, stream(http, "unlucky", text("are you there?")) as events:
        received = list(events.iter_sse())

    assert received[-1].data == "[DONE]"
    error = json.loads(received[-2].data)
    assert error["type"] == "error" and error["payload"]["code"] == "UPSTREAM_ERROR"
    assert "500" in error["payload"]["error"]
    assert len(model.requests) - before == 2  # the first attempt and one retry
    user, reply = Message.objects.filter(conversation__user_id="unlucky").order_by("seq")
    assert (user.role, user.content) == ("user", "are you there?")
    assert reply.status == "failed"
    with client(ai_url, agent_key) as http:  # the conversation is free for the next turn
        model.script(Reply("Back again."))
        assert http.post("/api/v1/conversations/unlucky/interact", json=text("now?")).json()[0]["payload"] == {
            "message": "Back again."}


def test_a_client_that_leaves_mid_reply_resumes_and_the_reply_completes(ai_url, agent_key, model):
    model.script(Reply.tokens(12, pace=0.1))
    with client(ai_url, agent_key) as http:
        with stream(http, "leaver", text("tell me a story")) as events:
            first = []
            for event in events.iter_sse():
                first.append(event)
                if len(first) == 4:  # completion-start and three chunks, then the client goes away
                    break
        with connect_sse(http, "GET", "/api/v1/conversations/leaver/interact/stream",
                         params={"turn": first[-1].id.split(":")[0]},
                         headers={"Last-Event-ID": first[-1].id}) as events:
            rest = list(events.iter_sse())

    assert rest[-1].data == "[DONE]"
    assert [int(e.id.split(":")[1]) for e in first + rest] == list(range(1, len(first) + len(rest) + 1))
    whole = reply_text(traces_of(first + rest))
    assert whole == "".join(Reply.tokens(12).text_chunks())
    reply = Message.objects.get(conversation__user_id="leaver", role="assistant")
    assert (reply.status, reply.content) == ("complete", whole)


def _stop_after(http: httpx.Client, user_id: str, body: dict, ready) -> tuple[list[dict], dict]:
    """Streams a turn; once `ready(traces so far)`, asks for a stop from another thread; returns what the stream
    carried and the stop's answer."""
    traces, stopped = [], {}
    with stream(http, user_id, body) as events:
        for event in events.iter_sse():
            if event.data == "[DONE]":
                break
            traces.append(json.loads(event.data))
            if not stopped and ready(traces):
                def stop():
                    with client(str(http.base_url), http.headers["Authorization"].split()[1]) as other:
                        stopped.update(other.post(f"/api/v1/conversations/{user_id}/interact/stop").json())
                thread = threading.Thread(target=stop)
                thread.start()
                stopped["thread"] = thread
    stopped.pop("thread").join()
    return traces, stopped


def test_stop_mid_reply_keeps_the_partial_text_and_closes_the_models_stream(ai_url, agent_key, model):
    model.script(Reply.tokens(100, pace=0.05))
    with client(ai_url, agent_key) as http:
        traces, stopped = _stop_after(http, "stopper", text("go on"),
                                      lambda got: sum(t["type"] == "text" for t in got) >= 3)

    assert stopped["status"] in ("interrupted", "stopping")
    partial = reply_text(traces)
    assert 3 <= len(partial.split()) < 100
    reply = Message.objects.get(conversation__user_id="stopper", role="assistant")
    assert reply.status == "interrupted" and reply.content == partial
    upstream = model.requests[-1]
    assert upstream.wait_ended(5) and upstream.disconnected and not upstream.completed


def test_stop_mid_tool_call_ends_the_turn_without_waiting_for_the_tool(ai_url, agent_key, model, tool_server):
    model.script(Reply(tool_calls=[Call("slow_tool", {})]))
    started = time.monotonic()
    with client(ai_url, agent_key) as http:
        traces, _stopped = _stop_after(http, "tool-stopper", text("do the slow thing"),
                                       lambda got: any(t["type"] == "tool-call" for t in got))

    assert time.monotonic() - started < 8  # the tool takes 10 s
    assert [t["payload"]["phase"] for t in traces if t["type"] == "tool-call"] == ["start"]
    assert any(request.route == "/slow" for request in tool_server.requests)
    reply = Message.objects.get(conversation__user_id="tool-stopper", role="assistant")
    assert reply.status == "interrupted"


def test_a_tool_round_trip_streams_tool_call_traces_and_uses_the_result(ai_url, agent_key, model, tool_server):
    model.script(Reply("Let me look.", tool_calls=[Call("lookup_account", {"email": "jane@example.com"})]),
                 Reply("Your balance is 42.5."))
    question = text("what's my balance? jane@example.com")
    with client(ai_url, agent_key) as http, stream(http, "tooler", question) as events:
        traces = traces_of(events.iter_sse())

    calls = [t["payload"] for t in traces if t["type"] == "tool-call"]
    assert [(c["phase"], c["toolName"]) for c in calls] == [("start", "lookup_account"), ("end", "lookup_account")]
    assert calls[0]["callId"] == calls[1]["callId"]
    assert reply_text(traces).endswith("Your balance is 42.5.")
    assert tool_server.requests[-1].query == {"email": "jane@example.com"}
    tool_message = next(m for m in model.requests[-1].messages if m["role"] == "tool")
    assert "42.5" in tool_message["content"]
    reply = Message.objects.get(conversation__user_id="tooler", role="assistant")
    assert [(c["tool"], c["status"]) for c in reply.tool_calls] == [("lookup_account", "ok")]
    assert len(reply.llm_calls) == 2


def test_without_a_model_an_agentic_project_says_what_to_set(daphne_url, workspace):
    project = project_create(workspace=workspace, name="No model", document=agent_document())
    key = project_api_key_create(project=project, name="server")[1]
    with client(daphne_url, key) as http:
        response = http.post("/api/v1/conversations/jane/interact",
                             json={**text("hello"), "config": {"debug": True}})

    assert response.status_code == 200
    traces = response.json()
    assert {"type": "text", "payload": {"message": "No model here."}} in traces
    warnings = [t["payload"]["message"] for t in traces if t["type"] == "debug"]
    assert any("CONDUET_LLM_BASE_URL" in message for message in warnings), warnings


def test_the_copilot_demo_looks_up_an_order_records_it_and_moves_to_resolution(ai_url, workspace, model):
    from agents.demo import copilot_project
    from conversations.models import Conversation

    project = project_create(workspace=workspace, name="Acme Copilot", document=copilot_project(ai_url))
    key = project_api_key_create(project=project, name="server")[1]
    model.script(
        Reply("Hi! How can I help?"),
        Reply(tool_calls=[Call("set_variable", {"name": "order_id", "value": "A-1001"}),
                          Call("set_variable", {"name": "issue", "value": "late delivery"}),
                          Call("lookup_order", {"order_id": "A-1001"})]),
        Reply("Your order A-1001 is on its way."))
    with client(ai_url, key) as http:
        launch = http.post("/api/v1/conversations/jane/interact", json=LAUNCH)
        response = http.post("/api/v1/conversations/jane/interact",
                             json=text("Where is my order A-1001? It's late."))

    assert launch.status_code == 200
    assert any(t["type"] == "choice" for t in launch.json())  # the triage phase's buttons
    assert response.status_code == 200
    assert response.json()[-1] == {"type": "text", "payload": {"message": "Your order A-1001 is on its way."}}
    conversation = Conversation.objects.get(user_id="jane", project=project)
    variables = conversation.state["variables"]
    assert (variables["order_id"], variables["issue"]) == ("A-1001", "late delivery")
    assert variables["order_status"] in {"shipped", "processing", "delivered", "delayed"}  # the tool's `save`
    assert conversation.state["phase"] == "resolution"
    reply = conversation.messages.filter(role="assistant").last()
    assert [(c["tool"], c["status"]) for c in reply.tool_calls] == [
        ("set_variable", "ok"), ("set_variable", "ok"), ("lookup_order", "ok")]
