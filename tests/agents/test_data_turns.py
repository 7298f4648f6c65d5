"""SQL over data frames in whole turns, on this database: a conversation-flow project's `data_query` step through
the v1 interact API, and an agentic project's `query_data` tool in a v2 conversation, the model being the fake
OpenAI-compatible server on loopback. The frames are made with `files.store.frame_create` (uploads are the files
API's)."""
import json

import polars as pl
import pytest
from asgiref.sync import async_to_sync

from agents.ports import aports_for
from agents.runtime import Action
from agents.selectors import agent_spec_aget
from agents.services import project_api_key_create, project_create
from conversations.lease import ConversationKey
from conversations.models import Conversation, Message
from conversations.services import conversation_v2_create
from conversations.turns import TurnRequest, turn_start
from files.models import DataFrame
from files.store import frame_create, frame_local_path
from tests.fakes.llm_server import Call, Reply

pytestmark = pytest.mark.django_db

SALES = pl.DataFrame({"region": ["north", "south", "north", "east"], "amount": [10.5, 20.0, 4.5, 7.0]})
TARGETS = pl.DataFrame({"region": ["north", "south", "east"], "target": [12, 25, 5]})

FLOW = {"name": "Data flow", "language": "en", "workflows": [{"id": "main", "name": "Main", "steps": [
    {"id": "start", "type": "start", "data": {"intents": ["summarize my data"]}},
    {"id": "q", "type": "data_query", "data": {
        "sql": "SELECT region, sum(amount) AS total FROM sales GROUP BY region ORDER BY total DESC",
        "name": "totals", "saveTo": "totals"}},
    {"id": "say", "type": "message", "data": {
        "text": "{{ totals.numRows }} regions; {{ totals.sampleRows[0][0] }} sold most."}},
    {"id": "sorry", "type": "message", "data": {"text": "I could not read your data."}}],
    "connections": [{"source": "start", "port": "next", "target": "q"}, {"source": "q", "port": "next",
                                                                         "target": "say"},
                    {"source": "q", "port": "error", "target": "sorry"}]}],
    "settings": {"fallbackMessage": "Say 'summarize my data'."}}
AGENT = {"framework": "agentic", "name": "Analyst", "language": "en", "workflows": [],
         "instructions": "You are a careful data analyst.", "settings": {"fallbackMessage": "Sorry."}}


def frames_for(conversation: Conversation) -> dict[str, DataFrame]:
    return {frame.name: frame for frame in (
        frame_create(conversation_id=conversation.id, name="sales.csv", table=SALES),
        frame_create(conversation_id=conversation.id, name="targets.csv", table=TARGETS))}


def rows(frame: DataFrame) -> list[tuple]:
    with frame_local_path(frame) as path:
        return pl.read_parquet(path).rows()


def interact(client, words: str):
    return client.post("/api/v1/conversations/jane/interact", {"action": {"type": "text", "payload": words}},
                       format="json")


async def _v2_turn(project, conversation_id: str, words: str) -> list[dict]:
    spec, version_id = await agent_spec_aget(project=project, version="development")
    turn = await turn_start(request=TurnRequest(
        project=project, key=ConversationKey(project.id, conversation_id=conversation_id), action=Action("text", words),
        spec=spec, version_id=version_id, platform="v2"))
    return [event.data async for event in turn.follow() if not event.done]


def kinds(traces: list[dict]) -> list[str]:
    """The traces' types, a streamed reply's text chunks counted once."""
    types = [t["type"] for t in traces]
    return [kind for i, kind in enumerate(types) if not (kind == "text" and i and types[i - 1] == "text")]


def said(traces: list[dict]) -> str:
    return "".join(t["payload"]["message"] for t in traces if t["type"] == "text")


def v2_turn(project, conversation: Conversation, words: str) -> list[dict]:
    return async_to_sync(_v2_turn)(project, conversation.id, words)


# --- a conversation-flow project's data_query step


def test_a_flow_step_queries_the_frames_into_a_new_frame_and_says_what_it_found(workspace, client_for):
    project = project_create(workspace=workspace, name="Data flow", document=FLOW)
    key = project_api_key_create(project=project, name="server")[1]
    conversation = Conversation.objects.create(project=project, user_id="jane")
    parents = frames_for(conversation)

    response = interact(client_for(key), "summarize my data")

    assert response.status_code == 200
    frame_trace, said = response.json()
    totals = DataFrame.objects.get(conversation=conversation, name="totals")
    assert frame_trace == {"type": "data_frame", "payload": {
        "name": "totals", "numRows": 3, "columns": ["region", "total"], "dataFrameId": totals.id, "numColumns": 2,
        "dtypes": ["String", "Float64"], "sqlQuery": FLOW["workflows"][0]["steps"][1]["data"]["sql"],
        "parentDataFrameIds": [parents["sales"].id],
        "sampleRows": [["south", 20.0], ["north", 15.0], ["east", 7.0]]}}
    assert said == {"type": "text", "payload": {"message": "3 regions; south sold most."}}
    assert totals.parent_data_frame_ids == [parents["sales"].id] and totals.sql_query.startswith("SELECT region")
    assert rows(totals) == [("south", 20.0), ("north", 15.0), ("east", 7.0)]
    reply = Message.objects.get(conversation=conversation, role="assistant")
    assert reply.traces[0]["type"] == "data_frame"  # kept with the reply, for the transcript and the v2 messages


