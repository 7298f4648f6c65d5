"""The ports a turn of a project gets (agents/runtime/ports.py): how its engine reaches the world — the model
(`agents/llm.py`, when one is configured), the project's HTTP and MCP tools (`agents/tools.py`, `agents/mcp.py`)
and its knowledge base (`agents/knowledge/search.py`, when it has a ready document). The data port plugs in here as
its capability lands."""
from collections.abc import Awaitable, Callable

from agents.knowledge.search import MAX_QUERY_CHARS, answer_hits, knowledge_asearch
from agents.llm import llm_port
from agents.models import Project
from agents.runtime import AgentSpec, Ports
from agents.tools import project_tools
from config import db

KNOWLEDGE_TOP_K = 5  # passages a question reads: what a grounded answer cites from, and the agent's tool returns
KNOWLEDGE_MODE = "hybrid"  # lexical where there are no embeddings (search.py says which mode it used)


async def aports_for(spec: AgentSpec) -> Ports:
    """`ports_for` from a turn: the knowledge port only when the project has a ready document (one statement), so a
    project without a knowledge base pays no search and its agent is offered no `knowledge_search`."""
    return ports_for(spec, knowledge_project=await knowledge_project(spec.project_id))


def ports_for(spec: AgentSpec, *, knowledge_project: Project | None = None) -> Ports:
    tools = project_tools(spec.tools) if spec.tools else None
    return Ports(llm=llm_port(spec), tools=tools.call if tools else None,
                 tool_definitions=tools.definitions if tools else None,
                 knowledge=knowledge_port(knowledge_project) if knowledge_project is not None else None)


async def knowledge_project(project_id: str) -> Project | None:
    """What the search needs of the project (its id, and its language, which stems the question), when it has at
    least one document it can search (`ready`; one still processing is not searched); else None. An unsaved
    instance: nothing else of the row is read."""
    row = await db.fetch_one(
        "SELECT p.language AS language FROM agents_project p WHERE p.id = %s AND EXISTS "
        "(SELECT 1 FROM knowledge_document d WHERE d.project_id = p.id AND d.status = %s)", [project_id, "ready"])
    return Project(id=project_id, language=row["language"]) if row else None


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
