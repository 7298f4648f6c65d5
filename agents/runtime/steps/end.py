"""`end`: ends the conversation. The turn service marks the session ended; the next turn starts over, keeping the
variables, so nothing may stay waiting or stacked."""
from agents.runtime.steps.base import StepRun, StepType, Traces
from agents.runtime.types import TraceType, trace


class EndStep(StepType):
    name = "end"
    ports = frozenset()

    async def run(self, run: StepRun) -> Traces:
        run.end_conversation()
        run.state["waiting"] = None
        run.state["stack"] = []
        yield trace(TraceType.END)
