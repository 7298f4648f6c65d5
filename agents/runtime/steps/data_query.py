"""`data_query`: runs its `sql` (a template) over the conversation's data frames through `Ports.data`, into a new
frame named `name` (a template; default `result`, made unique), announced with a `data_frame` trace; `saveTo` (a
variable, optional) keeps what the trace carries — the frame's name, row count, columns and first rows — for the
steps after it (`{{ result.sampleRows }}` in an `ai` step's prompt, `{{ result.name }}` in a later query); then
`next`.

A refused or failing query is the query's fault, not the turn's: a debug warning saying why, the variable left as
it was, and the `error` port when it is connected, else `next`. With no data port (the conversation has no ready
frame) the step runs nothing, says so in a debug note, and goes the same way."""
from agents.runtime.steps.base import StepBuild, StepRun, StepType, Traces
from agents.runtime.types import TraceType, trace
from agents.runtime.values import VARIABLE_NAME_RE, json_value


class DataQueryStep(StepType):
    name = "data_query"
    ports = frozenset({"next", "error"})
    template_fields = ("sql", "name")

    def prepare(self, build: StepBuild) -> None:
        if not isinstance(build.data.get("sql"), str) or not build.data["sql"].strip():
            build.error("A data_query step has its SQL (one SELECT; a template).", at=".data.sql")
        save_to = build.data.get("saveTo")
        if save_to is not None and (not isinstance(save_to, str) or not VARIABLE_NAME_RE.fullmatch(save_to)):
            build.error("saveTo names a variable (letters, digits and _).", at=".data.saveTo")

    async def run(self, run: StepRun) -> Traces:
        if run.ports.data is None:
            yield run.debug("info", "Data query not run: this conversation has no data frames")
            run.follow(_failed_port(run))
            return
        templates = run.step.templates
        try:
            frame = await run.ports.data(run.render(templates.get("sql")),
                                         name=run.render(templates.get("name")) or "result")
        except Exception as exc:  # the query's fault, not the turn's; a cancellation goes through
            yield run.debug("warn", f"Data query failed: {exc}")
            run.follow(_failed_port(run))
            return
        if run.step.data.get("saveTo"):
            run.variables[run.step.data["saveTo"]] = json_value(frame)
        yield trace(TraceType.DATA_FRAME, **frame)
        run.follow("next")


def _failed_port(run: StepRun) -> str:
    return "error" if run.step.target("error") is not None else "next"
