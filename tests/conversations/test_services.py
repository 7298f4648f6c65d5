"""The turn service: the lease, what a turn stores, and what a failed turn leaves behind."""
from datetime import timedelta

import pytest
from django.utils import timezone

from agents.runtime import Action
from config.api.errors import Conflict
from conversations.models import Conversation, Message
from conversations.services import TurnRequest, turn_begin, turn_run

pytestmark = pytest.mark.django_db


def request_for(project, text: str | None = None) -> TurnRequest:
    action = Action("text", text) if text else Action("launch", None)
    return TurnRequest(project=project, user_id="jane", action=action)


def test_a_second_turn_waits_then_gets_409(demo_project, settings):
    settings.CONDUET_TURN_WAIT_SECONDS = 0
    running = turn_begin(request=request_for(demo_project))

    with pytest.raises(Conflict):
        turn_run(request=request_for(demo_project, "hello"))

    list(running.run())
    running.finish()
    assert Message.objects.count() == 2  # the rejected turn wrote nothing
    turn_run(request=request_for(demo_project, "hello"))
    assert list(Message.objects.order_by("seq").values_list("seq", flat=True)) == [1, 2, 3, 4]


def test_an_expired_lease_is_taken_over(demo_project, settings):
    settings.CONDUET_TURN_WAIT_SECONDS = 0
    stale = turn_begin(request=request_for(demo_project))
    Conversation.objects.update(lease_expires_at=timezone.now() - timedelta(seconds=1))

    turn, _traces = turn_run(request=request_for(demo_project, "hello"))

    assert Message.objects.filter(turn_id=turn.id).count() == 2
    list(stale.run())
    state = Conversation.objects.get().state
    with pytest.raises(Conflict):
        stale.finish()  # the old turn lost its lease: it may not overwrite the newer state
    assert Conversation.objects.get().state == state
    assert Message.objects.get(turn_id=stale.id, role="assistant").status == "interrupted"


def test_a_failed_turn_keeps_what_was_produced_and_frees_the_conversation(demo_project):
    turn = turn_begin(request=request_for(demo_project))
    produced = iter(turn.run())
    next(produced)

    turn.fail(Message.Status.INTERRUPTED)

    conversation = Conversation.objects.get()
    assert conversation.lease_token is None
    assert conversation.turn == 0
    reply = Message.objects.get(role="assistant")
    assert reply.status == "interrupted"
    assert reply.content == "Hi there! Welcome to Acme Support."
    turn_run(request=request_for(demo_project))  # not locked out
    assert Conversation.objects.get().turn == 1


def test_reaching_an_end_step_marks_the_session_ended_and_the_next_launch_starts_over(demo_project):
    turn_run(request=request_for(demo_project, "what are your opening hours"))
    conversation = Conversation.objects.get()
    assert conversation.status == "ended"

    _turn, traces = turn_run(request=request_for(demo_project))

    assert traces[0]["payload"]["message"] == "Hi there! Welcome to Acme Support."
    conversation.refresh_from_db()
    assert conversation.status == "active"
    assert conversation.turn == 2


def test_a_failed_write_at_the_end_of_a_turn_does_not_lock_the_user_out(demo_project, monkeypatch):
    from django.db import DatabaseError

    from conversations import services

    real_release = services.lease_release

    def release_failing_with_state(conversation, token, **changes):
        if "state" in changes:
            raise DatabaseError("disk full")
        return real_release(conversation, token, **changes)

    monkeypatch.setattr(services, "lease_release", release_failing_with_state)
    with pytest.raises(DatabaseError):
        turn_run(request=request_for(demo_project))
    monkeypatch.undo()

    assert Conversation.objects.get().lease_token is None
    assert Message.objects.filter(role="assistant").count() == 1  # the reply was kept
    turn_run(request=request_for(demo_project, "hello"))
    assert Conversation.objects.get().turn == 1
