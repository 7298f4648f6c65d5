"""v1 Conversations API (API.md §2): each endpoint's happy path beside its bad inputs, which must write nothing."""
import pytest

from agents.services import version_publish
from conversations.models import Conversation, Message
from tests.asserts import assert_bad_request, assert_error, assert_nothing_written

pytestmark = pytest.mark.django_db

LAUNCH = {"action": {"type": "launch", "payload": None}}


def url(user_id: str, tail: str) -> str:
    return f"/api/v1/conversations/{user_id}/{tail}"


def types(traces: list[dict]) -> list[str]:
    return [trace["type"] for trace in traces]




# --- POST /interact


def test_launch_greets_and_offers_the_menu(server_client):
    response = server_client.post(url("jane", "interact"), LAUNCH, format="json")

    assert response.status_code == 200
    traces = response.json()
    assert types(traces) == ["text", "text", "choice"]
    assert traces[0]["payload"]["message"] == "Hi there! Welcome to Acme Support."
    labels = [button["label"] for button in traces[2]["payload"]["buttons"]]
    assert labels == ["Account help", "Opening hours", "Talk to a person"]


def test_a_turn_stores_both_messages_and_the_state(server_client):
    server_client.post(url("jane", "interact"), LAUNCH, format="json")
    server_client.post(url("jane", "interact"), {"action": {"type": "text", "payload": "opening hours"}},
                       format="json")

    conversation = Conversation.objects.get(user_id="jane")
    assert conversation.turn == 2
    messages = list(conversation.messages.order_by("seq"))
    assert [(m.seq, m.role) for m in messages] == [(1, "user"), (2, "assistant"), (3, "user"), (4, "assistant")]
    assert messages[0].action == {"type": "launch", "payload": None}
    assert messages[2].content == "opening hours"
    assert messages[3].traces == [t for t in messages[3].traces if t["type"] in ("text", "choice", "end")]
    assert messages[0].turn_id == messages[1].turn_id != messages[2].turn_id
    assert messages[1].duration_ms is not None


def test_text_matching_an_intent_starts_its_workflow(server_client):
    response = server_client.post(url("jane", "interact"),
                                  {"action": {"type": "text", "payload": "what time do you open?"}}, format="json")

    assert response.status_code == 200
    assert "open Monday to Friday" in response.json()[0]["payload"]["message"]


def test_unmatched_text_gets_the_fallback_message(server_client):
    response = server_client.post(url("jane", "interact"),
                                  {"action": {"type": "text", "payload": "order a large pizza"}}, format="json")

    assert response.json() == [{"type": "text", "payload": {
        "message": "Sorry, I didn't understand that. You can ask about your account or our opening hours."}}]


def test_button_action_follows_its_port(server_client):
    server_client.post(url("jane", "interact"), LAUNCH, format="json")
    response = server_client.post(url("jane", "interact"), {
        "action": {"type": "button", "payload": {"label": "Account help", "value": "account"}}}, format="json")

    assert response.status_code == 200
    assert response.json()[-1]["payload"]["message"] == "What's the email on your account?"


def test_media_action_is_accepted(server_client):
    response = server_client.post(url("jane", "interact"), {
        "action": {"type": "media", "payload": {"url": "https://example.com/a.png", "mimeType": "image/png"}}},
        format="json")

    assert response.status_code == 200
    assert Message.objects.get(role="user").action["payload"]["url"] == "https://example.com/a.png"


def test_exclude_types_filters_the_response_but_not_the_transcript(server_client):
    body = {**LAUNCH, "config": {"excludeTypes": ["choice"]}}
    response = server_client.post(url("jane", "interact"), body, format="json")

    assert types(response.json()) == ["text", "text"]
    assert "choice" in types(Message.objects.get(role="assistant").traces)


def test_debug_adds_debug_traces(server_client):
    plain = server_client.post(url("jane", "interact"), LAUNCH, format="json").json()
    server_client.delete(url("jane", "state"))
    debug = server_client.post(url("jane", "interact"), {**LAUNCH, "config": {"debug": True}}, format="json").json()

    assert "debug" not in types(plain)
    assert "debug" in types(debug)
    assert [t for t in debug if t["type"] != "debug"] == plain


