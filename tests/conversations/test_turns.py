"""The turn pipeline (conversations/turns.py) in process: what a turn stores, the lease, stop, timeout, failure, the
replay of a finished turn, and a turn whose process died. Slow steps are real HTTP tool calls to the fake tool
server (tests/fakes/tool_server.py)."""
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from django.utils import timezone

from agents.runtime import Action
from agents.selectors import agent_spec_aget
from agents.services import project_create
from config.api.errors import Conflict
from conversations.lease import ConversationKey, lease_acquire
from conversations.models import Conversation, Message
from conversations.remote_turns import turn_follow, turn_stop
from conversations.turns import TurnRequest, turn_start
from tests.turns import slow_document

pytestmark = pytest.mark.django_db


async def start(project, text: str | None = None, *, user: str = "jane", version: str = "development"):
    spec, version_id = await agent_spec_aget(project=project, version=version)
    action = Action("text", text) if text else Action("launch", None)
    return await turn_start(request=TurnRequest(project=project, key=ConversationKey(project.id, user),
                                                action=action, spec=spec, version_id=version_id))


async def run_whole(project, text: str | None = None, **kwargs) -> tuple[str, list]:
    turn = await start(project, text, **kwargs)
    return turn.id, [event.data async for event in turn.follow()]


def replies(conversation: Conversation) -> list[Message]:
    return list(conversation.messages.order_by("seq"))


def test_a_turn_stores_both_messages_and_the_state_and_frees_the_lease(demo_project):
    turn_id, events = async_to_sync(run_whole)(demo_project)
    assert events[-1] == "[DONE]"
    assert [e["type"] for e in events[:-1]] == ["text", "text", "choice"]
    conversation = Conversation.objects.get(project=demo_project, user_id="jane")
    assert conversation.lease_token is None and conversation.turn == 1
    assert conversation.state["waiting"]["stepId"] == "menu"
    user, agent = replies(conversation)
    assert (user.seq, user.role, user.turn_id) == (1, "user", turn_id)
    assert (agent.seq, agent.role, agent.status, agent.turn_id) == (2, "assistant", "complete", turn_id)
    assert agent.traces == events[:-1] and agent.content.startswith("Hi")


def test_a_second_turn_waits_then_gets_409(demo_project, settings):
    settings.CONDUET_TURN_WAIT_SECONDS = 0
    key = ConversationKey(demo_project.id, "jane")
    async_to_sync(lease_acquire)(key=key, token="turn_" + "0" * 20)
    with pytest.raises(Conflict):
        async_to_sync(run_whole)(demo_project, "hello")
    assert not Message.objects.exists()  # nothing of the refused turn is stored


def test_an_expired_lease_is_taken_over_and_the_dead_turn_is_marked_failed(demo_project):
    """A turn whose process died leaves its user message; the next turn finds its lease expired, takes over, and
    the dead turn gets a failed reply in the sequence number it had reserved."""
    key = ConversationKey(demo_project.id, "jane")
    dead = "turn_" + "d" * 20
    async_to_sync(lease_acquire)(key=key, token=dead, reserve_messages=2, user_message={
        "turn_id": dead, "action": {"type": "launch", "payload": None}, "content": "", "version_id": "development"})
    Conversation.objects.update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    turn_id, events = async_to_sync(run_whole)(demo_project)
    messages = replies(Conversation.objects.get())
    assert [(m.seq, m.role, m.turn_id, m.status) for m in messages] == [
        (1, "user", dead, "complete"), (2, "assistant", dead, "failed"),
        (3, "user", turn_id, "complete"), (4, "assistant", turn_id, "complete")]
    assert messages[1].traces[0]["payload"]["code"] == "TURN_LOST"


def test_stop_keeps_what_was_produced_frees_the_lease_and_the_next_turn_runs(slow_project, tool_server):
    async def scenario():
        turn = await start(slow_project)
        followed = turn.follow()
        first = await anext(followed)  # "Looking it up…", then the tool call is under way
        stopped = await turn_stop(key=ConversationKey(slow_project.id, "jane"))
        rest = [event.data async for event in followed]
        return turn.id, first, stopped, rest

    turn_id, first, stopped, rest = async_to_sync(scenario)()
    assert first.data["payload"]["message"] == "Looking it up…"
    assert stopped == {"turnId": turn_id, "status": "interrupted", "traces": [first.data]}
    assert rest == ["[DONE]"]
    conversation = Conversation.objects.get()
    assert conversation.lease_token is None and conversation.turn == 0  # the state of a stopped turn is not saved
    agent = conversation.messages.get(role="assistant")
    assert (agent.status, agent.content) == ("interrupted", "Looking it up…")
    with pytest.raises(Conflict):  # nothing runs any more
        async_to_sync(turn_stop)(key=ConversationKey(slow_project.id, "jane"))


def test_stop_with_no_running_turn_is_409(demo_project):
    with pytest.raises(Conflict) as raised:
        async_to_sync(turn_stop)(key=ConversationKey(demo_project.id, "nobody"))
    assert "No turn is running" in raised.value.message


