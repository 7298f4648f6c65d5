"""Operators read conversations in the admin: the transcript as chat bubbles, nothing editable."""
import pytest

from agents.runtime import Action
from conversations.models import Conversation, Message
from tests.admin_urls import admin_url
from tests.turns import run_turn_now

pytestmark = pytest.mark.django_db


@pytest.fixture
def conversation(demo_project):
    for action in (Action("launch", None), Action("button", {"label": "Account help", "value": "account"}),
                   Action("text", "not-an-email")):
        run_turn_now(demo_project, action)
    return Conversation.objects.get()


def test_conversation_page_shows_the_transcript(admin_client, conversation):
    response = admin_client.get(admin_url("conversation", conversation.pk, app="conversations"))

    assert response.status_code == 200
    html = response.content.decode()
    assert "Hi there! Welcome to Acme Support." in html
    assert '<span class="cdt-pill">Opening hours</span>' in html
    assert 'class="cdt-bubble cdt-user' in html and "Account help" in html
    assert "not-an-email" in html
    assert html.index("Hi there!") < html.index("not-an-email") < html.index("valid email address")
    assert html.count('class="cdt-bubble') == 6


def test_an_interrupted_reply_is_marked(admin_client, demo_project):
    run_turn_now(demo_project, Action("launch", None))
    Message.objects.filter(role=Message.Role.ASSISTANT).update(status=Message.Status.INTERRUPTED)

    html = admin_client.get(admin_url("conversation", Conversation.objects.get().pk, app="conversations")
                            ).content.decode()
    assert "cdt-failed" in html and "<strong>interrupted</strong>" in html


def test_an_agent_reply_shows_its_tool_calls_and_what_it_cost(admin_client, demo_project):
    run_turn_now(demo_project, Action("launch", None))
    Message.objects.filter(role=Message.Role.ASSISTANT).update(
        traces=[{"type": "completion-start", "payload": {"text": ""}},
                {"type": "text", "payload": {"message": "Let me "}}, {"type": "text", "payload": {"message": "look."}},
                {"type": "tool-call", "payload": {"phase": "start", "toolName": "lookup_account", "callId": "c1"}},
                {"type": "tool-call", "payload": {"phase": "end", "toolName": "lookup_account", "callId": "c1"}}],
        model="fake-model", prompt_tokens=812, completion_tokens=64, tokens_estimated=True, first_token_ms=230,
        llm_calls=[{"model": "fake-model"}, {"model": "fake-model"}],
        tool_calls=[{"tool": "lookup_account", "status": "error", "durationMs": 84, "error": "status 503"}])

    html = admin_client.get(admin_url("conversation", Conversation.objects.get().pk, app="conversations")
                            ).content.decode()
    assert "<p>Let me look.</p>" in html  # the streamed chunks read as one reply
    assert "→ calls lookup_account" in html
    assert "fake-model · 812 + 64 tokens (estimated) · first token 230 ms · 2 calls" in html
    assert "tool lookup_account error 84 ms: status 503" in html


def test_conversations_and_messages_cannot_be_edited(admin_client, conversation):
    message = conversation.messages.first()

    assert admin_client.get("/admin/conversations/conversation/add/").status_code == 403
    assert admin_client.get("/admin/conversations/message/add/").status_code == 403
    response = admin_client.post(admin_url("message", message.pk, app="conversations"), {"content": "forged"})
    assert response.status_code == 403
    admin_client.post(admin_url("conversation", conversation.pk, app="conversations"), {"status": "ended"})
    assert Conversation.objects.get().status == "active"
    message.refresh_from_db()
    assert message.content == ""


def test_changelists_render(admin_client, conversation):
    for path in ("/admin/conversations/conversation/", "/admin/conversations/message/",
                 admin_url("message", conversation.messages.first().pk, app="conversations"),
                 "/admin/conversations/conversation/?q=jane&status__exact=active"):
        assert admin_client.get(path).status_code == 200, path
