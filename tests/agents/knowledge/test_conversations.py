"""Conversations answered from the knowledge base (API.md §2's `knowledge` trace): the `kb` step and free text with
no intent, with and without a model, and the agent's `knowledge_search` tool.

First the engine with fake ports (what the model is given, what is said and cited); then v1 turns of projects whose
documents were created and processed by the real services, searched on this database, the model being the fake
OpenAI-compatible server on loopback (JSON interact in-process; SSE through a daphne process)."""
import json
import re

import httpx
import pytest
from httpx_sse import connect_sse

from agents.knowledge.models import KnowledgeChunk, KnowledgeDocument
from agents.knowledge.services import document_create_text, document_process
from agents.runtime import Ports, run_turn
from agents.runtime.ports import UpstreamError
from agents.services import project_api_key_create, project_create
from tests.agents.test_runtime import LAUNCH, collect, flow, messages, spec_of, step, text, traces_of
from tests.conftest import server_env
from tests.fakes.llm_port import FakeLlm, call, calls, fails, say
from tests.fakes.llm_server import Call, LlmServer, Reply
from tests.live import daphne_server

REFUND = {"text": "Refunds are paid within 5 to 10 business days.", "documentId": "doc_1",
          "documentName": "Refund policy", "chunkId": "chk_1", "score": 3.2,
          "headingPath": ["Refund policy", "How long a refund takes"]}
SHIPPING = {"text": "Standard delivery takes 2 to 4 business days.", "documentId": "doc_2",
            "documentName": "Shipping", "chunkId": "chk_7", "score": 1.1, "headingPath": []}
QUOTE = 'From "Refund policy" (How long a refund takes):\n> Refunds are paid within 5 to 10 business days.'


def source(hit: dict) -> dict:
    return {key: hit[key] for key in ("documentId", "documentName", "chunkId", "score")}


def knowledge_of(*hits: dict):
    """A knowledge port answering every question with `hits`; `port.asked` records (question, answerable)."""
    async def knowledge(question, *, answerable=True):
        knowledge.asked.append((question, answerable))
        return list(hits)

    knowledge.asked = []
    return knowledge


def kb_flow(question: str):
    """A flow whose launch asks the knowledge base `question`, then says "Anything else?"."""
    return spec_of(flow(step("kb", "kb", question=question), step("after", "message", text="Anything else?")),
                   settings={"fallbackMessage": "Sorry?"}, instructions="You are Acme's helper.")


# --- the kb step and the free-text branch, with fake ports


async def test_without_a_model_the_best_passage_is_quoted_with_its_source():
    knowledge = knowledge_of(REFUND, SHIPPING)
    traces = await traces_of(kb_flow(question="How long does a refund take?"), {}, LAUNCH,
                             ports=Ports(knowledge=knowledge))

    assert traces == [{"type": "text", "payload": {"message": QUOTE}},
                      {"type": "knowledge", "payload": {"sources": [source(REFUND)]}},
                      {"type": "text", "payload": {"message": "Anything else?"}}]
    assert knowledge.asked == [("How long does a refund take?", True)]  # the hits good enough to answer with


async def test_with_a_model_the_answer_is_grounded_in_numbered_passages_streamed_and_cites_what_it_used():
    llm = FakeLlm(say("Standard delivery ", "takes 2–4 days [2]."))
    turn_traces = await traces_of(kb_flow("how long is delivery?"), {"history": [{"role": "user", "content": "hello"}]},
                                  LAUNCH, ports=Ports(llm=llm, knowledge=knowledge_of(REFUND, SHIPPING)))

    assert [t["type"] for t in turn_traces] == ["completion-start", "text", "text", "knowledge", "text"]
    assert turn_traces[3]["payload"]["sources"] == [source(SHIPPING)]  # only the passage it cited
    sent = llm.calls[0]["messages"]
    assert sent[0]["role"] == "system" and "You are Acme's helper." in sent[0]["content"]
    assert "only the numbered passages" in sent[0]["content"] and "[1]" in sent[0]["content"]
    assert sent[1] == {"role": "user", "content": "hello"}  # the history, then the passages and the question
    assert sent[-1]["content"] == (
        'Passages:\n\n[1] "Refund policy" (How long a refund takes)\nRefunds are paid within 5 to 10 business days.'
        '\n\n[2] "Shipping"\nStandard delivery takes 2 to 4 business days.\n\nQuestion: how long is delivery?')
    assert llm.calls[0]["tools"] is None


