"""v2 turns when the server dies: a daphne process killed (SIGKILL) in the middle of a streamed turn leaves the
conversation leased to a dead turn; another process takes it once the short lease has expired, and the messages list
shows the dead turn's reply failed with TURN_LOST, then the new turn whole."""
import signal
import time

import httpx
import pytest
from httpx_sse import connect_sse

from agents.services import developer_token_create, project_create
from conversations.models import Message
from tests.conftest import server_env
from tests.conversations.test_v2_conversations import conversations_url
from tests.conversations.test_v2_stream import LLM_REPLY, SEED, walkthrough_document
from tests.fakes.llm_server import LlmServer, Reply
from tests.live import daphne_process


@pytest.mark.server
@pytest.mark.django_db(transaction=True)
def test_a_server_killed_mid_stream_leaves_a_failed_turn_and_a_usable_conversation(workspace, user, tmp_path):
    agent = project_create(workspace=workspace, name="Reconciler", document=walkthrough_document())
    token = developer_token_create(user=user, name="live")[1]
    headers = {"Authorization": f"Bearer {token}"}
    with LlmServer() as model:
        env = server_env(**model.env(), CONDUET_LEASE_SECONDS="3", CONDUET_TURN_WAIT_SECONDS="1")
        with daphne_process(env=env, log_path=tmp_path / "doomed.log") as (doomed_url, process):
            with httpx.Client(base_url=doomed_url, headers=headers, timeout=30) as doomed:
                cid = doomed.post(conversations_url(agent), json={"name": "doomed"}).json()["id"]
                model.script(Reply(LLM_REPLY, chunk_size=2, pace=0.5))  # ~12 s of streaming: killed well before
                with connect_sse(doomed, "POST", conversations_url(agent, f"/{cid}/stream"),
                                 json={"content": SEED}) as source:
                    events = source.iter_sse()
                    while next(events).event != "delta" or not model.requests:
                        pass
                    process.send_signal(signal.SIGKILL)
                    process.wait()
        model.script(Reply("Here again."))
        with daphne_process(env=env, log_path=tmp_path / "survivor.log") as (url, _process):
            with httpx.Client(base_url=url, headers=headers, timeout=60) as survivor:
                busy = survivor.post(conversations_url(agent, f"/{cid}/messages"), json={"content": SEED})
                started = time.monotonic()
                while busy.status_code == 409 and time.monotonic() - started < 10:
                    busy = survivor.post(conversations_url(agent, f"/{cid}/messages"), json={"content": SEED})
                listed = survivor.get(conversations_url(agent, f"/{cid}/messages")).json()["data"]

    assert busy.status_code == 200, busy.text  # within the dead turn's 3 s lease and a retry or two
    assert [m["role"] for m in listed] == ["user", "agent", "user", "agent"]
    dead = listed[1]
    assert dead["traces"][-1]["type"] == "error" and dead["traces"][-1]["payload"]["code"] == "TURN_LOST"
    stored = list(Message.objects.order_by("seq"))
    assert [(m.role, m.status) for m in stored] == [("user", "complete"), ("assistant", "failed"),
                                                    ("user", "complete"), ("assistant", "complete")]
    assert listed[3]["content"].startswith("Here is how it goes.\nHere again.")


@pytest.mark.django_db
def test_a_bad_file_ref_item_is_a_plain_message_not_a_python_repr(developer, demo_project):
    conversation = developer.post(conversations_url(demo_project), {"name": "x"}, format="json").json()
    for tail in ("messages", "stream"):
        response = developer.post(conversations_url(demo_project, f"/{conversation['id']}/{tail}"),
                                  {"content": "hi", "files": ["file_a", ["nested"]]}, format="json")
        assert response.status_code == 400
        assert response.json()["details"] == {"files": ["1: Not a valid string."]}
        assert response.json()["error"] == "Invalid request: files: 1: Not a valid string."
