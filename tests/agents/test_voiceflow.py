"""Voiceflow import (API.md §3, endpoint 6): the three real exports in ../shared/fixtures/voiceflow (read from there,
never copied) import with their warnings and talk through their connected parts; our own newer-format fixture maps
every mapped node type exactly; broken exports are refused or warned about, never a 500."""
import copy
import json
import os
import random
from pathlib import Path

import pytest

from agents.importing import ImportRefused, document_import
from agents.importing.voiceflow import MAX_NODES
from agents.models import Project
from agents.services import project_update
from tests.asserts import assert_error
from tests.turns import say, texts


def _shared_fixtures() -> Path | None:
    """The workplace's shared fixtures, beside the checkout (`../shared`), or where CONDUET_SHARED_DIR says; a
    checkout elsewhere (a CI clone in /tmp) finds them at the workplace's own path."""
    candidates = [os.environ.get("CONDUET_SHARED_DIR"), Path(__file__).resolve().parents[3] / "shared", "/work/shared"]
    for candidate in filter(None, candidates):
        folder = Path(candidate) / "fixtures" / "voiceflow"
        if folder.is_dir():
            return folder
    return None


SHARED = _shared_fixtures()
OWN = Path(__file__).resolve().parent / "fixtures" / "voiceflow-all-steps.vf"
URL = "/api/v1/projects/import"
LAUNCH = {"action": {"type": "launch", "payload": None}}


def export(name: str) -> dict:
    if name == "own":
        return json.loads(OWN.read_text(encoding="utf-8"))
    if SHARED is None:
        pytest.skip("The shared Voiceflow exports (../shared/fixtures/voiceflow) are not on this machine.")
    return json.loads((SHARED / name).read_text(encoding="utf-8"))


@pytest.fixture
def no_model(settings):
    settings.CONDUET_LLM_BASE_URL = ""


