"""Rate limits (API.md §1): per end user on interact, per key elsewhere, with X-RateLimit-* on every response."""
import time

import pytest

from agents.services import project_api_key_create
from config.api import ratelimit
from conversations.models import Message

pytestmark = pytest.mark.django_db

LAUNCH = {"action": {"type": "launch", "payload": None}}


def interact(client, user_id="jane"):
    return client.post(f"/api/v1/conversations/{user_id}/interact", LAUNCH, format="json")


@pytest.fixture
def limit_of_three(demo_project):
    """A limit of 3 per minute; returns the user id to count against."""
    demo_project.document["settings"]["rateLimit"] = {"perMinute": 3}
    demo_project.save()
    return "counted-user"


def test_every_api_response_carries_the_headers(server_client):
    for response in (interact(server_client), server_client.get("/api/v1/conversations/jane/state"),
                     server_client.get("/api/v1/conversations/nobody/state")):
        assert int(response["X-RateLimit-Limit"]) > 0
        assert 0 <= int(response["X-RateLimit-Remaining"]) < int(response["X-RateLimit-Limit"])
        reset_ms = int(response["X-RateLimit-Reset"])
        assert time.time() * 1000 < reset_ms <= (time.time() + 61) * 1000


def test_interact_counts_down_per_user(server_client, limit_of_three):
    remaining = [interact(server_client, limit_of_three)["X-RateLimit-Remaining"] for _ in range(3)]
    assert remaining == ["2", "1", "0"]
    assert interact(server_client, limit_of_three)["X-RateLimit-Limit"] == "3"


def test_past_the_limit_is_429_with_retry_after_and_no_write(server_client, limit_of_three):
    for _ in range(3):
        assert interact(server_client, limit_of_three).status_code == 200
    messages = Message.objects.count()

    response = interact(server_client, limit_of_three)

    assert response.status_code == 429
    assert response.json()["code"] == "RATE_LIMITED"
    assert 1 <= int(response["Retry-After"]) <= 120
    assert response["X-RateLimit-Remaining"] == "0"
    assert Message.objects.count() == messages
    assert interact(server_client, "another-user").status_code == 200


def test_the_stream_endpoint_shares_the_interact_limit(server_client, limit_of_three):
    for _ in range(3):
        interact(server_client, limit_of_three)
    response = server_client.post(f"/api/v1/conversations/{limit_of_three}/interact/stream", LAUNCH, format="json")

    assert response.status_code == 429
    assert response["Retry-After"]


def test_other_endpoints_are_limited_per_key(demo_project, client_for, settings):
    server_client = client_for(project_api_key_create(project=demo_project)[1])
    settings.CONDUET_API_RATE_PER_MINUTE = 2
    assert server_client.get("/api/v1/conversations/jane/state").status_code == 404
    assert server_client.patch("/api/v1/conversations/jane/variables", {"a": 1}, format="json").status_code == 200

    response = server_client.get("/api/v1/conversations/jane/state")

    assert response.status_code == 429
    assert response.json()["code"] == "RATE_LIMITED"
    assert response["Retry-After"]
    assert interact(server_client).status_code == 200  # interact is limited per user, not per key


@pytest.mark.parametrize(("path", "headers", "status"), [
    ("/api/v1/conversations/jane/state", {}, 401),
    ("/api/v1/conversations/jane/state", {"HTTP_AUTHORIZATION": "Bearer cdt_" + "x" * 40}, 401),
    ("/api/nowhere", {}, 404),
    ("/api/schema/", {}, 200),
])
def test_requests_no_key_was_counted_for_carry_the_headers_too(api, path, headers, status):
    response = api.get(path, **headers)
    assert response.status_code == status
    assert response["X-RateLimit-Limit"] == "1200"
    assert int(response["X-RateLimit-Remaining"]) == 1199


def test_anonymous_and_failed_requests_are_limited_per_address(api, settings):
    settings.CONDUET_API_RATE_PER_MINUTE = 2
    address = "10.0.0.1"
    bad_key = {"HTTP_AUTHORIZATION": "Bearer cdt_" + "x" * 40, "REMOTE_ADDR": address}
    assert [api.get("/api/v1/conversations/jane/state", **bad_key).status_code for _ in range(2)] == [401, 401]

    response = api.get("/api/v1/conversations/jane/state", **bad_key)

    assert response.status_code == 429
    assert response.json()["code"] == "RATE_LIMITED"
    assert response["Retry-After"]
    other_address = api.get("/api/v1/conversations/jane/state", **{**bad_key, "REMOTE_ADDR": "10.1.2.3"})
    assert other_address.status_code == 401


class Clock:
    def __init__(self, now: float):
        self.now = now

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    clock = Clock(1_800_000_000.0)  # a window boundary: 1.8e9 is a multiple of 60
    monkeypatch.setattr(ratelimit.time, "time", clock.time)
    return clock


async def count(key: str = "k", limit: int = 5) -> ratelimit.RateUsage:
    return await ratelimit.rate_count(group="test", key=key, limit=limit)


async def admitted(n: int, key: str = "k", limit: int = 5) -> list[bool]:
    return [not (await count(key, limit)).retry_after for _ in range(n)]


@pytest.mark.django_db(transaction=True)
async def test_a_burst_across_a_window_boundary_still_meets_the_limit(clock):
    """Fixed windows let 2× the limit through around a boundary; the sliding window does not."""
    clock.now -= 1
    assert await admitted(3) == [True] * 3
    clock.now += 2  # one second into the next window

    assert await admitted(5) == [True, True, False, False, False]


@pytest.mark.django_db(transaction=True)
async def test_retry_after_is_when_a_request_fits_again(clock):
    clock.now += 30
    assert await admitted(5) == [True] * 5
    refused = await count()
    assert (refused.remaining, refused.reset_ms) == (0, 1_800_000_060_000)
    assert refused.retry_after == 30 + 12  # the window ends in 30 s; then 1/5 of it must slide out

    clock.now += refused.retry_after - 1
    assert (await count()).retry_after == 1
    clock.now += 1
    assert await admitted(2) == [True, False]


@pytest.mark.django_db(transaction=True)
async def test_refused_requests_do_not_count(clock):
    assert await admitted(5) == [True] * 5
    for _ in range(50):
        await count()
    clock.now += 60 + 12  # the previous window weighs 4/5 now: room for one, as if nobody had knocked

    assert await admitted(2) == [True, False]
    assert await admitted(1, key="other") == [True]


def test_sync_views_leave_no_redis_connection_behind(developer, settings):
    """A DRF view counts its key in Redis from sync code. Outside daphne (the test client, a management command)
    each such call runs on a loop of its own: its client must close with it, or every request leaves a socket open
    (a test process reached a thousand, past what `select()` takes)."""
    import os

    if not settings.REDIS_URL:
        pytest.skip("the database counts the rate without Redis: no connection to leave")

    def open_sockets() -> int:
        return sum(os.readlink(f"/proc/self/fd/{fd}").startswith("socket:") for fd in os.listdir("/proc/self/fd")
                   if os.path.exists(f"/proc/self/fd/{fd}"))

    developer.get("/api/v1/projects")
    before = open_sockets()
    for _ in range(30):
        assert developer.get("/api/v1/projects").status_code == 200
    assert open_sockets() - before < 5
