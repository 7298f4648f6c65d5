"""The AI steps of a conversation-flow project with a scripted model: `ai` replies and extractions (validated by a
JSON Schema, retried, given up), and the `agent` step's sub-loop (waiting, exiting, bounded)."""
import pytest

from agents.runtime import DocumentError, Ports, validate_document
from tests.agents.test_agentic import FakeTools, run, tool, types, warnings
from tests.agents.test_runtime import LAUNCH, Session, flow, messages, spec_of, step, text
from tests.fakes.llm_port import FakeLlm, call, calls, say

ORDER_SCHEMA = {"type": "string", "pattern": "^A-[0-9]{4}$"}


def extraction(**data):
    return flow(step("get", "ai", saveTo="order_id", prompt="The order id the customer gave.", **data),
                step("got", "message", text="Order {{ order_id }}."), step("oops", "message", text="No order id."),
                connections=[("start", "next", "get"), ("get", "next", "got"), ("get", "error", "oops")],
                intents=["my order"])


async def test_an_ai_reply_streams_with_the_instructions_and_history():
    llm = FakeLlm(say("Hello ", "Jo!"))
    spec = spec_of(flow(step("ai", "ai", prompt="Greet {{ name }}.")), instructions="Be kind.")
    turn, traces = await run(spec, LAUNCH, state={"variables": {"name": "Jo"}, "history": [
        {"role": "user", "content": "earlier"}]}, ports=Ports(llm=llm))
    assert types(traces) == ["completion-start", "text", "text"]
    assert llm.calls[0]["messages"] == [{"role": "system", "content": "Be kind."},
                                        {"role": "user", "content": "earlier"},
                                        {"role": "user", "content": "Greet Jo."}]
    assert turn.reply_text == "Hello Jo!" and len(turn.llm_calls) == 1


async def test_an_extraction_retries_an_invalid_answer_then_saves_the_value():
    llm = FakeLlm(say("A-1001"), say('{"value": "order A-1001"}'), say('{"value": "A-1001"}'))
    spec = spec_of(extraction(schema=ORDER_SCHEMA))
    turn, traces = await run(spec, text("my order is A-1001"), ports=Ports(llm=llm), debug=True)
    assert turn.state["variables"]["order_id"] == "A-1001"
    assert messages(traces) == ["Order A-1001."]  # nothing said by the extraction itself
    assert [c["json_output"] for c in llm.calls] == [True, True, True]
    first = llm.calls[0]["messages"]
    assert '"pattern": "^A-[0-9]{4}$"' in first[0]["content"] and "The order id the customer gave." in first[0][
        "content"]
    assert first[-1] == {"role": "user", "content": "my order is A-1001"}
    retry = llm.calls[1]["messages"]
    assert retry[-2] == {"role": "assistant", "content": "A-1001"} and "not JSON" in retry[-1]["content"]
    assert "does not match the schema" in llm.calls[2]["messages"][-1]["content"]
    assert len(turn.llm_calls) == 3


async def test_an_extraction_gives_up_through_its_error_port_or_next():
    llm = FakeLlm(default=say('{"answer": 1}'))
    turn, traces = await run(spec_of(extraction()), text("my order"), state={"variables": {"order_id": "A-0001"}},
                             ports=Ports(llm=llm), debug=True)
    assert len(llm.calls) == 3  # the first try and two retries
    assert turn.state["variables"]["order_id"] == "A-0001"
    assert messages(traces) == ["No order id."]
    assert any("No valid value for order_id" in w for w in warnings(traces))

    unconnected = flow(step("get", "ai", saveTo="order_id", schema=ORDER_SCHEMA, retries=0),
                       step("next", "message", text="Moving on."), intents=["my order"])
    llm = FakeLlm(default=say('{"value": 12}'))
    turn, traces = await run(spec_of(unconnected), text("my order"), ports=Ports(llm=llm))
    assert len(llm.calls) == 1 and messages(traces) == ["Moving on."] and "order_id" not in turn.state["variables"]


async def test_an_extraction_with_a_structured_schema():
    schema = {"type": "object", "properties": {"qty": {"type": "integer", "minimum": 1}}, "required": ["qty"]}
    llm = FakeLlm(say('{"value": {"qty": 0}}'), say('{"value": {"qty": 3}}'))
    document = flow(step("get", "ai", saveTo="order", schema=schema), intents=["I want to buy some"])
    turn, _ = await run(spec_of(document), text("I want to buy some"), ports=Ports(llm=llm))
    assert turn.state["variables"]["order"] == {"qty": 3}
    assert "at qty" in llm.calls[1]["messages"][-1]["content"]