def imported(developer, name: str) -> dict:
    response = developer.post(URL, export(name), format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["format"] == "voiceflow"
    return body


def chat(developer, project: dict, body: dict) -> list[dict]:
    response = developer.post(f"/api/v1/projects/{project['id']}/chat", body, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def workflow(document: dict, workflow_id: str) -> dict:
    return next(w for w in document["workflows"] if w["id"] == workflow_id)


# --- the three real exports ----------------------------------------------------------------------------------------

@pytest.mark.django_db
def test_burger_legacy_imports_and_orders_through_its_intent(developer, no_model):
    body = imported(developer, "burger-legacy.vf")

    assert body["warnings"] == ["Intent 'order_burger' fills slots in Voiceflow; Conduet intents fill none (ask "
                                "for them with capture steps)."]
    assert [w["id"] for w in body["workflows"]] == ["wf_root", "wf_intent_order_burger"]
    assert body["settings"]["fallbackMessage"] == "Sorry I didn't catch that."  # the prompt's reprompt
    assert texts(chat(developer, body, LAUNCH)) == ["Welcome to Voiceflow Burger",
                                                    "What would you like to order today?"]
    order = chat(developer, body, say("I would like a large cheeseburger"))
    assert texts(order) == ["You have ordered a   ", "Would you like to order something else?"]  # no slots
    assert order[-1]["type"] == "choice" and order[-1]["payload"]["buttons"][0]["label"] == "Yes"
    assert texts(chat(developer, body, say("yes")))[0] == "Welcome to Voiceflow Burger"


@pytest.mark.django_db
def test_fortune_teller_imports_and_asks_the_model(developer, model):
    body = imported(developer, "fortune-teller.vf")

    assert [w["name"] for w in body["workflows"]][0] == "Start Here 🚀"
    assert any("(generative 'Response AI')" in w and "mapped to an ai step" in w for w in body["warnings"])
    assert any("saves the whole response into 'response'" in w for w in body["warnings"])
    assert len(body["warnings"]) == 2
    first = "".join(texts(chat(developer, body, LAUNCH)))
    assert first.startswith("You said: You are a magical all knowing wizard.")
    second = "".join(texts(chat(developer, body, say("Will I be rich?"))))
    assert second.endswith("Your question:\nWill I be rich?")
    # Its topics are entered by their intents; the component comes back to the topic.
    # (a new conversation: the one above waits in its capture step, which takes whatever is typed)
    learn = texts(chat(developer, body, {**say("teach me about components"), "userId": "learner"}))
    assert learn[0].startswith("Components allow you to create a reusable set of steps")
    assert "This is a component!" in learn and learn.index("Now we're back on the main level!") > learn.index(
        "This is a component!")


@pytest.mark.django_db
def test_starter_template_imports_with_its_warnings_and_its_examples_run(developer, model, user):
    body = imported(developer, "starter-template.vf")

    warnings = body["warnings"]
    assert any("(cardV2 'Card')" in w and "not supported" in w for w in warnings)
    assert any("(carousel 'Card')" in w and "not supported" in w for w in warnings)
    assert any("(api)" in w and "no tool could be made (http.url" in w for w in warnings)
    assert any("captures into 'user_id'" in w for w in warnings)
    assert texts(chat(developer, body, LAUNCH)) == []  # its root's start is connected to nothing, as in Voiceflow
    # The connected examples sit in its template diagram: start there, at the "Welcome" block.
    project = Project.objects.get(id=body["id"])
    examples = copy.deepcopy(workflow(body, "wf_template_diagram"))
    examples["connections"].append({"source": examples["steps"][0]["id"], "port": "next",
                                    "target": "6438725382cf9d2273b9058d"})
    project_update(project=project, document={"workflows": [examples if w["id"] == examples["id"] else w
                                                            for w in body["workflows"]],
                                              "settings": {**body["settings"], "startWorkflowId": examples["id"]}})
    assert texts(chat(developer, body, {**LAUNCH, "userId": "probe"})) == [
        "Ask any question, and we'll use the response AI step to provide a contextual response."]
    answer = "".join(texts(chat(developer, body, {**say("what is AI?"), "userId": "probe"})))
    assert answer == "You said: Based on the users response what is AI?, respond to the user"


# --- our own fixture: every mapped node type -------------------------------------------------------------------------

def test_own_fixture_maps_every_node_type_exactly():
    document, warnings, kind = document_import(export("own"))

    assert kind == "voiceflow"
    main = workflow(document, "wf_main")
    steps = {step["id"]: (step["type"], step["data"]) for step in main["steps"]}
    assert steps == {
        "start0": ("start", {}),
        "t_hello": ("message", {"texts": ["Hello {{ customer }}!", "Hi {{ customer }}, [our site](https://example.com)"]}),
        "bt_menu": ("buttons", {"buttons": [{"label": "Order", "value": "b0"},
                                            {"label": "Help {{ customer }}", "value": "b1"}]}),
        "cap_qty": ("capture", {"variable": "qty"}),
        "if_qty": ("condition", {"if": "(((qty)|float > (10)|float))"}),
        "if_qty_2": ("condition", {"if": '(((qty)|string == (5)|string) or (("VIP")|string in (customer)|string))'}),
        "set_total": ("set", {"assign": {"total": "(qty|float) * 2", "kind": '("bulk of " ~ qty)'}}),
        "api_price": ("api", {"tool": "voiceflow_api_1", "save": {"price": "data.price", "kind": "items.0.id"},
                              "args": {"customer": "{{ customer }}", "qty": "{{ qty }}", "token": "{{ token }}"}}),
        "t_total": ("message", {"text": "Total {{ total }}, {not a var} {{ '{' }}{ raw }}"}),
        "vis": ("media", {"url": "https://example.com/{{ kind }}.png"}),
        "gen": ("ai", {"prompt": "Say thanks to {{ customer }}"}),
        "aiset": ("ai", {"prompt": "The user's mood", "saveTo": "sentiment"}),
        "comp": ("jump", {"workflowId": "wf_comp"}),
        "bye": ("end", {}),
        "choice": ("buttons", {"buttons": [{"label": "Yes please", "value": "Yes", "utterances": ["yes", "sure"]}]}),
        "goto_help": ("jump", {"workflowId": "wf_help"}),
    }
    assert {(c["source"], c["port"], c["target"]) for c in main["connections"]} == {
        ("start0", "next", "t_hello"), ("t_hello", "next", "bt_menu"), ("bt_menu", "button:0", "cap_qty"),
        ("bt_menu", "button:1", "comp"), ("bt_menu", "noMatch", "choice"), ("cap_qty", "next", "if_qty"),
        ("cap_qty", "fail", "set_total"), ("if_qty", "true", "set_total"), ("if_qty", "false", "if_qty_2"),
        ("if_qty_2", "true", "t_total"), ("if_qty_2", "false", "t_total"), ("set_total", "next", "api_price"),
        ("api_price", "next", "t_total"), ("api_price", "error", "t_total"), ("t_total", "next", "vis"),
        ("vis", "next", "gen"),  # the card between them is walked through
        ("gen", "next", "aiset"), ("aiset", "next", "goto_help"), ("aiset", "error", "goto_help"),
        ("comp", "next", "bye"), ("choice", "button:0", "cap_qty")}
    assert workflow(document, "wf_help")["steps"][0] == {
        "id": "intent_help", "type": "start", "data": {"intents": ["I need help", "help me please"]}}
    assert document["tools"] == [{
        "id": "voiceflow_api_1", "description": "price lookup",
        "parameters": {"type": "object", "properties": {"customer": {}, "qty": {}, "token": {}}},
        "http": {"method": "POST", "url": "https://api.example.com/price?qty={{ qty }}", "timeoutMs": 10000,
                 "headers": {"Authorization": "Bearer {{ token }}"},
                 "body": {"customer": "{{ customer }}", "count": "{{ qty }}"}}}]
    assert {"name": "customer", "description": "from Voiceflow", "default": "friend"} in document["variables"]
    assert not {"user_id", "last_utterance"} & {v["name"] for v in document["variables"]}  # Conduet's own
    assert warnings == [
        "Node card (cardV2 'Card') in diagram 'Main': this node type is not supported; skipped, the conversation "
        "goes on by its next path.",
        "Node gen (generative 'Response AI') in diagram 'Main': mapped to an ai step; its own model, temperature, "
        "token limit and system prompt are not carried over (the project's model answers).",
        "Node aiset (ai_set 'AI Set') in diagram 'Main': mapped to ai steps that extract each value; their own "
        "model settings are not carried over."]


@pytest.mark.django_db
def test_own_fixture_talks_through_its_paths(developer, no_model):
    body = imported(developer, "own")

    first = chat(developer, body, LAUNCH)
    assert texts(first)[0] in ("Hello friend!", "Hi friend, [our site](https://example.com)")  # its variants
    assert [b["label"] for b in first[-1]["payload"]["buttons"]] == ["Order", "Help friend"]
    chat(developer, body, {"action": {"type": "button", "payload": {"label": "Order", "value": "b0"}}})
    walk = chat(developer, body, say("3"))
    assert texts(walk) == ["Total , {not a var} {{ raw }}", "Sorry, I didn't understand that.",
                           "Sorry, I didn't understand that.", "Here is some help."]
    assert [t["type"] for t in walk if t["type"] in ("visual", "end")] == ["visual", "end"]
    chat(developer, body, LAUNCH)
    component = chat(developer, body, {"action": {"type": "button", "payload": {"label": "Help", "value": "b1"}}})
    assert texts(component) == ["Inside the component."] and component[-1]["type"] == "end"
    assert texts(chat(developer, body, say("help me please"))) == ["Here is some help."]


# --- refused or warned, never a 500 -------------------------------------------------------------------------------

@pytest.mark.django_db
@pytest.mark.parametrize(("body", "content_type"), [
    (b"{not json", "application/json"),
    (b"[1, 2, 3]", "application/json"),
    (b'{"hello": "world"}', "application/json"),
    (b'{"diagrams": {"d": {"nodes": []}}, "version": {}}', "application/json"),
    (b'{"diagrams": {"d": 1}, "version": {}}', "application/json"),
    (b"[" * 70 + b"]" * 70, "application/json"),
])
def test_malformed_bodies_are_400_and_store_nothing(developer, body, content_type):
    response = developer.generic("POST", URL, body, content_type=content_type)

    assert_error(response, 400, "BAD_REQUEST")
    assert Project.objects.count() == 0


@pytest.mark.django_db
def test_a_huge_export_is_400(developer):
    nodes = {f"n{i}": {"nodeID": f"n{i}", "type": "exit", "data": {}} for i in range(MAX_NODES + 1)}

    body = assert_error(developer.post(URL, {"diagrams": {"d": {"name": "Big", "nodes": nodes}},
                                             "version": {"rootDiagramID": "d"}}, format="json"), 400, "BAD_REQUEST")

    assert "diagrams" in body["details"] and Project.objects.count() == 0


@pytest.mark.parametrize("name", ["burger-legacy.vf", "fortune-teller.vf", "starter-template.vf", "own"])
def test_mangled_exports_convert_or_are_refused_never_crash(name):
    """Random damage to a real export (wrong types, missing keys, dangling targets): each converts to a valid
    document with warnings, or is refused with ImportRefused — nothing else escapes."""
    original = export(name)
    rng = random.Random(9)
    junk = [None, 1, "x", [], {}, [{"target": "nowhere"}], {"builtIn": {"next": 5}}, True, [[1]], {"a": {}}]
    for _ in range(100):
        damaged = copy.deepcopy(original)
        for _ in range(6):
            diagram = rng.choice(list(damaged["diagrams"].values()))
            node = rng.choice(list(diagram["nodes"].values()))
            data = node.get("data")
            if rng.random() < 0.1:
                top = rng.choice([damaged, damaged["version"]])
                key = rng.choice([key for key in top if key not in ("diagrams", "version")])
                top[key] = rng.choice(junk)
            elif isinstance(data, dict) and data:
                data[rng.choice(list(data))] = rng.choice(junk)
            else:
                node["type"] = rng.choice(["text", "ifV2", "api", "block", "goTo", None, 3])
        try:
            document_import(damaged)
        except ImportRefused:
            pass
