"""Steps that reach the world through ports (api, ai, agent, kb, data_query), with async fake ports: what they send,
what they make of the answer, and what they do when a port is missing or fails."""
from agents.runtime import Ports, run_turn
from tests.agents.test_runtime import LAUNCH, collect, flow, messages, spec_of, step, text, traces_of
from tests.fakes.llm_port import FakeLlm, say


async def test_ports_power_ai_kb_and_api_steps():
    calls = []

    async def tools(name, args):
        calls.append((name, args))
        return {"account": {"balance": 42}}

    llm = FakeLlm(say("Your balance ", "is 42."), say("We ship ", "worldwide [1]."))

    async def knowledge(question):
        return [{"text": "We ship worldwide.", "documentId": "d1", "documentName": "FAQ", "chunkId": "c1",
                 "score": 0.9}]

    spec = spec_of(flow(step("api", "api", tool="lookup", args={"email": "{{ email }}"},
                             save={"balance": "account.balance"}),
                        step("ai", "ai", prompt="Explain the balance {{ balance }}."),
                        step("kb", "kb", question="shipping?")))
    turn = run_turn(spec, {"variables": {"email": "a@b.co"}}, LAUNCH, ports=Ports(llm=llm, tools=tools,
                                                                                   knowledge=knowledge))
    traces = await collect(turn)
    assert calls == [("lookup", {"email": "a@b.co"})]
    assert llm.calls[0]["messages"][-1] == {"role": "user", "content": "Explain the balance 42."}
    assert [t["type"] for t in traces] == ["completion-start", "text", "text", "completion-start", "text", "text",
                                           "knowledge"]
    assert turn.reply_text == "Your balance is 42.\nWe ship worldwide [1]."
    assert "[1] \"FAQ\"\nWe ship worldwide." in llm.calls[1]["messages"][-1]["content"]  # the kb step's grounding
    assert [record["model"] for record in turn.llm_calls] == ["fake-model", "fake-model"]
    assert traces[-1]["payload"]["sources"][0]["documentName"] == "FAQ"
    [record] = turn.tool_calls  # the api step's call is kept on the reply, as the agent loop's are
    assert (record["tool"], record["arguments"], record["status"]) == ("lookup", {"email": "a@b.co"}, "ok")
    assert record["result"] == '{"account": {"balance": 42}}' and record["durationMs"] >= 0


async def test_without_ports_api_takes_its_error_port_and_ai_falls_back():
    spec = spec_of(flow(step("api", "api", tool="lookup"), step("ok", "message", text="ok"),
                        step("err", "message", text="The lookup is unavailable."), step("ai", "ai", prompt="hi"),
                        connections=[("start", "next", "api"), ("api", "next", "ok"), ("api", "error", "err"),
                                     ("err", "next", "ai")]),
                   settings={"fallbackMessage": "I can't answer that here."})
    assert messages(await traces_of(spec, {}, LAUNCH)) == ["The lookup is unavailable.", "I can't answer that here."]


async def test_a_failing_tool_takes_the_error_port_and_a_failing_query_goes_on():
    async def tools(name, args):
        raise ConnectionError("refused")

    async def data(sql, *, name):
        raise ValueError("no such column")

    spec = spec_of(flow(step("api", "api", tool="lookup"), step("ok", "message", text="ok"),
                        step("err", "message", text="down"), step("q", "data_query", sql="select x"),
                        step("after", "message", text="after"),
                        connections=[("start", "next", "api"), ("api", "next", "ok"), ("api", "error", "err"),
                                     ("err", "next", "q"), ("q", "next", "after")]))
    turn = run_turn(spec, {}, LAUNCH, ports=Ports(tools=tools, data=data), debug=True)
    traces = await collect(turn)
    assert messages(traces) == ["down", "after"]
    assert [(r["tool"], r["status"], r["error"]) for r in turn.tool_calls] == [("lookup", "error", "refused")]
    warnings = [t["payload"]["message"] for t in traces if t["type"] == "debug" and t["payload"]["level"] == "warn"]
    assert warnings == ["Tool 'lookup' failed: refused", "Data query failed: no such column"]


async def test_data_query_and_agent_steps_use_their_ports():
    queries = []

    async def data(sql, *, name):
        queries.append((sql, name))
        return {"name": name, "numRows": 2, "columns": ["plan"]}

    llm = FakeLlm(say("an agent's answer"))
    spec = spec_of(flow(step("q", "data_query", sql="select plan from {{ frame }}", name="plans"),
                        step("a", "agent", instructions="Help."), intents=["show my plans"]))
    traces = await traces_of(spec, {"variables": {"frame": "accounts"}}, text("show my plans"),
                             ports=Ports(data=data, llm=llm))
    assert queries == [("select plan from accounts", "plans")]
    assert traces[0] == {"type": "data_frame", "payload": {"name": "plans", "numRows": 2, "columns": ["plan"]}}
    assert messages(traces) == ["an agent's answer"]
    assert llm.calls[0]["messages"][-1] == {"role": "user", "content": "show my plans"}
    assert "Help." in llm.system()