async def test_an_answer_that_cites_nothing_lists_every_passage_it_was_given():
    llm = FakeLlm(say("Refunds take a week or two."))
    traces = await traces_of(kb_flow("refund?"), {}, LAUNCH, ports=Ports(llm=llm, knowledge=knowledge_of(REFUND,
                                                                                                        SHIPPING)))
    assert traces[-2]["payload"]["sources"] == [source(REFUND), source(SHIPPING)]


@pytest.mark.parametrize("reply", [fails(UpstreamError("The model is down.")), say("")])
async def test_a_failing_or_silent_model_gives_the_quoted_passage_never_a_failed_turn(reply):
    traces = await traces_of(kb_flow("refund?"), {}, LAUNCH, debug=True,
                             ports=Ports(llm=FakeLlm(reply), knowledge=knowledge_of(REFUND)))

    assert messages(traces) == [QUOTE, "Anything else?"]
    assert [t["type"] for t in traces if t["type"] not in ("debug",)] == ["text", "knowledge", "text"]
    warnings = [t["payload"]["message"] for t in traces if t["type"] == "debug" and t["payload"]["level"] == "warn"]
    assert len(warnings) == 1 and "best passage instead" in warnings[0]


async def test_no_hit_good_enough_takes_no_answer_or_says_the_fallback_and_calls_no_model():
    llm = FakeLlm()
    ports = Ports(llm=llm, knowledge=knowledge_of())
    assert messages(await traces_of(kb_flow("bananas"), {}, LAUNCH, ports=ports)) == ["Sorry?", "Anything else?"]
    assert messages(await traces_of(kb_flow("bananas"), {}, LAUNCH)) == ["Sorry?", "Anything else?"]  # no KB

    own = spec_of(flow(step("kb", "kb", question="bananas"), step("after", "message", text="Anything else?"),
                       step("own", "message", text="Let me find a person for that."),
                       connections=[("start", "next", "kb"), ("kb", "next", "after"), ("kb", "noAnswer", "own")]))
    assert messages(await traces_of(own, {}, LAUNCH, ports=ports)) == ["Let me find a person for that."]
    assert llm.calls == []


async def test_free_text_with_no_intent_and_no_model_gets_the_best_passage_else_the_fallback():
    spec = spec_of(flow(step("hi", "message", text="Hi!"), intents=["hello there"]),
                   settings={"fallbackMessage": "Sorry?"})
    traces = await traces_of(spec, {}, text("how long does a refund take?"), ports=Ports(knowledge=knowledge_of(
        REFUND)))
    assert traces == [{"type": "text", "payload": {"message": QUOTE}},
                      {"type": "knowledge", "payload": {"sources": [source(REFUND)]}}]
    assert messages(await traces_of(spec, {}, text("bananas"), ports=Ports(knowledge=knowledge_of()))) == ["Sorry?"]
    assert messages(await traces_of(spec, {}, text("hello there"), ports=Ports(knowledge=knowledge_of(REFUND)))) == [
        "Hi!"]  # an intent comes first


async def test_with_a_model_free_text_goes_to_the_agent_whose_knowledge_search_sees_every_top_hit():
    weak = {**SHIPPING, "score": 0.01}
    knowledge = knowledge_of(REFUND, weak)
    llm = FakeLlm(calls(call("knowledge_search", {"query": "refund time"})), say("5 to 10 business days."))
    spec = spec_of(flow(step("hi", "message", text="Hi!"), intents=["hello there"]))
    turn_traces = await collect(run_turn(spec, {}, text("how long does a refund take?"),
                                         ports=Ports(llm=llm, knowledge=knowledge)))

    assert knowledge.asked == [("refund time", False)]  # the model judges the scores: nothing held back
    assert [h["text"] for h in json.loads(llm.calls[1]["messages"][-1]["content"])] == [REFUND["text"], weak["text"]]
    assert turn_traces[-1] == {"type": "knowledge", "payload": {"sources": [source(REFUND), source(weak)]}}


# --- v1 turns over this database's knowledge base