def test_production_and_version_ids_run_the_published_snapshot(server_client, demo_project):
    version = version_publish(project=demo_project, name="v1")
    demo_project.document["settings"]["fallbackMessage"] = "Changed in development."
    demo_project.save()

    def fallback(version_id: str) -> str:
        server_client.delete(url("jane", "state"))
        response = server_client.post(url("jane", "interact"), {
            "action": {"type": "text", "payload": "order a large pizza"}, "versionId": version_id}, format="json")
        assert response.status_code == 200, response.content
        return response.json()[0]["payload"]["message"]

    assert fallback("development") == "Changed in development."
    assert fallback("production").startswith("Sorry, I didn't understand that.")
    assert fallback(version.id).startswith("Sorry, I didn't understand that.")
    assert Conversation.objects.filter(user_id="jane", closed_at__isnull=True).get().version_id == version.id


@pytest.mark.parametrize("version_id", ["production", "ver_doesnotexist", "staging"])
def test_unknown_version_is_404_and_writes_nothing(server_client, version_id):
    response = server_client.post(url("jane", "interact"), {**LAUNCH, "versionId": version_id}, format="json")

    assert_error(response, 404, "NOT_FOUND")
    assert_nothing_written()


def test_version_of_another_project_is_404(server_client, other_project):
    version = version_publish(project=other_project, name="theirs")
    response = server_client.post(url("jane", "interact"), {**LAUNCH, "versionId": version.id}, format="json")

    assert_error(response, 404, "NOT_FOUND")
    assert_nothing_written()


BAD_BODIES = [
    pytest.param({"action": {"type": "dance", "payload": None}}, "action", id="unknown action type"),
    pytest.param({"action": {"type": "text"}}, "action", id="text without payload"),
    pytest.param({"action": {"type": "text", "payload": 42}}, "action", id="text payload not a string"),
    pytest.param({"action": {"type": "text", "payload": ""}}, "action", id="empty text"),
    pytest.param({"action": {"type": "text", "payload": "x" * 4001}}, "action", id="text over 4000 chars"),
    pytest.param({"action": {"type": "launch", "payload": "hi"}}, "action", id="launch with a payload"),
    pytest.param({"action": {"type": "button", "payload": {"value": 1}}}, "action", id="button without label"),
    pytest.param({"action": {"type": "button", "payload": "Billing"}}, "action", id="button payload a string"),
    pytest.param({"action": {"type": "media", "payload": {"url": "ftp://x/y.png", "mimeType": "image/png"}}},
                 "action", id="media url not http"),
    pytest.param({"action": {"type": "media", "payload": {"url": "https://x.io/a.png"}}}, "action",
                 id="media without mimeType"),
    pytest.param({"action": "launch"}, "action", id="action not an object"),
    pytest.param({}, "action", id="no action"),
    pytest.param({**LAUNCH, "config": {"excludeTypes": ["nonsense"]}}, "config", id="unknown excluded type"),
    pytest.param({**LAUNCH, "config": {"debug": "maybe"}}, "config", id="debug not a boolean"),
    pytest.param([LAUNCH], "non_field_errors", id="body is a list"),
]


@pytest.mark.parametrize(("body", "field"), BAD_BODIES)
def test_bad_interact_body_is_400_with_details(server_client, body, field):
    assert_bad_request(server_client.post(url("jane", "interact"), body, format="json"), field)


def test_text_of_exactly_4000_chars_is_accepted(server_client):
    response = server_client.post(url("jane", "interact"), {"action": {"type": "text", "payload": "x" * 4000}},
                                  format="json")
    assert response.status_code == 200


@pytest.mark.parametrize("user_id", ["x" * 129, "jane%20doe", "jane!", "%C3%A9"])
def test_bad_user_id_is_400(server_client, user_id):
    assert_bad_request(server_client.post(url(user_id, "interact"), LAUNCH, format="json"), "userId")