def test_without_frames_the_step_goes_on_and_a_failing_query_takes_its_error_port(workspace, client_for):
    project = project_create(workspace=workspace, name="Data flow", document=FLOW)
    key = project_api_key_create(project=project, name="server")[1]
    conversation = Conversation.objects.create(project=project, user_id="jane")
    assert interact(client_for(key), "summarize my data").json() == [
        {"type": "text", "payload": {"message": "I could not read your data."}}]  # no data port: the error port

    frame_create(conversation_id=conversation.id, name="sales.csv", table=TARGETS)  # no `amount` column
    response = interact(client_for(key), "summarize my data")
    assert response.json() == [{"type": "text", "payload": {"message": "I could not read your data."}}]
    assert list(DataFrame.objects.values_list("name", flat=True)) == ["sales"]


# --- an agentic project's query_data tool, in a v2 conversation


def test_the_agent_sees_the_frames_queries_them_and_the_turn_announces_the_new_frame(workspace, model):
    project = project_create(workspace=workspace, name="Analyst", document=AGENT)
    conversation = conversation_v2_create(agent=project, name="Q3 reconciliation")
    parents = frames_for(conversation)
    sql = ("SELECT s.region, sum(s.amount) AS sold, t.target FROM sales s JOIN targets t USING (region) "
           "GROUP BY s.region, t.target ORDER BY s.region")
    model.script(Reply(tool_calls=[Call("query_data", {"sql": sql, "name": "vs target"})]),
                 Reply("North sold 15 against a target of 12."))

    traces = v2_turn(project, conversation, "How did each region do against its target?")

    assert kinds(traces) == ["tool-call", "data_frame", "tool-call", "completion-start", "text"]
    assert said(traces) == "North sold 15 against a target of 12."
    result = DataFrame.objects.get(conversation=conversation, name="vs_target")
    assert traces[1]["payload"]["dataFrameId"] == result.id and traces[1]["payload"]["numRows"] == 3
    assert result.sql_query == sql
    assert result.parent_data_frame_ids == [parents["sales"].id, parents["targets"].id]
    assert rows(result) == [("east", 7.0, 5), ("north", 15.0, 12), ("south", 20.0, 25)]

    first = model.requests[0].body
    system = first["messages"][0]["content"]
    assert "You are a careful data analyst." in system
    assert ('- sales (4 rows): region String, amount Float64\n  ["north", 10.5]\n  ["south", 20.0]\n'
            '  ["north", 4.5]') in system
    assert '- targets (3 rows): region String, target Int64\n  ["north", 12]' in system
    assert "query_data" in [tool["function"]["name"] for tool in first["tools"]]
    answer = model.requests[1].body["messages"]
    assert json.loads(answer[-1]["content"])["sampleRows"] == [["east", 7.0, 5], ["north", 15.0, 12],
                                                               ["south", 20.0, 25]]
    assert "- vs_target (3 rows)" in answer[0]["content"]  # the new frame joins the list
    reply = Message.objects.get(conversation=conversation, role="assistant")
    assert reply.tool_calls[0]["tool"] == "query_data" and reply.tool_calls[0]["status"] == "ok"


@pytest.mark.parametrize(("sql", "error"), [
    ("SELECT * FROM read_csv('/etc/passwd')", "read_csv is not available"),
    ("COPY sales TO '/tmp/out.csv'", "COPY statements are refused"),
    ("SELECT 1; SELECT 2", "Only one statement may be run"),
])
def test_a_refused_query_is_a_tool_error_the_model_sees_and_the_turn_answers(workspace, model, sql, error):
    project = project_create(workspace=workspace, name="Analyst", document=AGENT)
    conversation = conversation_v2_create(agent=project, name="Q3")
    frames_for(conversation)
    model.script(Reply(tool_calls=[Call("query_data", {"sql": sql})]), Reply("I can only read your frames."))

    traces = v2_turn(project, conversation, "Read the password file.")

    assert kinds(traces) == ["tool-call", "tool-call", "completion-start", "text"]
    assert said(traces) == "I can only read your frames."
    tool_result = json.loads(model.requests[1].body["messages"][-1]["content"])
    assert error in tool_result["error"] and tool_result["code"] == "DATA_QUERY_ERROR"
    assert DataFrame.objects.filter(conversation=conversation).count() == 2
    reply = Message.objects.get(conversation=conversation, role="assistant")
    assert reply.status == "complete" and reply.tool_calls[0]["status"] == "error"


def test_a_conversation_without_ready_frames_is_offered_no_query_data(workspace, model):
    project = project_create(workspace=workspace, name="Analyst", document=AGENT)
    conversation = conversation_v2_create(agent=project, name="Q3")
    frame_create(conversation_id=conversation.id, name="broken.csv", error="Row 2 has 3 fields, expected 2.")
    other = conversation_v2_create(agent=project, name="Other")
    frames_for(other)  # another conversation's frames do not count
    model.script(Reply("Please upload a file."))

    v2_turn(project, conversation, "Sum my sales.")

    body = model.requests[0].body
    assert "query_data" not in [tool["function"]["name"] for tool in body.get("tools") or []]
    assert "Data frames" not in body["messages"][0]["content"]


def test_the_ports_learn_knowledge_and_data_in_one_statement(workspace, django_assert_num_queries):
    project = project_create(workspace=workspace, name="Analyst", document=AGENT)
    conversation = conversation_v2_create(agent=project, name="Q3")
    frames_for(conversation)
    spec, _version = async_to_sync(agent_spec_aget)(project=project, version="development")

    with django_assert_num_queries(1):
        ports = async_to_sync(aports_for)(spec, conversation.id)
    assert ports.data is not None and ports.data_frames is not None and ports.knowledge is None
    with django_assert_num_queries(1):
        assert async_to_sync(aports_for)(spec).data is None