HELP = {
    "Refund policy": "# Refund policy\n\n## How long a refund takes\nOnce the returned parcel reaches our warehouse "
                     "we check it within 3 business days. The refund is then paid to your original payment method, "
                     "which usually takes 5 to 10 business days.\n\n## Who can get a refund\nAny product returned "
                     "unused within 30 days of delivery.",
    "Shipping": "# Shipping\n\n## Delivery times\nStandard delivery takes 2 to 4 business days within Germany.\n\n"
                "## Shipping costs\nStandard shipping is free for orders over 50 euros.",
}
FALLBACK = "Sorry, I can only help with refunds and shipping."


def documents_load(project, documents=HELP) -> dict[str, KnowledgeDocument]:
    """Created and processed as a worker would (synchronously here); ready."""
    loaded = {}
    for name, content in documents.items():
        document = document_create_text(project=project, name=name, content=content)
        document_process(document_id=document.id)
        document.refresh_from_db()
        assert document.status == "ready", document.error
        loaded[name] = document
    return loaded


def project_with_key(workspace, document: dict, *, documents=HELP) -> tuple[object, str, dict]:
    project = project_create(workspace=workspace, name=document.get("name", "Help"), document=document)
    loaded = documents_load(project, documents) if documents else {}
    return project, project_api_key_create(project=project, name="server")[1], loaded


FLOW = {"name": "Help", "language": "en", "instructions": "You are Acme's helper.",
        "workflows": [{"id": "hi", "name": "Hi", "steps": [
            {"id": "start", "type": "start", "data": {"intents": ["hello there"]}},
            {"id": "hi", "type": "message", "data": {"text": "Hi! Ask me about refunds or shipping."}}],
            "connections": [{"source": "start", "port": "next", "target": "hi"}]}],
        "settings": {"fallbackMessage": FALLBACK}}
ASK = {"name": "Ask", "language": "en", "instructions": "You are Acme's helper.",  # a refund question → the kb step
       "workflows": [{"id": "ask", "name": "Ask", "steps": [
           {"id": "start", "type": "start", "data": {"intents": ["how long does a refund take"]}},
           {"id": "kb", "type": "kb", "data": {"question": "{{ last_utterance }}"}}],
           "connections": [{"source": "start", "port": "next", "target": "kb"}]}],
       "settings": {"fallbackMessage": FALLBACK}}


def interact(client, user: str, words: str):
    return client.post(f"/api/v1/conversations/{user}/interact", {"action": {"type": "text", "payload": words}},
                       format="json")


def assert_cites(knowledge_trace: dict, document: KnowledgeDocument) -> None:
    [cited] = knowledge_trace["payload"]["sources"]
    assert set(cited) == {"documentId", "documentName", "chunkId", "score"}
    assert (cited["documentId"], cited["documentName"]) == (document.id, document.name)
    assert isinstance(cited["score"], float) and cited["score"] > 0
    chunk = KnowledgeChunk.objects.get(pk=int(cited["chunkId"].removeprefix("chk_")))
    assert chunk.document_id == document.id


def test_a_question_no_intent_matches_is_answered_from_the_kb_without_a_model(workspace, client_for):
    _project, key, loaded = project_with_key(workspace, FLOW)
    response = interact(client_for(key), "jane", "How long does a refund take?")

    assert response.status_code == 200
    said, cited = response.json()
    assert said["payload"]["message"] == (
        'From "Refund policy" (How long a refund takes):\n> Once the returned parcel reaches our warehouse we check '
        "it within 3 business days. The refund is then paid to your original payment method, which usually takes 5 "
        "to 10 business days.")
    assert cited["type"] == "knowledge"
    assert_cites(cited, loaded["Refund policy"])


def test_an_off_topic_question_gets_the_fallback(workspace, client_for):
    _project, key, _loaded = project_with_key(workspace, FLOW)
    response = interact(client_for(key), "jane", "Can you sing me a song about the weather?")
    assert response.json() == [{"type": "text", "payload": {"message": FALLBACK}}]


def test_documents_not_ready_are_not_searched(workspace, client_for):
    project, key, _loaded = project_with_key(workspace, FLOW, documents=None)
    pending = document_create_text(project=project, name="Refund policy", content=HELP["Refund policy"])
    assert KnowledgeDocument.objects.get(pk=pending.pk).status == "processing"
    assert interact(client_for(key), "jane", "How long does a refund take?").json() == [
        {"type": "text", "payload": {"message": FALLBACK}}]


