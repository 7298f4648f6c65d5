"""The ports a turn of a project gets (agents/runtime/ports.py): how its engine reaches the world — the model
(`agents/llm.py`, when one is configured), the project's HTTP and MCP tools (`agents/tools.py`, `agents/mcp.py`)
and its knowledge base (`agents/knowledge/search.py`, when it has a ready document). The data port plugs in here as
its capability lands."""
from collections.abc import Awaitable, Callable

from agents.llm import llm_port
from agents.runtime import AgentSpec, Ports
from agents.tools import project_tools
from config import db

KNOWLEDGE_TOP_K = 5  # passages a question reads: what a grounded answer cites from, and the agent's tool returns
KNOWLEDGE_MODE = "hybrid"  # lexical where there are no embeddings (search.py says which mode it used)


async def aports_for(spec: AgentSpec) -> Ports:
    """`ports_for` from a turn: the knowledge port only when the project has a ready document (one indexed EXISTS),
    so a project without a knowledge base pays no search and its agent is offered no `knowledge_search`."""
    return ports_for(spec, knowledge=await knowledge_ready(spec.project_id))


def ports_for(spec: AgentSpec, *, knowledge: bool = False) -> Ports:
    tools = project_tools(spec.tools) if spec.tools else None
    return Ports(llm=llm_port(spec), tools=tools.call if tools else None,
                 tool_definitions=tools.definitions if tools else None,
                 knowledge=knowledge_port(spec.project_id) if knowledge else None)


async def knowledge_ready(project_id: str) -> bool:
    """The project has at least one document it can search (`ready`); a document still processing is not searched."""
    row = await db.fetch_one("SELECT 1 AS ready FROM knowledge_document WHERE project_id = %s AND status = %s LIMIT 1",
                             [project_id, "ready"])
    return row is not None


def knowledge_port(project_id: str) -> Callable[..., Awaitable[list[dict]]]:
    """`Ports.knowledge` over the project's documents: `answerable` (the default) keeps the hits the search's
    answer threshold accepts (`answer_hits`), for an answer no model judges; `answerable=False` gives the top hits
    with their scores, for the agent's `knowledge_search` tool."""
    from agents.knowledge.search import answer_hits, knowledge_asearch

    async def knowledge(question: str, *, answerable: bool = True) -> list[dict]:
        outcome = await knowledge_asearch(project=project_id, query=question, top_k=KNOWLEDGE_TOP_K,
                                          mode=KNOWLEDGE_MODE)
        return [hit_dict(hit) for hit in (answer_hits(outcome) if answerable else outcome.hits)]

    return knowledge


def hit_dict(hit) -> dict:
    """A search hit (`search.Hit`) as the engine's ports speak of it."""
    return {"text": hit.content, "documentId": hit.document_id, "documentName": hit.document_name,
            "chunkId": f"chk_{hit.chunk_id}", "score": round(float(hit.score), 4),
            "headingPath": list(hit.heading_path or [])}
