"""The ports a turn of a project gets (agents/runtime/ports.py): how its engine reaches the world — the model
(`agents/llm.py`, when one is configured), the project's HTTP and MCP tools (`agents/tools.py`, `agents/mcp.py`)
and its knowledge base (`agents/knowledge/search.py`, when it has a ready document) and the conversation's data frames
(`files/sql.py`, when it has a ready frame)."""
from collections.abc import Awaitable, Callable

from asgiref.sync import sync_to_async

from agents.knowledge.search import MAX_QUERY_CHARS, answer_hits, knowledge_asearch
from agents.llm import llm_port
from agents.models import Project
from agents.runtime import AgentSpec, Ports
from agents.tools import project_tools
from config import db

KNOWLEDGE_TOP_K = 5  # passages a question reads: what a grounded answer cites from, and the agent's tool returns
DESCRIBED_ROWS = 3  # sample rows of each frame the agent sees in its instructions
KNOWLEDGE_MODE = "hybrid"  # lexical where there are no embeddings (search.py says which mode it used)


async def aports_for(spec: AgentSpec, conversation_id: str | None = None) -> Ports:
    """`ports_for` from a turn: the knowledge port only when the project has a ready document, the data ports only
    when the conversation has a ready frame — both learnt in one statement, so a project without a knowledge base
    pays no search and its agent is offered no `knowledge_search`, and a conversation without data no
    `query_data`."""
    knowledge, data = await capabilities(spec.project_id, conversation_id)
    return ports_for(spec, knowledge_project=knowledge, data_conversation_id=conversation_id if data else None)


def ports_for(spec: AgentSpec, *, knowledge_project: Project | None = None,
              data_conversation_id: str | None = None) -> Ports:
    tools = project_tools(spec.tools) if spec.tools else None
    data = data_conversation_id is not None
    return Ports(llm=llm_port(spec), tools=tools.call if tools else None,
                 tool_definitions=tools.definitions if tools else None,
                 knowledge=knowledge_port(knowledge_project) if knowledge_project is not None else None,
                 data=data_port(data_conversation_id) if data else None,
                 data_frames=data_frames_port(data_conversation_id) if data else None)


async def capabilities(project_id: str, conversation_id: str | None) -> tuple[Project | None, bool]:
    """What the search needs of the project (its id, and its language, which stems the question) when it has at
    least one document it can search (`ready`; one still processing is not searched), else None; and whether the
    conversation has a ready data frame. One statement; the project is an unsaved instance (nothing else of the
    row is read)."""
    row = await db.fetch_one(
        "SELECT p.language AS language, EXISTS (SELECT 1 FROM knowledge_document d WHERE d.project_id = p.id AND "
        "d.status = %s) AS knowledge, EXISTS (SELECT 1 FROM files_dataframe f WHERE f.conversation_id = %s AND "
        "f.status = %s) AS data FROM agents_project p WHERE p.id = %s",
        ["ready", conversation_id or "", "ready", project_id])
    if row is None:
        return None, False
    return (Project(id=project_id, language=row["language"]) if row["knowledge"] else None), bool(row["data"])


def knowledge_port(project: Project) -> Callable[..., Awaitable[list[dict]]]:
    """`Ports.knowledge` over the project's documents: `answerable` (the default) keeps the hits the search's
    answer threshold accepts (`answer_hits`), for an answer no model judges; `answerable=False` gives the top hits
    with their scores, for the agent's `knowledge_search` tool."""

    async def knowledge(question: str, *, answerable: bool = True) -> list[dict]:
        question = question.strip()[:MAX_QUERY_CHARS]
        if not question:
            return []
        outcome = await knowledge_asearch(project=project, query=question, top_k=KNOWLEDGE_TOP_K,
                                          mode=KNOWLEDGE_MODE)
        return [hit_dict(hit) for hit in (answer_hits(outcome) if answerable else outcome.hits)]

    return knowledge


def hit_dict(hit) -> dict:
    """A search hit (`search.Hit`) as the engine's ports speak of it."""
    return {"text": hit.content, "documentId": hit.document_id, "documentName": hit.document_name,
            "chunkId": f"chk_{hit.chunk_id}", "score": round(float(hit.score), 4),
            "headingPath": list(hit.heading_path or [])}


def data_port(conversation_id: str) -> Callable[..., Awaitable[dict]]:
    """`Ports.data`: one SELECT over the conversation's frames into a new frame (files/sql.py, run off the event
    loop); the `data_frame` trace's payload, or a `DataQueryError` saying why not."""

    async def data(sql: str, *, name: str = "result") -> dict:
        from files.sql import adata_query_run, frame_payload  # DuckDB is loaded by the first query, not at start

        frame = await adata_query_run(conversation_id=conversation_id, sql=sql, name=name)
        return frame_payload(frame)

    return data


def data_frames_port(conversation_id: str) -> Callable[[], Awaitable[list[dict]]]:
    """`Ports.data_frames`: the conversation's ready frames as the agent sees them (names, columns, first rows)."""

    async def data_frames() -> list[dict]:
        from files.sql import frames_describe

        return await sync_to_async(db.released(frames_describe))(conversation_id=conversation_id,
                                                                 sample_rows=DESCRIBED_ROWS)

    return data_frames