def test_an_agent_that_calls_knowledge_search_gets_the_passages_and_the_turn_cites_them(workspace, client_for,
                                                                                        model):
    document = {"framework": "agentic", "name": "Agent", "language": "en", "workflows": [],
                "instructions": "Answer from the knowledge base.", "settings": {"fallbackMessage": FALLBACK}}
    _project, key, loaded = project_with_key(workspace, document)
    model.script(Reply(tool_calls=[Call("knowledge_search", {"query": "how long does a refund take"})]),
                 Reply("Refunds take 5 to 10 business days once checked."))
    response = interact(client_for(key), "jane", "How long do refunds take?")

    assert response.status_code == 200
    traces = response.json()
    assert [t["type"] for t in traces] == ["text", "knowledge"]
    assert "knowledge_search" in [tool["function"]["name"] for tool in model.requests[0].body["tools"]]
    passages = json.loads(model.requests[1].messages[-1]["content"])
    assert passages[0]["documentName"] == "Refund policy" and "5 to 10 business days" in passages[0]["text"]
    assert passages[0]["headingPath"] == ["Refund policy", "How long a refund takes"]
    sources = traces[1]["payload"]["sources"]
    assert sources[0]["documentId"] == loaded["Refund policy"].id
    assert {s["chunkId"] for s in sources} <= {f"chk_{pk}" for pk in KnowledgeChunk.objects.values_list("pk",
                                                                                                      flat=True)}


def test_an_agent_of_a_project_without_documents_is_not_offered_knowledge_search(workspace, client_for, model):
    document = {"framework": "agentic", "name": "Agent", "language": "en", "workflows": [],
                "settings": {"fallbackMessage": FALLBACK}}
    _project, key, _loaded = project_with_key(workspace, document, documents=None)
    model.script(Reply("Hello!"))
    assert interact(client_for(key), "jane", "hi").json() == [{"type": "text", "payload": {"message": "Hello!"}}]
    assert "knowledge_search" not in [tool["function"]["name"] for tool in model.requests[0].body.get("tools") or []]


# --- the kb step's grounded answer over SSE, from a daphne process whose model is the fake server


@pytest.fixture(scope="module")
def grounding_model():
    with LlmServer() as server:
        yield server


@pytest.fixture(scope="module")
def grounded_url(django_db_setup, django_db_blocker, grounding_model, tmp_path_factory):
    env = server_env(**grounding_model.env(), CONDUET_LLM_MAX_RETRIES="0", CONDUET_LLM_TIMEOUT_SECONDS="5")
    with daphne_server(env=env, log_path=tmp_path_factory.mktemp("daphne-kb") / "daphne.log") as url:
        yield url


@pytest.mark.server
@pytest.mark.django_db(transaction=True)
def test_a_kb_steps_grounded_answer_streams_then_cites_its_passages(workspace, grounded_url, grounding_model):
    _project, key, loaded = project_with_key(workspace, ASK)
    grounding_model.script(Reply("Refunds are paid within 5 to 10 business days [1].", chunk_size=6))
    with httpx.Client(base_url=grounded_url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http, \
            connect_sse(http, "POST", "/api/v1/conversations/sse-user/interact/stream",
                        json={"action": {"type": "text", "payload": "How long does a refund take?"}}) as events:
        received = [event.data for event in events.iter_sse()]

    assert received[-1] == "[DONE]"
    traces = [json.loads(data) for data in received[:-1]]
    assert traces[0]["type"] == "completion-start"
    chunks = [t["payload"]["message"] for t in traces if t["type"] == "text"]
    assert len(chunks) > 3 and "".join(chunks) == "Refunds are paid within 5 to 10 business days [1]."
    assert [t["type"] for t in traces[-1:]] == ["knowledge"]
    assert_cites(traces[-1], loaded["Refund policy"])
    prompt = grounding_model.requests[-1].messages
    assert "only the numbered passages" in prompt[0]["content"]
    assert re.search(r'\[1\] "Refund policy" \(How long a refund takes\)\nOnce the returned parcel reaches our '
                     r"warehouse", prompt[-1]["content"])
    assert prompt[-1]["content"].endswith("Question: How long does a refund take?")