@pytest.mark.parametrize("user_id", ["a", "x" * 128, "user.name@example.com", "anon_1:2-3"])
def test_good_user_ids_are_accepted(server_client, user_id):
    assert server_client.post(url(user_id, "interact"), LAUNCH, format="json").status_code == 200


def test_malformed_json_is_400(server_client):
    response = server_client.post(url("jane", "interact"), '{"action": ', content_type="application/json")

    assert_error(response, 400, "BAD_REQUEST")
    assert_nothing_written()


def test_non_json_body_is_415(server_client):
    response = server_client.post(url("jane", "interact"), "action=launch",
                                  content_type="application/x-www-form-urlencoded")

    assert_error(response, 415, "UNSUPPORTED_MEDIA_TYPE")
    assert_nothing_written()


def test_body_over_one_mib_is_413(server_client):
    body = '{"action": {"type": "text", "payload": "' + "x" * (1024 * 1024) + '"}}'
    response = server_client.post(url("jane", "interact"), body, content_type="application/json")

    assert_error(response, 413, "PAYLOAD_TOO_LARGE")
    assert_nothing_written()


def test_wrong_method_is_405(server_client):
    assert_error(server_client.get(url("jane", "interact")), 405, "METHOD_NOT_ALLOWED")
    assert_error(server_client.post(url("jane", "variables"), {}, format="json"), 405, "METHOD_NOT_ALLOWED")


# --- GET / PUT / DELETE /state and PATCH /variables


def test_get_state_without_a_session_is_404(server_client):
    assert_error(server_client.get(url("jane", "state")), 404, "NOT_FOUND")


def test_get_state_after_turns(server_client):
    server_client.post(url("jane", "interact"), LAUNCH, format="json")
    state = server_client.get(url("jane", "state")).json()

    assert state["versionId"] == "development"
    assert state["status"] == "active"
    assert state["turn"] == 1
    assert state["variables"]["customer_name"] == "there"
    assert state["waiting"]["kind"] == "buttons"
    assert state["history"][-1]["role"] == "assistant"
    assert state["updatedAt"].endswith("Z")


SEED_STATE = {"versionId": "development", "status": "active", "turn": 3,
              "variables": {"customer_name": "Jane Smith"},
              "stack": [{"workflowId": "…", "stepId": "…"}],
              "waiting": None,
              "history": [{"role": "user", "content": "…"}],
              "updatedAt": "…"}


def test_put_state_replaces_it_and_creates_the_session(server_client):
    response = server_client.put(url("jane", "state"), SEED_STATE, format="json")

    assert response.status_code == 200, response.content
    state = response.json()
    assert {k: state[k] for k in ("versionId", "status", "turn", "variables", "stack", "waiting", "history")} == {
        k: SEED_STATE[k] for k in ("versionId", "status", "turn", "variables", "stack", "waiting", "history")}
    assert server_client.get(url("jane", "state")).json() == state


def test_put_state_then_interact_uses_the_variables(server_client):
    server_client.put(url("jane", "state"), {"variables": {"customer_name": "Jane Smith"}}, format="json")
    traces = server_client.post(url("jane", "interact"), LAUNCH, format="json").json()

    assert traces[0]["payload"]["message"] == "Hi Jane Smith! Welcome to Acme Support."


BAD_STATES = [
    pytest.param({**SEED_STATE, "status": "sleeping"}, "status", id="unknown status"),
    pytest.param({**SEED_STATE, "turn": -1}, "turn", id="negative turn"),
    pytest.param({**SEED_STATE, "variables": ["a"]}, "variables", id="variables not an object"),
    pytest.param({**SEED_STATE, "variables": {"not valid": 1}}, "variables", id="bad variable name"),
    pytest.param({**SEED_STATE, "stack": [{"workflowId": "wf"}]}, "stack", id="stack frame without step"),
    pytest.param({**SEED_STATE, "waiting": {"workflowId": "w", "stepId": "s", "kind": "sleep"}}, "waiting",
                 id="unknown waiting kind"),
    pytest.param({**SEED_STATE, "history": [{"role": "system", "content": "x"}]}, "history", id="bad history role"),
    pytest.param({**SEED_STATE, "history": [{"role": "user", "content": 0}]}, "history", id="history content a number"),
    pytest.param({**SEED_STATE, "versionId": 7}, "versionId", id="versionId a number"),
    pytest.param({**SEED_STATE, "color": "blue"}, "color", id="unknown field"),
    pytest.param(["not", "an", "object"], "non_field_errors", id="not an object"),
]


