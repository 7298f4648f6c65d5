"""The agent loop (agents/runtime/agentic.py) with a scripted model (tests/fakes/llm_port.py) and fake tool ports:
tool round trips and faults, built-ins, workflow tools, phases, allowlists, the history budget, routing, and what a
stop or a provider failure does to a turn."""
import asyncio
import json

import pytest
from jsonschema import Draft202012Validator

from agents.runtime import Action, AgentSpec, Ports, run_turn
from agents.runtime.agentic import GREETING, NO_LLM, estimate_tokens
from agents.runtime.builtins import workflow_tools
from agents.runtime.ports import ToolDefinition, UpstreamError
from tests.agents.test_runtime import LAUNCH, Session, collect, flow, messages, step, text
from tests.fakes.llm_port import FakeLlm, call, calls, fails, say


def agentic(**parts) -> AgentSpec:
    document = {"framework": "agentic", "instructions": "You are Acme's helper.", **parts}
    return AgentSpec.from_document(document, project_id="p", version_id="v")


class InvalidArguments(Exception):
    code = "INVALID_ARGUMENTS"


class FakeTools:
    """The `tools` and `tool_definitions` ports: each tool answers from `answers` (a value, or a callable of the
    arguments that may raise); arguments are validated against the tool's parameters first, as the real port does."""

    def __init__(self, *definitions: ToolDefinition, **answers):
        self.definitions = definitions
        self.answers = answers
        self.calls: list[tuple[str, dict]] = []

    def ports(self, **kwargs) -> Ports:
        return Ports(tools=self.tools, tool_definitions=self.tool_definitions, **kwargs)

    async def tool_definitions(self) -> list[ToolDefinition]:
        return list(self.definitions)

    async def tools(self, name: str, args: dict):
        self.calls.append((name, args))
        definition = next(d for d in self.definitions if d.name == name)
        errors = sorted(Draft202012Validator(definition.parameters).iter_errors(args), key=str)
        if errors:
            raise InvalidArguments(f"Invalid arguments: {errors[0].message}")
        answer = self.answers[name]
        return answer(args) if callable(answer) else answer


def tool(name: str, source: str | None = None, **properties) -> ToolDefinition:
    return ToolDefinition(name=name, description=f"The {name} tool.", source=source or name,
                          parameters={"type": "object", "properties": properties,
                                      "required": list(properties), "additionalProperties": False})


LOOKUP = tool("lookup_order", order_id={"type": "string", "pattern": "^A-[0-9]{4}$"})
LOOKUP_DOC = {"id": "lookup_order", "description": "Look up an order.", "save": {"order_status": "status"},
              "http": {"method": "GET", "url": "https://example.com/orders/{{ order_id }}"}}


def types(traces) -> list[str]:
    return [t["type"] for t in traces]


def tool_messages(llm: FakeLlm, index: int = -1) -> list[dict]:
    return [m for m in llm.calls[index]["messages"] if m["role"] == "tool"]


def warnings(traces) -> list[str]:
    return [t["payload"]["message"] for t in traces if t["type"] == "debug" and t["payload"]["level"] == "warn"]


async def run(spec, action, *, state=None, **kwargs):
    turn = run_turn(spec, state or {}, action, **kwargs)
    return turn, await collect(turn)


# --- the loop and its tools


async def test_a_tool_round_trip_feeds_the_result_back_to_the_model():
    tools = FakeTools(LOOKUP, lookup_order={"status": "shipped", "carrier": "UPS"})
    llm = FakeLlm(calls(call("lookup_order", {"order_id": "A-1001"}, id="c1"), text="Let me look. "),
                  say("Your order ", "has shipped with UPS."))
    spec = agentic(tools=[LOOKUP_DOC], variables=[{"name": "order_status", "type": "string"}])
    turn, traces = await run(spec, text("where is A-1001?"), ports=tools.ports(llm=llm))

    assert tools.calls == [("lookup_order", {"order_id": "A-1001"})]
    assert types(traces) == ["completion-start", "text", "tool-call", "tool-call", "completion-start", "text", "text"]
    assert traces[2]["payload"] == {"phase": "start", "toolName": "lookup_order", "callId": "c1"}
    assert traces[3]["payload"] == {"phase": "end", "toolName": "lookup_order", "callId": "c1"}
    second = llm.calls[1]["messages"]
    assert second[-2] == {"role": "assistant", "content": "Let me look. ", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "lookup_order", "arguments": '{"order_id": "A-1001"}'}}]}
    assert second[-1] == {"role": "tool", "tool_call_id": "c1", "content": '{"status": "shipped", "carrier": "UPS"}'}
    assert turn.state["variables"]["order_status"] == "shipped"  # the tool's save mapping
    assert turn.reply_text == "Let me look. \nYour order has shipped with UPS."
    [record] = turn.tool_calls
    assert record["status"] == "ok" and record["arguments"] == {"order_id": "A-1001"} and record["callId"] == "c1"
    assert json.loads(record["result"]) == {"status": "shipped", "carrier": "UPS"}
    assert [c["model"] for c in turn.llm_calls] == ["fake-model", "fake-model"]
    assert turn.state["history"] == [{"role": "user", "content": "where is A-1001?"},
                                     {"role": "assistant", "content": turn.reply_text}]
    assert "lookup_order" in llm.tool_names(0)


