"""The engine: one turn in, traces out. Pure of HTTP and of the ORM (DESIGN.md "Runtime").

    spec = AgentSpec.from_document(document, project_id=..., version_id=...)   # once per version, cached
    turn = run_turn(spec, state, Action("text", "hi"), ports=Ports(...), context={...})
    async for trace in turn: ...                                                # lazily, one by one
    turn.state, turn.ended, turn.handoff                                        # once exhausted
    turn.reply_text, turn.llm_calls, turn.tool_calls                            # what was said, what it cost

With `Ports.llm` set, text no workflow answers goes to the agent loop (`agentic.py`); an agentic project is that
loop, with its phases, built-in tools and the project's tools.

Each step type is one module of `agents/runtime/steps/`, found through the registry `STEP_TYPES` there.
"""
from agents.runtime.engine import MAX_STEPS, Turn, run_turn
from agents.runtime.ports import Ports
from agents.runtime.spec import AgentSpec, validate_document
from agents.runtime.types import Action, DocumentError, TraceType
from agents.runtime.values import VARIABLE_NAME_RE

__all__ = ["MAX_STEPS", "VARIABLE_NAME_RE", "Action", "AgentSpec", "DocumentError", "Ports", "TraceType", "Turn",
           "run_turn", "validate_document"]
