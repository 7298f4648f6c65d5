"""The turn pipeline as clients see it, on real daphne processes: the same traces on JSON and SSE, resume and stop
from another process, a server killed mid-turn, Redis stopped, slow turns that must not starve other requests,
and chunked bodies."""
import json
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import httpx
import pytest
from httpx_sse import connect_sse

from agents.services import project_api_key_create, project_create
from conversations.models import Conversation, Message
from tests.conftest import server_env
from tests.live import daphne_process, daphne_server, free_port
from tests.turns import slow_document

pytestmark = [pytest.mark.server, pytest.mark.django_db(transaction=True)]

LAUNCH = {"action": {"type": "launch", "payload": None}}


def two_step_document(tool_url: str, seconds: float = 1.0) -> dict:
    """Three lines with a slow tool call between each: A, (wait), B, (wait), C."""
    def call(step_id: str) -> dict:
        return {"id": step_id, "type": "api", "data": {"tool": "slow", "args": {"seconds": str(seconds)}}}

    steps = [{"id": "start", "type": "start", "data": {}},
             {"id": "a", "type": "message", "data": {"text": "A"}}, call("wait1"),
             {"id": "b", "type": "message", "data": {"text": "B"}}, call("wait2"),
             {"id": "c", "type": "message", "data": {"text": "C"}}]
    order = ["start", "a", "wait1", "b", "wait2", "c"]
    document = slow_document(tool_url)
    document["workflows"][0]["steps"] = steps
    document["workflows"][0]["connections"] = [
        {"source": s, "port": "next", "target": t} for s, t in zip(order, order[1:], strict=False)]
    return document


@pytest.fixture
def slow_key(workspace, tool_server):
    project = project_create(workspace=workspace, name="Slow", document=two_step_document(tool_server.url))
    return project_api_key_create(project=project, name="server")[1]