def test_a_turn_past_its_version_timeout_fails_with_what_it_produced(workspace, tool_server, settings):
    settings.CONDUET_OUTBOUND_ALLOWLIST = ["127.0.0.1"]
    project = project_create(workspace=workspace, name="Slow",
                             document=slow_document(tool_server.url, seconds=10, timeout=1))
    _turn_id, events = async_to_sync(run_whole)(project)
    assert [e["type"] for e in events[:-1]] == ["text", "error"]
    assert events[1]["payload"]["code"] == "TURN_TIMEOUT"
    agent = Message.objects.get(role="assistant")
    assert agent.status == "failed" and agent.traces == events[:-1]
    assert Conversation.objects.get().lease_token is None


def test_an_engine_fault_is_a_failed_reply_and_frees_the_conversation(demo_project, monkeypatch):
    from conversations import turns

    def broken(*args, **kwargs):
        raise RuntimeError("engine bug")

    monkeypatch.setattr(turns, "run_turn", broken)
    _turn_id, events = async_to_sync(run_whole)(demo_project)
    assert events == [{"type": "error", "payload": {"error": "The turn failed because of an internal error.",
                                                    "code": "INTERNAL"}}, "[DONE]"]
    assert Message.objects.get(role="assistant").status == "failed"
    monkeypatch.undo()
    _turn_id, events = async_to_sync(run_whole)(demo_project)  # not locked out
    assert events[0]["type"] == "text"


def test_a_finished_turn_replays_from_its_stored_reply(demo_project):
    turn_id, events = async_to_sync(run_whole)(demo_project)
    conversation_id = Conversation.objects.get().id

    async def replay(after: int):
        return [(e.seq, e.data) async for e in turn_follow(conversation_id=conversation_id, turn_id=turn_id,
                                                          after=after)]

    assert async_to_sync(replay)(0) == list(enumerate(events, start=1))
    assert async_to_sync(replay)(2) == [(3, events[2]), (4, "[DONE]")]


def test_a_production_turn_uses_the_published_settings(published_demo, api, client_for):
    """The rate limit comes from the version being run: development's later change does not apply to production."""
    from agents.models import ProjectApiKey
    from agents.services import project_api_key_create

    _row, key = project_api_key_create(project=published_demo, name="k", scope=ProjectApiKey.Scope.SERVER)
    document = published_demo.document
    document["settings"] = {**document.get("settings", {}), "rateLimit": {"perMinute": 2}}
    published_demo.document = document
    published_demo.save()
    client = client_for(key)
    body = {"action": {"type": "launch", "payload": None}}
    for _ in range(3):
        response = client.post("/api/v1/conversations/p/interact", {**body, "versionId": "production"},
                               format="json")
        assert response.status_code == 200
    assert response["X-RateLimit-Limit"] == "60"
    statuses = [client.post("/api/v1/conversations/d/interact", body, format="json").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


def test_a_production_turn_uses_the_published_timeout(workspace, tool_server, settings):
    """The turn timeout comes from the version being run, not from the development document edited since."""
    from agents.services import version_publish
    from tests.turns import run_turn_now

    settings.CONDUET_OUTBOUND_ALLOWLIST = ["127.0.0.1"]
    project = project_create(workspace=workspace, name="Slow",
                             document=slow_document(tool_server.url, seconds=2, timeout=1))
    version_publish(project=project, name="v1")
    project.refresh_from_db()
    project.document = slow_document(tool_server.url, seconds=2, timeout=60)
    project.save()

    _id, production = run_turn_now(project, Action("launch", None), user="p", version="production")
    _id, development = run_turn_now(project, Action("launch", None), user="d")
    assert production[-1]["payload"]["code"] == "TURN_TIMEOUT"
    assert development[-1]["payload"]["message"] == "Done after 2.0 s."


def test_stop_of_a_turn_whose_process_does_not_answer_is_202(demo_project, server_client, settings):
    """A turn that holds the lease but whose process died: the stop stays asked (its lease expires on its own)."""
    settings.CONDUET_STOP_WAIT_SECONDS = 0.2
    dead = "turn_" + "e" * 20
    async_to_sync(lease_acquire)(key=ConversationKey(demo_project.id, "jane"), token=dead)

    response = server_client.post("/api/v1/conversations/jane/interact/stop")

    assert response.status_code == 202
    assert response.json() == {"turnId": dead, "status": "stopping", "traces": []}
    assert Conversation.objects.get().stop_turn_id == dead


def test_one_statement_renews_every_lease_still_held_and_reports_stops(demo_project):
    """The process's watcher renews all its turns' leases at once: a lease taken over by another token is not
    renewed (that turn lost it), and a stop asked on the row comes back with the renewal."""
    from conversations.lease import leases_renew

    tokens = {user: f"turn_{n:020d}" for n, user in enumerate(["ann", "bob", "cat"])}
    ids = {}
    for user, token in tokens.items():
        ids[user] = async_to_sync(lease_acquire)(key=ConversationKey(project_id=demo_project.id, user_id=user),
                                                 token=token)["id"]
    Conversation.objects.filter(id=ids["bob"]).update(lease_token="turn_" + "9" * 20)  # taken over
    Conversation.objects.filter(id=ids["cat"]).update(stop_turn_id=tokens["cat"])  # a stop was asked
    before = Conversation.objects.get(id=ids["ann"]).lease_expires_at

    renewed = async_to_sync(leases_renew)(leases=[(ids[user], tokens[user]) for user in tokens])

    assert renewed == {ids["ann"]: None, ids["cat"]: tokens["cat"]}
    assert Conversation.objects.get(id=ids["ann"]).lease_expires_at > before
