"""The ports a turn of a project gets (agents/runtime/ports.py): how its engine reaches the world. Today: the
project's HTTP tools; the LLM, knowledge and data ports plug in here as their capabilities land."""
from agents.runtime import AgentSpec, Ports
from agents.tools import tool_port


def ports_for(spec: AgentSpec) -> Ports:
    return Ports(tools=tool_port(spec.tools) if spec.tools else None)