async def test_bad_arguments_and_failing_tools_go_back_to_the_model_and_the_turn_goes_on():
    def broken(args):
        raise ConnectionError("connection refused")

    flaky = tool("flaky")
    tools = FakeTools(LOOKUP, flaky, lookup_order={"status": "shipped"}, flaky=broken)
    llm = FakeLlm(calls(call("lookup_order", "{not json", id="a"), call("lookup_order", {"order_id": "nope"}, id="b"),
                        call("flaky", {}, id="c"), call("teleport", {}, id="d")),
                  say("Sorry, I could not look that up."))
    turn, traces = await run(agentic(), text("where is my order?"), ports=tools.ports(llm=llm))

    results = {m["tool_call_id"]: json.loads(m["content"]) for m in tool_messages(llm)}
    assert "not valid JSON" in results["a"]["error"]
    assert results["b"]["code"] == "INVALID_ARGUMENTS" and "does not match" in results["b"]["error"]
    assert results["c"] == {"error": "connection refused"}
    assert "no tool named 'teleport'" in results["d"]["error"]
    assert [r["status"] for r in turn.tool_calls] == ["error"] * 4
    assert turn.tool_calls[0]["arguments"] == "{not json" and turn.tool_calls[2]["error"] == "connection refused"
    assert messages(traces) == ["Sorry, I could not look that up."]
    assert types(traces).count("tool-call") == 8


async def test_the_round_limit_stops_a_loop_that_never_ends():
    ping = tool("ping")
    tools = FakeTools(ping, ping={"pong": True})
    llm = FakeLlm(default=calls(call("ping", {})))
    spec = agentic(settings={"fallbackMessage": "Let me get back to you."})
    turn, traces = await run(spec, text("hi"), ports=tools.ports(llm=llm), debug=True,
                             context={"max_tool_rounds": 3})
    assert len(llm.calls) == 3 and len(tools.calls) == 3
    assert messages(traces) == ["Let me get back to you."]
    assert any("limit of 3 tool rounds" in w for w in warnings(traces))


async def test_set_variable_refuses_a_wrong_type_or_an_undeclared_name():
    llm = FakeLlm(calls(call("set_variable", {"name": "age", "value": "forty"}, id="a"),
                        call("set_variable", {"name": "mood", "value": "happy"}, id="b"),
                        call("set_variable", {"name": "age", "value": 40}, id="c"),
                        call("set_variable", {"name": "tags", "value": ["vip"]}, id="d")),
                  say("Noted."))
    spec = agentic(variables=[{"name": "age", "type": "integer"}, {"name": "tags", "type": "array"},
                              {"name": "note"}])
    turn, _ = await run(spec, text("I'm 40"), state={"variables": {"age": 39}}, ports=Ports(llm=llm))
    results = {m["tool_call_id"]: json.loads(m["content"]) for m in tool_messages(llm)}
    assert "type integer" in results["a"]["error"]
    assert "not a declared variable" in results["b"]["error"]
    assert results["c"] == {"ok": True, "name": "age", "value": 40}
    assert turn.state["variables"] == {"age": 40, "tags": ["vip"]}
    definition = next(t for t in llm.calls[0]["tools"] if t["function"]["name"] == "set_variable")
    assert definition["function"]["parameters"]["properties"]["name"]["enum"] == ["age", "tags", "note"]


