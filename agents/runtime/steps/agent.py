"""`agent`: an agentic sub-loop inside a flow (its own `instructions`, tools, an exit condition). Until the LLM
capability lands it answers like an `ai` step: one reply to the user's words."""
from agents.runtime.steps.ai import AiStep


class AgentStep(AiStep):
    name = "agent"
    template_fields = ("instructions",)