@pytest.mark.parametrize(("data", "where", "fragment"), [
    ({"saveTo": "not a name"}, ".data.saveTo", "names a variable"),
    ({"saveTo": "x", "schema": {"type": "strin"}}, ".data.schema", "not a valid JSON Schema"),
    ({"saveTo": "x", "schema": "string"}, ".data.schema", "not a valid JSON Schema"),
    ({"saveTo": "x", "retries": 9}, ".data.retries", "retries is a whole number"),
])
def test_extraction_settings_are_checked_when_the_spec_is_built(data, where, fragment):
    document = {"workflows": [flow(step("get", "ai", **data))]}
    with pytest.raises(DocumentError) as caught:
        validate_document(document)
    messages_at = caught.value.details.get(f"workflows[0].steps[1]{where}", [])
    assert any(fragment in message for message in messages_at), caught.value.details


def test_only_an_extraction_has_an_error_port():
    document = {"workflows": [flow(step("ai", "ai", prompt="hi"), step("m", "message", text="x"),
                                   connections=[("start", "next", "ai"), ("ai", "error", "m")])]}
    with pytest.raises(DocumentError, match="has no port 'error'"):
        validate_document(document)


async def test_without_a_model_ai_steps_say_the_fallback_and_go_on():
    spec = spec_of(extraction(), settings={"fallbackMessage": "Sorry?"})
    turn, traces = await run(spec, text("my order"), debug=True)
    assert messages(traces) == ["Sorry?", "Order ."]
    assert warnings(traces) == ["No LLM is configured; answering with the fallback message"]


# --- the agent step

AGENT_FLOW = flow(step("chat", "agent", instructions="Collect the email of {{ name }}.", exitCondition="email",
                       allowedToolIds=["crm"]),
                  step("thanks", "message", text="Thanks, {{ email }}."))
VARIABLES = [{"name": "name", "type": "string", "default": "Jo"}, {"name": "email", "type": "string"}]


async def test_an_agent_step_waits_then_leaves_by_next_when_its_condition_holds():
    tools = FakeTools(tool("crm"), tool("billing"))
    llm = FakeLlm(say("Hi Jo, what's your email?"), say("Hmm, that's not an email. Your email?"),
                  calls(call("set_variable", {"name": "email", "value": "jo@example.com"})))
    session = Session(spec_of(AGENT_FLOW, variables=VARIABLES), ports=tools.ports(llm=llm))

    assert messages(await session(LAUNCH)) == ["Hi Jo, what's your email?"]
    assert session.state["waiting"]["kind"] == "agent"
    assert "Collect the email of Jo." in llm.system(0)
    assert [m["role"] for m in llm.calls[0]["messages"]] == ["system"]  # launched: no user words
    assert "crm" in llm.tool_names(0) and "billing" not in llm.tool_names(0)
    assert not any(name.startswith("workflow_") for name in llm.tool_names(0))

    assert messages(await session(text("none of your business"))) == ["Hmm, that's not an email. Your email?"]
    assert session.state["waiting"]["attempts"] == 2

    traces = await session(text("jo@example.com"))
    assert messages(traces) == ["Thanks, jo@example.com."]
    assert len(llm.calls) == 3  # the condition held after the tool round: no further model call
    assert session.state["waiting"] is None
    assert llm.calls[2]["messages"][-1] == {"role": "user", "content": "jo@example.com"}


async def test_an_agent_step_is_bounded_by_max_turns_and_skipped_when_already_done():
    bounded = flow(step("chat", "agent", instructions="Chat.", maxTurns=2), step("bye", "message", text="Bye."))
    session = Session(spec_of(bounded), ports=Ports(llm=FakeLlm(default=say("Tell me more."))))
    await session(LAUNCH)
    assert session.state["waiting"]["kind"] == "agent"
    assert messages(await session(text("well"))) == ["Tell me more.", "Bye."]

    llm = FakeLlm()
    _, traces = await run(spec_of(AGENT_FLOW, variables=VARIABLES), LAUNCH,
                          state={"variables": {"email": "jo@example.com"}}, ports=Ports(llm=llm))
    assert messages(traces) == ["Thanks, jo@example.com."] and llm.calls == []


async def test_an_agent_step_that_hands_off_stops_the_flow():
    llm = FakeLlm(calls(call("handoff", {"reason": "angry"})))
    turn, traces = await run(spec_of(AGENT_FLOW, variables=VARIABLES), LAUNCH, ports=Ports(llm=llm))
    assert turn.handoff and traces[-2]["type"] == "handoff" and turn.state["waiting"] is None


async def test_an_agent_step_without_a_model_says_the_fallback_and_goes_on():
    session = Session(spec_of(AGENT_FLOW, variables=VARIABLES, settings={"fallbackMessage": "Sorry?"}))
    assert messages(await session(LAUNCH)) == ["Sorry?", "Thanks, ."]
    assert session.state["waiting"] is None


def test_agent_step_settings_are_checked():
    document = {"workflows": [flow(step("a", "agent", allowedToolIds="crm", exitCondition="email ==",
                                        maxTurns=0))]}
    with pytest.raises(DocumentError) as caught:
        validate_document(document)
    assert set(caught.value.details) == {f"workflows[0].steps[1].data.{field}"
                                         for field in ("allowedToolIds", "maxTurns", "exitCondition")}
