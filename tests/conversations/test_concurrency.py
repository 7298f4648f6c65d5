"""Turns for one user never interleave (API.md §2, DESIGN.md lease), under real concurrency against daphne."""
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from django.db import connections

from conversations.models import Conversation, Message
from tests.live import daphne_server, database_url

pytestmark = [pytest.mark.server, pytest.mark.django_db(transaction=True)]


def post_turns(base_urls: list[str], key: str, count: int, user_id: str = "jane") -> list[httpx.Response]:
    def one(i: int) -> httpx.Response:
        body = {"action": {"type": "text", "payload": f"message number {i}"}}
        return httpx.post(f"{base_urls[i % len(base_urls)]}/api/v1/conversations/{user_id}/interact", json=body,
                          headers={"Authorization": f"Bearer {key}"}, timeout=60)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(one, range(count)))


def assert_complete_turns_in_order(successes: int) -> None:
    conversation = Conversation.objects.get(user_id="jane")
    messages = list(conversation.messages.order_by("seq"))
    assert conversation.turn == successes
    assert conversation.lease_token is None
    assert len(messages) == 2 * successes
    assert [m.seq for m in messages] == list(range(1, 2 * successes + 1))
    for user_message, reply in zip(messages[::2], messages[1::2], strict=True):
        assert (user_message.role, reply.role) == ("user", "assistant")
        assert user_message.turn_id == reply.turn_id
        assert reply.status == "complete"
    texts = [m.content for m in messages[::2]]
    assert len(set(texts)) == len(texts), "a message was stored twice"
    history_users = [h["content"] for h in conversation.state["history"] if h["role"] == "user"]
    assert history_users == texts[-len(history_users):]


def test_twenty_concurrent_turns_for_one_user_all_complete_in_order(daphne_url, project_key):
    responses = post_turns([daphne_url], project_key, 20)

    assert [r.status_code for r in responses] == [200] * 20, [r.text for r in responses if r.status_code != 200]
    assert_complete_turns_in_order(20)
    assert Message.objects.filter(role="user").count() == 20


@pytest.fixture
def impatient_server(django_db_blocker):
    """A second daphne process on the same database and cache, whose turns wait at most 0 s for the lease."""
    env = {"DATABASE_URL": database_url(connections["default"].settings_dict), "CONDUET_TURN_WAIT_SECONDS": "0",
           "LOG_LEVEL": "WARNING", "CONDUET_DB_POOL_MIN": "0"}
    with daphne_server(env=env) as url:
        yield url


def test_turns_that_cannot_wait_get_409_and_lose_nothing(impatient_server, daphne_url, project_key):
    responses = post_turns([impatient_server], project_key, 20)

    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 409}
    conflicts = [r.json() for r in responses if r.status_code == 409]
    assert all(body["code"] == "CONFLICT" for body in conflicts)
    assert_complete_turns_in_order(statuses.count(200))


def test_the_rate_limit_holds_across_processes(impatient_server, daphne_url, project_key, demo_project):
    demo_project.document["settings"]["rateLimit"] = {"perMinute": 5}
    demo_project.save()
    headers = {"Authorization": f"Bearer {project_key}"}
    body = {"action": {"type": "launch", "payload": None}}
    user_id = "counted-user"

    statuses = [
        httpx.post(f"{url}/api/v1/conversations/{user_id}/interact", json=body, headers=headers).status_code
        for url in [daphne_url, impatient_server] * 4
    ]

    assert statuses == [200] * 5 + [429] * 3
