"""Project chat (API.md §3, endpoints 11–12): a developer token talks to the project's development version."""
import json

import httpx
import pytest
from httpx_sse import connect_sse

from conversations.models import Conversation
from tests.asserts import assert_bad_request, assert_error, assert_nothing_written

pytestmark = pytest.mark.django_db

LAUNCH = {"action": {"type": "launch", "payload": None}}


def chat_url(project, tail: str = "chat") -> str:
    return f"/api/v1/projects/{project.id}/{tail}"


@pytest.fixture
def developer(developer_token, client_for):
    return client_for(developer_token)


def test_chat_runs_development_for_the_developer(developer, demo_project, user):
    response = developer.post(chat_url(demo_project), LAUNCH, format="json")

    assert response.status_code == 200
    assert [trace["type"] for trace in response.json()] == ["text", "text", "choice"]
    conversation = Conversation.objects.get()
    assert (conversation.user_id, conversation.platform, conversation.version_id) == (
        f"dev_{user.pk}", "chat", "development")
    assert response["X-RateLimit-Limit"] == "60"  # per end user, at the project's rate


def test_chat_takes_a_user_id_and_keeps_the_conversation(developer, demo_project):
    developer.post(chat_url(demo_project), {**LAUNCH, "userId": "tester-1"}, format="json")
    response = developer.post(chat_url(demo_project), {
        "action": {"type": "button", "payload": {"label": "Opening hours", "value": "hours"}},
        "userId": "tester-1"}, format="json")

    assert response.json()[0]["payload"]["message"].startswith("We're open Monday to Friday")
    assert Conversation.objects.get().turn == 2


@pytest.mark.server
@pytest.mark.django_db(transaction=True)
def test_chat_stream_is_sse_ending_with_done(daphne_url, developer_token, demo_project):
    with httpx.Client(base_url=daphne_url, headers={"Authorization": f"Bearer {developer_token}"}) as client, \
            connect_sse(client, "POST", chat_url(demo_project, "chat/stream"), json=LAUNCH) as events:
        assert events.response.headers["content-type"].startswith("text/event-stream")
        received = list(events.iter_sse())

    assert received[-1].data == "[DONE]"
    assert [json.loads(event.data)["type"] for event in received[:-1]] == ["text", "text", "choice"]
    assert Conversation.objects.get().platform == "chat"


def test_a_project_key_may_not_use_the_chat(server_client, demo_project):
    response = server_client.post(chat_url(demo_project), LAUNCH, format="json")

    assert_error(response, 403, "FORBIDDEN")
    assert_nothing_written()


def test_a_project_of_another_workspace_is_not_found(developer, other_project):
    response = developer.post(chat_url(other_project), LAUNCH, format="json")

    assert_error(response, 404, "NOT_FOUND")
    assert_nothing_written()


@pytest.mark.parametrize(("body", "field"), [
    ({**LAUNCH, "userId": "no spaces allowed"}, "userId"),
    ({**LAUNCH, "userId": 42}, "userId"),
    ({"action": {"type": "text", "payload": ""}}, "action"),
    ({"action": {"type": "launch", "payload": None}, "versionId": ""}, "versionId"),
])
def test_bad_chat_bodies_are_400_and_write_nothing(developer, demo_project, body, field):
    response = developer.post(chat_url(demo_project), body, format="json")

    assert_bad_request(response, field)


def test_chat_without_a_token_is_401(api, demo_project):
    assert_error(api.post(chat_url(demo_project), LAUNCH, format="json"), 401, "UNAUTHORIZED")
