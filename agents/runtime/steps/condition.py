"""`condition`: evaluates its `if` expression and takes the `true` or `false` port. An expression that fails to
evaluate is false (and a debug warning)."""
from agents.runtime.steps.base import StepRun, StepType, Traces


class ConditionStep(StepType):
    name = "condition"
    ports = frozenset({"true", "false"})
    expression_fields = ("if",)

    async def run(self, run: StepRun) -> Traces:
        expression = run.step.expressions["if"]
        value = run.evaluate(expression)
        yield run.debug("debug", f"Condition {expression.source!r} is {bool(value)}")
        run.follow("true" if value else "false")
