"""`data_query`: runs its `sql` over the conversation's data frames through `Ports.data`, into a new frame named
`name` (default `result`), announced with a `data_frame` trace. A failed query is a debug warning and the walk goes
on; with no data port the step does nothing."""
from agents.runtime.steps.base import StepRun, StepType, Traces
from agents.runtime.types import TraceType, trace


class DataQueryStep(StepType):
    name = "data_query"
    template_fields = ("sql", "name")

    async def run(self, run: StepRun) -> Traces:
        if run.ports.data is not None:
            templates = run.step.templates
            try:
                frame = await run.ports.data(run.render(templates.get("sql")),
                                             name=run.render(templates.get("name")) or "result")
            except Exception as exc:  # the query's fault, not the turn's; a cancellation goes through
                yield run.debug("warn", f"Data query failed: {exc}")
            else:
                yield trace(TraceType.DATA_FRAME, **frame)
        run.follow("next")