@pytest.mark.parametrize(("body", "field"), BAD_STATES)
def test_invalid_put_state_is_400_and_writes_nothing(server_client, body, field):
    assert_bad_request(server_client.put(url("jane", "state"), body, format="json"), field)


def test_invalid_put_state_leaves_an_existing_session_untouched(server_client):
    server_client.post(url("jane", "interact"), LAUNCH, format="json")
    before = server_client.get(url("jane", "state")).json()

    assert_error(server_client.put(url("jane", "state"), {"status": "bogus"}, format="json"), 400, "BAD_REQUEST")
    assert server_client.get(url("jane", "state")).json() == before


def test_patch_variables_merges_and_creates_the_session(server_client):
    first = server_client.patch(url("jane", "variables"), {"plan_tier": "premium"}, format="json")
    second = server_client.patch(url("jane", "variables"), {"customer_name": "Jane"}, format="json")

    assert first.status_code == second.status_code == 200
    assert second.json()["variables"] == {"plan_tier": "premium", "customer_name": "Jane"}
    assert Conversation.objects.count() == 1


@pytest.mark.parametrize("body", [["plan_tier"], "premium", 42, None])
def test_patch_variables_with_a_non_object_body_is_400(server_client, body):
    import json

    response = server_client.patch(url("jane", "variables"), json.dumps(body), content_type="application/json")

    assert_error(response, 400, "BAD_REQUEST")
    assert_nothing_written()


def test_delete_ends_the_session_keeps_the_transcript_and_starts_fresh(server_client):
    server_client.post(url("jane", "interact"), LAUNCH, format="json")
    server_client.patch(url("jane", "variables"), {"customer_name": "Jane"}, format="json")

    response = server_client.delete(url("jane", "state"))

    assert response.status_code == 204
    assert_error(server_client.get(url("jane", "state")), 404, "NOT_FOUND")
    old = Conversation.objects.get(user_id="jane")
    assert old.closed_at is not None and old.messages.count() == 2

    traces = server_client.post(url("jane", "interact"), LAUNCH, format="json").json()
    assert traces[0]["payload"]["message"] == "Hi there! Welcome to Acme Support."
    assert Conversation.objects.filter(user_id="jane").count() == 2
    assert server_client.get(url("jane", "state")).json()["turn"] == 1


def test_delete_without_a_session_is_still_204(server_client):
    assert server_client.delete(url("jane", "state")).status_code == 204
    assert_nothing_written()


@pytest.mark.parametrize(("method", "tail"), [("get", "state"), ("put", "state"), ("delete", "state"),
                                              ("patch", "variables")])
def test_state_endpoints_validate_the_user_id(server_client, method, tail):
    response = getattr(server_client, method)(url("bad user", tail), {}, format="json")
    assert_error(response, 400, "BAD_REQUEST")


def test_a_trailing_newline_does_not_sneak_past_validation(server_client):
    assert_bad_request(server_client.post(url("jane%0A", "interact"), LAUNCH, format="json"), "userId")
    response = server_client.patch(url("jane", "variables"), {"name\n": 1}, format="json")
    assert response.status_code == 200  # PATCH merges any JSON object; PUT validates variable names
    assert_error(server_client.put(url("bob", "state"), {"variables": {"name\n": 1}}, format="json"), 400,
                 "BAD_REQUEST")


