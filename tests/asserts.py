"""Assertions shared by the API tests: the contract's error shape, and that a refused request wrote nothing."""
import itertools
import time

from conversations.models import Conversation, Message


def assert_error(response, status: int, code: str) -> dict:
    """The response is the contract's `{"error", "code"}` with this status; returns the body."""
    assert response.status_code == status, response.content
    body = response.json()
    assert body["code"] == code
    assert isinstance(body["error"], str) and body["error"]
    return body


def assert_nothing_written() -> None:
    assert Conversation.objects.count() == 0
    assert Message.objects.count() == 0


def assert_bad_request(response, field: str) -> None:
    """A 400 whose details name `field`, and no conversation or message written."""
    body = assert_error(response, 400, "BAD_REQUEST")
    assert field in body["details"], body
    assert_nothing_written()


def roomy_user_id(project, prefix: str = "user") -> str:
    """A user id whose interact rate-limit window has more than 15 s left. django-ratelimit's fixed windows start
    at an offset that depends on the counted key, so a test that counts up to a limit picks a key whose window
    cannot roll over (and reset the count) halfway through."""
    for n in itertools.count():
        if window_seconds_left(f"{project.id}:{prefix}{n}") > 15:
            return f"{prefix}{n}"


def window_seconds_left(value: str, period: int = 60) -> float:
    from django_ratelimit.core import _get_window  # the library's own window arithmetic

    return _get_window(value, period) - time.time()
