"""The ports a turn of a project gets (agents/runtime/ports.py): how its engine reaches the world — the model
(`agents/llm.py`, when one is configured) and the project's HTTP and MCP tools (`agents/tools.py`, `agents/mcp.py`).
The knowledge and data ports plug in here as their capabilities land."""
from agents.llm import llm_port
from agents.runtime import AgentSpec, Ports
from agents.tools import project_tools


def ports_for(spec: AgentSpec) -> Ports:
    tools = project_tools(spec.tools) if spec.tools else None
    return Ports(llm=llm_port(spec), tools=tools.call if tools else None,
                 tool_definitions=tools.definitions if tools else None)
