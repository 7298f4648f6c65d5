"""`handoff`: hands the conversation to an operator, with a `reason` they will read."""
from agents.runtime.steps.base import StepRun, StepType, Traces
from agents.runtime.types import TraceType, trace


class HandoffStep(StepType):
    name = "handoff"
    ports = frozenset()
    template_fields = ("reason",)

    async def run(self, run: StepRun) -> Traces:
        run.hand_off()
        run.state["waiting"] = None
        reason = run.render(run.step.templates.get("reason")) or "The user asked for a person."
        yield trace(TraceType.HANDOFF, reason=reason)