@pytest.mark.parametrize(("method", "tail", "body"), [
    ("post", "interact", {"action": {"type": "text", "payload": "hi\u0000there"}}),
    ("patch", "variables", {"name\u0000": 1}),
    ("patch", "variables", {"name": {"deep": ["x\u0000"]}}),
    ("put", "state", {"variables": {"a": "\u0000"}}),
])
def test_nul_characters_are_refused_before_anything_is_written(server_client, method, tail, body):
    response = getattr(server_client, method)(url("jane", tail), body, format="json")

    assert_error(response, 400, "BAD_REQUEST")
    assert "NUL" in response.json()["error"]
    assert_nothing_written()


DEEP = "[" * 5000 + "]" * 5000
BAD_RAW_BODIES = [
    ("post", "interact", '{"action": {"type": "text", "payload": ' + DEEP + "}}", "nested deeper"),
    ("patch", "variables", '{"x": ' + DEEP + "}", "nested deeper"),
    ("patch", "variables", '{"x": ' + "[" * 65 + "]" * 65 + "}", "nested deeper"),
    ("put", "state", '{"variables": ' + "{\"a\": " * 3000 + "1" + "}" * 3000 + "}", "nested deeper"),
    ("post", "interact", '{"action": {"type": "text", "payload": "\\ud800"}}', "surrogates"),
    ("patch", "variables", '{"\\udfff": 1}', "surrogates"),
    ("patch", "variables", '{"x": NaN}', "not valid JSON"),
    ("patch", "variables", '{"x": 1e400}', "finite"),
]


@pytest.mark.parametrize(("method", "tail", "raw", "says"), BAD_RAW_BODIES)
def test_bodies_the_database_or_parser_cannot_take_are_400(server_client, method, tail, raw, says):
    """Deep nesting, lone surrogates, NaN and infinities were 500s (RecursionError, encoding, jsonb errors)."""
    response = getattr(server_client, method)(url("jane", tail), raw, content_type="application/json")

    assert_error(response, 400, "BAD_REQUEST")
    assert says in response.json()["error"]
    assert_nothing_written()


def test_nesting_within_the_limit_is_stored(server_client):
    nested = {"a": [[[[{"b": "deep enough"}]]]]}
    response = server_client.patch(url("jane", "variables"), {"x": nested}, format="json")
    assert response.status_code == 200 and response.json()["variables"]["x"] == nested


@pytest.mark.parametrize("turn", [1e20, 2**31, 10**30])
def test_a_turn_counter_out_of_range_is_400(server_client, turn):
    response = server_client.put(url("jane", "state"), {"turn": turn}, format="json")
    assert_bad_request(response, "turn")


def test_widget_keys_may_not_ask_for_debug(client_for, widget_key, demo_project):
    version_publish(project=demo_project, name="v1")
    response = client_for(widget_key).post(url("anon_1", "interact"), {
        "action": {"type": "launch", "payload": None}, "config": {"debug": True}}, format="json")
    assert_error(response, 403, "FORBIDDEN")
    assert_nothing_written()


def test_widget_interact_is_capped_per_address(client_for, widget_key, demo_project, settings):
    """A public widget key cannot open conversations for any number of anon_ ids from one address."""
    version_publish(project=demo_project, name="v1")
    settings.CONDUET_WIDGET_RATE_PER_ADDRESS = 5
    widget = client_for(widget_key)
    statuses = [widget.post(url(f"anon_{i}", "interact"), {"action": {"type": "launch", "payload": None}},
                            format="json").status_code for i in range(8)]
    assert statuses == [200] * 5 + [429] * 3
    assert Conversation.objects.count() == 5


def test_widget_interact_is_capped_per_key(client_for, widget_key, demo_project, settings):
    version_publish(project=demo_project, name="v1")
    settings.CONDUET_WIDGET_RATE_PER_KEY = 3
    widget = client_for(widget_key)
    statuses = [widget.post(url(f"anon_{i}", "interact"), {"action": {"type": "launch", "payload": None}},
                            format="json", REMOTE_ADDR=f"10.0.0.{i}").status_code for i in range(5)]
    assert statuses == [200] * 3 + [429] * 2
