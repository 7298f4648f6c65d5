"""The engine's side of SQL over data frames, with fake data ports: the `data_query` step (its trace, `saveTo`, the
`error` port, no port), and the agent's `query_data` tool (the frames in its instructions, re-read after a new
frame; a refused query goes back to the model, never a failed turn)."""
import json

from agents.runtime import AgentSpec, Ports, run_turn
from agents.runtime.builtins import frames_prompt
from tests.agents.test_runtime import LAUNCH, collect, flow, messages, spec_of, step, text
from tests.fakes.llm_port import FakeLlm, call, calls, say

SALES = {"name": "sales", "numRows": 5, "columns": [{"name": "region", "dtype": "String"},
                                                   {"name": "Order Date", "dtype": "Date"}],
         "sampleRows": [["north", "2024-01-01"], ["south", "2024-02-01"]]}


class FakeData:
    """`Ports.data` and `Ports.data_frames` over a list of frames; a query whose SQL contains "bad" is refused."""

    def __init__(self, *frames: dict):
        self.frames = list(frames)
        self.queries: list[tuple[str, str]] = []
        self.listed = 0

    def ports(self, **kwargs) -> Ports:
        return Ports(data=self.data, data_frames=self.data_frames, **kwargs)

    async def data(self, sql: str, *, name: str) -> dict:
        self.queries.append((sql, name))
        if "bad" in sql:
            raise ValueError('Binder Error: Referenced column "bad" not found in FROM clause!')
        self.frames.append({"name": name, "numRows": 1, "columns": [{"name": "n", "dtype": "Int64"}],
                            "sampleRows": [[5]]})
        return {"name": name, "numRows": 1, "columns": ["n"], "sampleRows": [[5]]}

    async def data_frames(self) -> list[dict]:
        self.listed += 1
        return list(self.frames)


def warnings(traces) -> list[str]:
    return [t["payload"]["message"] for t in traces if t["type"] == "debug" and t["payload"]["level"] == "warn"]


# --- the data_query step


async def test_the_step_announces_the_frame_and_saves_it_for_the_steps_after_it():
    data = FakeData(SALES)
    spec = spec_of(flow(step("q", "data_query", sql="SELECT count(*) AS n FROM {{ table }}", name="counted",
                             saveTo="counted"),
                        step("say", "message", text="{{ counted.name }} has {{ counted.sampleRows[0][0] }} rows.")))
    turn = run_turn(spec, {"variables": {"table": "sales"}}, LAUNCH, ports=data.ports())
    traces = await collect(turn)

    assert data.queries == [("SELECT count(*) AS n FROM sales", "counted")]
    assert traces[0] == {"type": "data_frame", "payload": {"name": "counted", "numRows": 1, "columns": ["n"],
                                                           "sampleRows": [[5]]}}
    assert messages(traces) == ["counted has 5 rows."]
    assert turn.state["variables"]["counted"]["numRows"] == 1


async def test_a_refused_query_is_a_warning_and_takes_the_error_port_when_connected():
    data = FakeData(SALES)
    with_error = spec_of(flow(step("q", "data_query", sql="SELECT bad FROM sales", saveTo="out"),
                              step("ok", "message", text="ok"), step("sorry", "message", text="That did not work."),
                              connections=[("start", "next", "q"), ("q", "next", "ok"), ("q", "error", "sorry")]))
    turn = run_turn(with_error, {}, LAUNCH, ports=data.ports(), debug=True)
    traces = await collect(turn)
    assert messages(traces) == ["That did not work."]
    assert warnings(traces) == ['Data query failed: Binder Error: Referenced column "bad" not found in FROM clause!']
    assert "out" not in turn.state["variables"]

    without = spec_of(flow(step("q", "data_query", sql="SELECT bad FROM sales"), step("ok", "message", text="ok")))
    assert messages(await collect(run_turn(without, {}, LAUNCH, ports=data.ports()))) == ["ok"]


async def test_without_frames_the_step_runs_nothing_and_goes_on():
    spec = spec_of(flow(step("q", "data_query", sql="SELECT 1"), step("ok", "message", text="ok")))
    traces = await collect(run_turn(spec, {}, LAUNCH, ports=Ports(), debug=True))
    assert messages(traces) == ["ok"] and not [t for t in traces if t["type"] == "data_frame"]
    assert {"level": "info", "message": "Data query not run: this conversation has no data frames"} in [
        t["payload"] for t in traces if t["type"] == "debug"]