async def test_handoff_is_bounded_by_max_handoffs():
    spec = agentic(behaviourConfig={"agentHarness": {"maxHandoffs": 1}})
    llm = FakeLlm(calls(call("handoff", {"reason": "wants a person"})))
    turn, traces = await run(spec, text("a human please"), ports=Ports(llm=llm))
    assert traces[-2] == {"type": "handoff", "payload": {"reason": "wants a person"}}
    assert turn.handoff and turn.state["agent"] == {"handoffs": 1} and len(llm.calls) == 1

    llm = FakeLlm(calls(call("handoff", {"reason": "again"})), say("I'll keep helping you myself."))
    turn, traces = await run(spec, text("a human please"), state=turn.state, ports=Ports(llm=llm))
    assert not turn.handoff and "handoff" not in types(traces)
    assert "limit of 1 handoffs" in json.loads(tool_messages(llm)[0]["content"])["error"]
    assert messages(traces) == ["I'll keep helping you myself."]

    no_handoffs = agentic(behaviourConfig={"agentHarness": {"maxHandoffs": 0}})
    llm = FakeLlm(say("ok"))
    await run(no_handoffs, text("hi"), ports=Ports(llm=llm))
    assert "handoff" not in llm.tool_names()


async def test_end_conversation_ends_it():
    llm = FakeLlm(calls(call("end_conversation", {}), text="Goodbye!"))
    turn, traces = await run(agentic(), text("that's all"), ports=Ports(llm=llm))
    assert types(traces) == ["completion-start", "text", "tool-call", "end", "tool-call"]
    assert turn.ended and len(llm.calls) == 1


async def test_a_workflow_tool_walks_its_flow():
    hours = flow(step("say", "message", text="We open at 9."), id="wf.hours!")
    llm = FakeLlm(calls(call("workflow_wf_hours_", {})), say("Anything else?"))
    turn, traces = await run(agentic(workflows=[hours], settings={"startWorkflowId": "wf.hours!"}),
                             text("when do you open?"), ports=Ports(llm=llm))
    assert messages(traces) == ["We open at 9.", "Anything else?"]
    assert types(traces)[:3] == ["tool-call", "text", "tool-call"]
    assert json.loads(tool_messages(llm)[0]["content"]) == {"status": "done", "said": ["We open at 9."]}
    assert llm.calls[0]["tools"][-1]["function"]["description"] == "Run the scripted flow “wf.hours!” with the user."


async def test_a_workflow_tool_that_waits_ends_the_loop_and_the_next_turn_answers_it():
    capture = flow(step("ask", "capture", prompt="Your email?", variable="email"),
                   step("thanks", "message", text="Thanks, {{ email }}."), id="email")
    session = Session(agentic(workflows=[capture]), ports=Ports(llm=FakeLlm(calls(call("workflow_email", {})))))
    assert messages(await session(text("sign me up"))) == ["Your email?"]
    assert session.state["waiting"]["kind"] == "capture"
    assert messages(await session(text("jo@example.com"))) == ["Thanks, jo@example.com."]


async def test_knowledge_search_is_offered_with_a_knowledge_port_and_its_sources_cited():
    asked = []

    async def knowledge(question, *, answerable=True):
        asked.append((question, answerable))
        return [{"text": "Returns within 30 days.", "documentId": "d1", "documentName": "Policy", "chunkId": "c1",
                 "score": 0.8, "headingPath": ["Returns"]}]

    llm = FakeLlm(calls(call("knowledge_search", {"query": "returns"})), say("You have 30 days."))
    _, traces = await run(agentic(), text("can I return it?"), ports=Ports(llm=llm, knowledge=knowledge))
    assert asked == [("returns", False)]  # the top hits, scored: the model judges them, not the answer threshold
    assert json.loads(tool_messages(llm)[0]["content"]) == [
        {"text": "Returns within 30 days.", "documentName": "Policy", "headingPath": ["Returns"], "score": 0.8}]
    assert traces[-1] == {"type": "knowledge", "payload": {"sources": [
        {"documentId": "d1", "documentName": "Policy", "chunkId": "c1", "score": 0.8}]}}


# --- phases and allowlists

PHASES = [{"id": "triage", "instructions": "Find the order.", "exitCondition": "order_id",
           "buttons": [{"label": "Where is my order?", "value": "where"}]},
          {"id": "resolution", "instructions": "Resolve it.", "buttons": [{"label": "Talk to a person"}]},
          {"id": "wrap_up", "instructions": "Say goodbye."}]


