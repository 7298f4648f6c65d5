"""The demo agent walked through over the v1 API: launch → button → capture (invalid, then valid) → condition → end."""
import pytest

pytestmark = pytest.mark.django_db


@pytest.fixture
def say(server_client):
    def turn(action_type: str, payload=None, user_id: str = "jane") -> list[dict]:
        response = server_client.post(f"/api/v1/conversations/{user_id}/interact",
                                      {"action": {"type": action_type, "payload": payload}}, format="json")
        assert response.status_code == 200, response.content
        return response.json()

    return turn


def messages(traces: list[dict]) -> list[str]:
    return [t["payload"]["message"] for t in traces if t["type"] == "text"]


def walk_to_the_email_prompt(say, user_id="jane"):
    greeting = say("launch", user_id=user_id)
    assert messages(greeting)[0].startswith("Hi ")
    assert greeting[-1]["type"] == "choice"
    prompt = say("button", {"label": "Account help", "value": "account"}, user_id=user_id)
    assert messages(prompt) == ["What's the email on your account?"]


def test_free_plan_walk(say, server_client):
    walk_to_the_email_prompt(say)

    retry = say("text", "not-an-email")
    assert [t["type"] for t in retry] == ["text"]
    assert "valid email" in messages(retry)[0]
    assert server_client.get("/api/v1/conversations/jane/state").json()["waiting"]["kind"] == "capture"

    done = say("text", "Jane@Example.com")
    assert messages(done) == ["Thanks! We'll email jane@example.com within 2 business days."]
    assert done[-1] == {"type": "end", "payload": {}}

    state = server_client.get("/api/v1/conversations/jane/state").json()
    assert state["status"] == "ended"
    assert state["variables"]["email"] == "jane@example.com"
    assert state["variables"]["priority"] == "normal"
    assert state["waiting"] is None


def test_premium_plan_walk_takes_the_other_branch(say, server_client):
    server_client.patch("/api/v1/conversations/jane/variables", {"plan_tier": "premium", "customer_name": "Jane"},
                        format="json")
    greeting = say("launch")
    assert messages(greeting)[0] == "Hi Jane! Welcome to Acme Support."
    say("button", {"label": "Account help", "value": "account"})

    done = say("text", "jane@example.com")

    assert "premium" in messages(done)[0] and "priority high" in messages(done)[0]
    assert done[-1]["type"] == "end"
    assert server_client.get("/api/v1/conversations/jane/state").json()["variables"]["priority"] == "high"


def test_typed_button_label_and_relaunch_resume_the_menu(say):
    say("launch")
    resumed = say("launch")
    assert resumed[-1]["type"] == "choice"

    typed = say("text", "account help")
    assert messages(typed) == ["What's the email on your account?"]


def test_talk_to_a_person_hands_off(say, server_client):
    say("launch")
    traces = say("button", {"label": "Talk to a person", "value": "human"})

    assert traces[-1]["type"] == "handoff"
    assert server_client.get("/api/v1/conversations/jane/state").json()["status"] == "handoff"
