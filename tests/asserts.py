"""Assertions shared by the API tests: the contract's error shape, and that a refused request wrote nothing."""

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