def test_the_step_needs_its_sql_and_a_variable_name_to_save_to():
    from agents.runtime.spec import DocumentError, validate_document

    document = {"workflows": [flow(step("q", "data_query", saveTo="not a name"))]}
    try:
        validate_document(document)
    except DocumentError as exc:
        details = exc.details
    assert details == {"workflows[0].steps[1].data.sql": ["A data_query step has its SQL (one SELECT; a template)."],
                       "workflows[0].steps[1].data.saveTo": ["saveTo names a variable (letters, digits and _)."]}


# --- the agent's query_data


def agentic(**parts) -> AgentSpec:
    return AgentSpec.from_document({"framework": "agentic", "instructions": "You analyse data.", **parts},
                                   project_id="p", version_id="v")


async def test_the_agent_sees_the_frames_and_the_new_frame_after_its_query():
    data = FakeData(SALES)
    llm = FakeLlm(calls(call("query_data", {"sql": "SELECT count(*) AS n FROM sales", "name": "n"})),
                  say("There are 5 sales."))
    turn = run_turn(agentic(), {}, text("How many sales?"), ports=data.ports(llm=llm))
    traces = await collect(turn)

    first = llm.system(0)
    assert "You analyse data." in first and "query_data runs SQL over the conversation's data frames" in first
    assert ('- sales (5 rows): region String, "Order Date" Date\n  ["north", "2024-01-01"]\n'
            '  ["south", "2024-02-01"]') in first
    assert "- n (1 rows)" not in first and "- n (1 rows): n Int64\n  [5]" in llm.system(1)
    assert data.listed == 2  # once, then again after the query made a frame
    assert [t["type"] for t in traces] == ["tool-call", "data_frame", "tool-call", "completion-start", "text"]
    assert traces[1]["payload"]["name"] == "n"
    tool_message = llm.calls[1]["messages"][-1]
    assert tool_message["role"] == "tool" and json.loads(tool_message["content"])["sampleRows"] == [[5]]
    [offered] = [t for t in llm.calls[0]["tools"] if t["function"]["name"] == "query_data"]
    assert offered["function"]["parameters"]["required"] == ["sql"]
    assert turn.tool_calls[0]["status"] == "ok"


async def test_a_refused_query_goes_back_to_the_model_which_corrects_it():
    data = FakeData(SALES)
    llm = FakeLlm(calls(call("query_data", {"sql": "SELECT bad FROM sales"})),
                  calls(call("query_data", {"sql": "SELECT count(*) FROM sales", "name": "fixed"})),
                  say("Fixed."))
    turn = run_turn(agentic(), {}, text("count them"), ports=data.ports(llm=llm))
    traces = await collect(turn)

    refused = json.loads(llm.calls[1]["messages"][-1]["content"])
    assert refused == {"error": 'Binder Error: Referenced column "bad" not found in FROM clause!'}
    assert [record["status"] for record in turn.tool_calls] == ["error", "ok"]
    assert [t["payload"]["name"] for t in traces if t["type"] == "data_frame"] == ["fixed"]
    assert messages(traces) == ["Fixed."]


async def test_without_a_data_port_the_agent_is_offered_no_query_data_and_no_frames():
    llm = FakeLlm(say("Upload a file first."))
    await collect(run_turn(agentic(), {}, text("sum it"), ports=Ports(llm=llm)))
    assert "query_data" not in [t["function"]["name"] for t in llm.calls[0]["tools"] or []]
    assert "Data frames" not in llm.system()


async def test_a_failing_frame_list_leaves_the_tool_and_warns():
    async def broken() -> list[dict]:
        raise OSError("storage unreachable")

    data = FakeData()
    llm = FakeLlm(say("ok"))
    traces = await collect(run_turn(agentic(), {}, text("hi"), debug=True,
                                    ports=Ports(llm=llm, data=data.data, data_frames=broken)))
    assert "query_data" in [t["function"]["name"] for t in llm.calls[0]["tools"]]
    assert warnings(traces) == ["The data frames could not be listed: storage unreachable"]


def test_the_frames_prompt_stays_within_its_budget_and_names_what_it_left_out():
    frames = [{**SALES, "name": f"frame_{i}", "sampleRows": [["x" * 200, "2024-01-01"]] * 3} for i in range(40)]
    prompt = frames_prompt(frames, limit=3000)
    assert len(prompt) <= 3000 + 750
    assert prompt.startswith("Data frames of this conversation") and "- frame_0 (5 rows)" in prompt
    assert "more: frame_" in prompt.splitlines()[-1] and "frame_39" in prompt.splitlines()[-1]
    assert frames_prompt([]) is None