def client(base_url: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def sse_events(response) -> list[tuple[str, str]]:
    return [(event.id, event.data) for event in response.iter_sse()]


def test_json_and_sse_give_the_same_traces_for_the_same_turn(daphne_url, project_key):
    actions = [LAUNCH, {"action": {"type": "button", "payload": {"label": "Account help", "value": "account"}}},
               {"action": {"type": "text", "payload": "jane@example.com"}}]
    with client(daphne_url, project_key) as http:
        for body in actions:
            as_json = http.post("/api/v1/conversations/json-user/interact", json=body)
            with connect_sse(http, "POST", "/api/v1/conversations/sse-user/interact/stream", json=body) as source:
                events = sse_events(source)
            assert as_json.status_code == 200
            assert events[-1][1] == "[DONE]"
            assert [json.loads(data) for _id, data in events[:-1]] == as_json.json()


def test_resume_from_a_second_process_gets_exactly_the_missing_events(daphne_url, second_daphne_url, slow_key):
    with client(daphne_url, slow_key) as first:
        with connect_sse(first, "POST", "/api/v1/conversations/jane/interact/stream", json=LAUNCH) as source:
            event = next(source.iter_sse())
            first_id = event.id
        # the client went away after "A"; the turn goes on on the first server
    turn_id, seq = first_id.split(":")
    assert (event.data, seq) == ('{"type":"text","payload":{"message":"A"}}', "1")
    with client(second_daphne_url, slow_key) as second:
        with connect_sse(second, "GET", f"/api/v1/conversations/jane/interact/stream?turn={turn_id}",
                         headers={"Last-Event-ID": first_id}) as source:
            assert source.response.status_code == 200
            rest = sse_events(source)
    assert [event_id for event_id, _data in rest] == [f"{turn_id}:2", f"{turn_id}:3", f"{turn_id}:4"]
    assert [data for _id, data in rest] == ['{"type":"text","payload":{"message":"B"}}',
                                            '{"type":"text","payload":{"message":"C"}}', "[DONE]"]
    # and once stored, the same turn replays from its reply, on either process
    with client(daphne_url, slow_key) as again:
        with connect_sse(again, "GET", f"/api/v1/conversations/jane/interact/stream?turn={turn_id}",
                         headers={"Last-Event-ID": f"{turn_id}:1"}) as source:
            assert sse_events(source) == rest


def test_resume_refuses_unknown_turns_and_bad_event_ids(daphne_url, project_key):
    with client(daphne_url, project_key) as http:
        unknown = http.get("/api/v1/conversations/jane/interact/stream?turn=turn_" + "0" * 20)
        bad_turn = http.get("/api/v1/conversations/jane/interact/stream?turn=nope")
        http.post("/api/v1/conversations/jane/interact", json=LAUNCH)
        turn_id = Message.objects.get(role="user").turn_id
        bad_id = http.get(f"/api/v1/conversations/jane/interact/stream?turn={turn_id}",
                          headers={"Last-Event-ID": "turn_other:3"})
        other_user = http.get(f"/api/v1/conversations/john/interact/stream?turn={turn_id}")
    assert (unknown.status_code, unknown.json()["code"]) == (404, "NOT_FOUND")
    assert (bad_turn.status_code, bad_turn.json()["code"]) == (400, "BAD_REQUEST")
    assert (bad_id.status_code, bad_id.json()["code"]) == (400, "BAD_REQUEST")
    assert other_user.status_code == 404


def test_stop_from_a_second_process_keeps_the_output_and_frees_the_user(daphne_url, second_daphne_url, slow_key):
    with client(daphne_url, slow_key) as first, client(second_daphne_url, slow_key) as second:
        with connect_sse(first, "POST", "/api/v1/conversations/jane/interact/stream", json=LAUNCH) as source:
            events = source.iter_sse()
            next(events)
            started = time.monotonic()
            stopped = second.post("/api/v1/conversations/jane/interact/stop")
            took = time.monotonic() - started
            remaining = [(event.id, event.data) for event in events]
        assert stopped.status_code == 200, stopped.text
        assert stopped.json()["status"] == "interrupted"
        assert stopped.json()["traces"] == [{"type": "text", "payload": {"message": "A"}}]
        assert took < 3  # well before the 1 s + 1 s of tool calls and the 5 s stop wait
        assert [data for _id, data in remaining] == ["[DONE]"]
        assert Message.objects.get(role="assistant").status == "interrupted"
        assert Conversation.objects.get().lease_token is None
        again = second.post("/api/v1/conversations/jane/interact/stop")
        assert (again.status_code, again.json()["code"]) == (409, "CONFLICT")


def test_a_server_killed_mid_turn_frees_the_user_and_marks_the_turn_failed(daphne_url, slow_key, tmp_path):
    env = server_env(CONDUET_LEASE_SECONDS="3")
    with daphne_process(env=env, log_path=tmp_path / "doomed.log") as (doomed_url, process):
        with client(doomed_url, slow_key) as doomed:
            with connect_sse(doomed, "POST", "/api/v1/conversations/jane/interact/stream", json=LAUNCH) as source:
                next(source.iter_sse())
                process.send_signal(signal.SIGKILL)
                process.wait()
    started = time.monotonic()
    with client(daphne_url, slow_key) as survivor:
        response = survivor.post("/api/v1/conversations/jane/interact", json=LAUNCH, timeout=60)
    assert response.status_code == 200, response.text
    assert time.monotonic() - started < 8  # the dead turn's 3 s lease, not turn timeout + margin
    messages = list(Message.objects.order_by("seq"))
    assert [(m.seq, m.role, m.status) for m in messages[:2]] == [(1, "user", "complete"), (2, "assistant", "failed")]
    assert messages[1].traces[0]["payload"]["code"] == "TURN_LOST"
    assert messages[2].seq == 3 and messages[3].status == "complete"


@pytest.fixture
def redis_server():
    """A Redis of this test's own, on loopback, that the test may stop."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is needed (.ci/run installs it)")
    port = free_port()
    directory = tempfile.mkdtemp()
    process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no", "--dir", directory], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0", process
    process.kill()
    process.wait()
    shutil.rmtree(directory, ignore_errors=True)


def test_with_redis_stopped_the_api_works_and_readyz_says_so(redis_server, project_key, tmp_path):
    url, redis_process = redis_server
    with daphne_server(env=server_env(REDIS_URL=url), log_path=tmp_path / "daphne.log") as base_url:
        with client(base_url, project_key) as http:
            assert http.post("/api/v1/conversations/jane/interact", json=LAUNCH).status_code == 200
            assert http.get(f"{base_url}/readyz").json() == {"status": "ok", "database": "ok", "redis": "ok",
                                                             "knowledge": {"modes": ["lexical"], "embeddings": None}}
            redis_process.terminate()
            redis_process.wait()
            responses = [http.post("/api/v1/conversations/jane/interact", json=LAUNCH) for _ in range(5)]
            state = http.get("/api/v1/conversations/jane/state")
            ready = http.get(f"{base_url}/readyz")
            metrics = http.get(f"{base_url}/metrics").text
    assert [r.status_code for r in responses] == [200] * 5  # the rate limit fails open
    assert state.status_code == 200 and state.json()["turn"] == 6
    assert ready.status_code == 503 and ready.json()["redis"] == "unreachable"
    assert 'conduet_rate_limit_fail_open_total' in metrics
    fail_open = next(line for line in metrics.splitlines() if line.startswith("conduet_rate_limit_fail_open_total"))
    assert float(fail_open.split()[-1]) >= 5
    log = (tmp_path / "daphne.log").read_text()
    assert log.count("Redis unavailable during rate limit") == 1  # once per interval, not once per request


def test_slow_turns_do_not_starve_other_requests(tool_server, workspace, tmp_path):
    """A turn holds a database connection only around its statements: 12 turns waiting on a 5 s tool, with a pool
    of 3, leave room for everyone else (a starved request would wait for the tools, 4 s more at least)."""
    project = project_create(workspace=workspace, name="Slow", document=slow_document(tool_server.url, seconds=5))
    key = project_api_key_create(project=project, name="server")[1]
    env = server_env(CONDUET_DB_POOL_MAX="3")
    with daphne_server(env=env, log_path=tmp_path / "daphne.log") as base_url:
        results: list[int] = []

        def slow_turn(i: int) -> None:
            with client(base_url, key) as http:
                results.append(http.post(f"/api/v1/conversations/slow{i}/interact", json=LAUNCH).status_code)

        threads = [threading.Thread(target=slow_turn, args=(i,)) for i in range(12)]
        for thread in threads:
            thread.start()
        time.sleep(1)  # all twelve are inside their tool call now
        with client(base_url, key) as http:
            started = time.monotonic()
            other = http.put("/api/v1/conversations/bystander/state", json={"variables": {"x": 1}})
            took = time.monotonic() - started
        for thread in threads:
            thread.join()
    assert other.status_code == 200 and took < 3.5
    assert results == [200] * 12


def test_chunked_bodies_are_read_and_limited(daphne_url, project_key):
    def chunks(data: bytes, size: int = 1000):
        for i in range(0, len(data), size):
            yield data[i:i + size]

    with client(daphne_url, project_key) as http:
        state = json.dumps({"variables": {"plan_tier": "premium"}, "turn": 4}).encode()
        put = http.put("/api/v1/conversations/jane/state", content=chunks(state),
                       headers={"Content-Type": "application/json"})
        patch = http.patch("/api/v1/conversations/jane/variables", content=chunks(b'{"name": "Jane"}'),
                           headers={"Content-Type": "application/json"})
        turn = http.post("/api/v1/conversations/jane/interact", content=chunks(json.dumps(LAUNCH).encode(), 7),
                         headers={"Content-Type": "application/json"})
        huge = json.dumps({"variables": {"blob": "x" * (2 * 1024 * 1024)}}).encode()
        too_big = http.put("/api/v1/conversations/jane/state", content=chunks(huge, 65536),
                           headers={"Content-Type": "application/json"})
        after = http.get("/api/v1/conversations/jane/state").json()
    assert put.status_code == 200 and put.json()["turn"] == 4
    assert patch.json()["variables"] == {"plan_tier": "premium", "name": "Jane"}
    assert turn.status_code == 200 and turn.json()[0]["type"] == "text"
    assert (too_big.status_code, too_big.json()["code"]) == (413, "PAYLOAD_TOO_LARGE")
    assert after["variables"]["name"] == "Jane" and "blob" not in after["variables"]