async def test_a_phase_exits_by_expression_and_the_next_one_takes_over():
    llm = FakeLlm(calls(call("set_variable", {"name": "order_id", "value": "A-1001"})), say("Found it."))
    spec = agentic(phases=PHASES, variables=[{"name": "order_id", "type": "string"}])
    turn, traces = await run(spec, text("order A-1001"), ports=Ports(llm=llm), debug=True)
    assert "Find the order." in llm.system(0) and "Resolve it." in llm.system(1)
    assert turn.state["phase"] == "resolution"
    assert any(t["payload"].get("message") == "Phase triage → resolution" for t in traces if t["type"] == "debug")
    assert traces[-1] == {"type": "choice", "payload": {"buttons": [{"label": "Talk to a person",
                                                                      "value": "Talk to a person"}]}}


async def test_a_phase_exits_when_its_tool_succeeds_and_the_last_phase_stays():
    phases = [{"id": "triage", "exitCondition": {"tool": "lookup_order"}}, {"id": "done", "exitCondition": "true"}]
    calls_made = []

    def lookup(args):
        calls_made.append(args)
        if len(calls_made) == 1:
            raise ConnectionError("down")
        return {"status": "shipped"}

    tools = FakeTools(LOOKUP, lookup_order=lookup)
    failing = FakeLlm(calls(call("lookup_order", {"order_id": "A-1001"})), say("It's down."))
    turn, _ = await run(agentic(phases=phases), text("A-1001"), ports=tools.ports(llm=failing))
    assert turn.state["phase"] == "triage"  # a failed call does not exit
    working = FakeLlm(calls(call("lookup_order", {"order_id": "A-1001"})), say("Shipped."))
    turn, _ = await run(agentic(phases=phases), text("A-1001"), state=turn.state, ports=tools.ports(llm=working))
    assert turn.state["phase"] == "done"
    turn, _ = await run(agentic(phases=phases), text("thanks"), state=turn.state, ports=Ports(llm=FakeLlm(say("Bye"))))
    assert turn.state["phase"] == "done"


async def test_phase_buttons_are_offered_and_a_button_goes_to_the_model_as_its_label():
    spec = agentic(phases=PHASES)
    llm = FakeLlm(say("Hello! How can I help?"), say("Let me check."))
    session = Session(spec, ports=Ports(llm=llm))
    greeting = await session(LAUNCH)
    assert [m["role"] for m in llm.calls[0]["messages"]] == ["system"]
    assert GREETING in llm.system(0)
    assert greeting[-1] == {"type": "choice", "payload": {"buttons": [{"label": "Where is my order?",
                                                                       "value": "where"}]}}
    assert session.state["phase"] == "triage"
    await session(Action("button", {"label": "Where is my order?", "value": "where"}))
    assert llm.calls[1]["messages"][-1] == {"role": "user", "content": "Where is my order?"}


async def test_allowed_tool_ids_of_the_harness_and_the_phase_both_apply():
    tools = FakeTools(tool("a"), tool("b"), tool("c"), tool("srv__x", source="srv"))
    both = agentic(phases=[{"id": "p", "allowedToolIds": ["b", "c", "srv"]}],
                   behaviourConfig={"agentHarness": {"allowedToolIds": ["a", "b", "srv"]}})
    llm = FakeLlm(say("ok"))
    await run(both, text("hi"), ports=tools.ports(llm=llm))
    assert llm.tool_names() == ["handoff", "end_conversation", "b", "srv__x"]  # an MCP tool by its server id

    llm = FakeLlm(say("ok"))
    await run(agentic(phases=[{"id": "p", "allowedToolIds": []}]), text("hi"), ports=tools.ports(llm=llm))
    assert {"a", "b", "c", "srv__x"} <= set(llm.tool_names())

    llm = FakeLlm(calls(call("a", {})), say("ok"))
    await run(both, text("hi"), ports=tools.ports(llm=llm))
    assert "no tool named 'a'" in json.loads(tool_messages(llm)[0]["content"])["error"]
    assert tools.calls == []


async def test_the_snapshot_shows_the_chosen_variables():
    spec = agentic(variables=[{"name": "name", "default": "Jo"}, {"name": "secret", "default": "x"}],
                   behaviourConfig={"agentHarness": {"snapshotKeys": ["name", "plan"]}})
    llm = FakeLlm(say("Hi Jo"))
    await run(spec, text("hi"), ports=Ports(llm=llm))
    assert 'Session variables (JSON): {"name": "Jo", "plan": null}' in llm.system()
    assert "secret" not in llm.system().split("Built-in tools")[0]


