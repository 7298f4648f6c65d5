"""`set`: assigns variables from expressions (`{"assign": {"priority": "'high'"}}`), in order, each assignment
seeing the ones before it."""
from agents.runtime.steps.base import StepBuild, StepRun, StepType, Traces
from agents.runtime.values import VARIABLE_NAME_RE, json_value


class SetStep(StepType):
    name = "set"

    def prepare(self, build: StepBuild) -> None:
        assign = build.data.get("assign")
        if not isinstance(assign, dict) or not assign:
            build.error("A set step has an assign object of variable → expression.")
            return
        for name, source in assign.items():
            if not VARIABLE_NAME_RE.fullmatch(str(name)):
                build.error(f"{name!r} is not a valid variable name.")
            build.expression(name, source, at=f".data.assign.{name}")

    async def run(self, run: StepRun) -> Traces:
        for name, expression in run.step.expressions.items():
            run.variables[name] = json_value(run.evaluate(expression))
        run.follow("next")
        return
        yield  # an async generator, like every step's run