async def test_the_history_is_trimmed_to_its_budget_oldest_first():
    history = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"{i:03d}" + "x" * 397} for i in range(10)]
    cost = estimate_tokens(history[0]["content"]) + 4
    llm = FakeLlm(say("ok"))
    await run(agentic(), text("latest"), state={"history": history}, ports=Ports(llm=llm),
              context={"history_tokens": cost * 4 + cost // 2})
    sent = llm.calls[0]["messages"]
    assert sent[0]["role"] == "system" and "Acme's helper" in sent[0]["content"]
    assert [m["content"][:3] for m in sent[1:-1]] == ["006", "007", "008", "009"]
    assert sent[-1] == {"role": "user", "content": "latest"}


# --- routing


async def test_free_text_goes_to_a_matching_workflow_else_to_the_agent_else_knowledge_or_fallback():
    hours = flow(step("say", "message", text="We open at 9."), id="hours", intents=["when are you open"])
    spec = AgentSpec.from_document({"workflows": [hours], "settings": {"fallbackMessage": "Sorry?"}},
                                   project_id="p", version_id="v")
    llm = FakeLlm(say("I'm the agent."))
    _, traces = await run(spec, text("when are you open?"), ports=Ports(llm=llm))
    assert messages(traces) == ["We open at 9."] and llm.calls == []
    _, traces = await run(spec, text("tell me a joke"), ports=Ports(llm=llm))
    assert messages(traces) == ["I'm the agent."]
    _, traces = await run(spec, text("tell me a joke"))
    assert messages(traces) == ["Sorry?"]


async def test_an_agentic_project_without_a_model_says_what_to_configure():
    spec = agentic(settings={"fallbackMessage": "Sorry?"})
    _, traces = await run(spec, text("hi"), debug=True, context={"llm_missing": "Set CONDUET_LLM_BASE_URL."})
    assert warnings(traces) == ["Set CONDUET_LLM_BASE_URL."] and messages(traces) == ["Sorry?"]
    _, traces = await run(spec, LAUNCH, debug=True)
    assert warnings(traces) == [NO_LLM] and messages(traces) == ["Sorry?"]


async def test_an_agentic_launch_walks_its_start_workflow_when_it_has_one():
    welcome = flow(step("hi", "message", text="Welcome!"), id="welcome")
    llm = FakeLlm()
    _, traces = await run(agentic(workflows=[welcome]), LAUNCH, ports=Ports(llm=llm))
    assert messages(traces) == ["Welcome!"] and llm.calls == []


# --- failures and stops


async def test_an_upstream_error_leaves_the_turn():
    turn = run_turn(agentic(), {}, text("hi"), ports=Ports(llm=FakeLlm(fails(UpstreamError("The model is down.")))))
    with pytest.raises(UpstreamError, match="The model is down."):
        await collect(turn)


async def test_closing_the_turn_mid_reply_closes_the_model_stream():
    llm = FakeLlm(say("Hel", "lo", hang=True))
    turn = run_turn(agentic(), {}, text("hi"), ports=Ports(llm=llm))
    seen = []
    async for item in turn:
        seen.append(item)
        if len(seen) == 3:
            break
    await turn.aclose()
    assert types(seen) == ["completion-start", "text", "text"]
    assert llm.calls[0]["closed"] and llm.calls[0]["closed_early"]
    assert turn.state["history"] == []


async def test_cancelling_the_turn_during_a_tool_call_cancels_it():
    started = asyncio.Event()

    async def slow(args):
        started.set()
        await asyncio.sleep(3600)

    class SlowTools(FakeTools):
        async def tools(self, name, args):
            return await slow(args)

    tools = SlowTools(tool("slow"))
    turn = run_turn(agentic(), {}, text("hi"), ports=tools.ports(llm=FakeLlm(calls(call("slow", {})))))
    task = asyncio.create_task(collect(turn))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert turn.tool_calls == []


async def test_workflow_tool_names_are_safe_and_unique():
    assert workflow_tools(["a.b", "a b", "x" * 80]) == {"workflow_a_b": "a.b", "workflow_a_b_2": "a b",
                                                        "workflow_" + "x" * 55: "x" * 80}
