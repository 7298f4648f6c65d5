"""`start`: where a workflow begins; its `intents` are the utterances that start the workflow from free text
(the spec builds one intent index from every workflow's start step)."""
from agents.runtime.steps.base import StepBuild, StepRun, StepType, Traces


class StartStep(StepType):
    name = "start"

    def prepare(self, build: StepBuild) -> None:
        intents = build.data.get("intents", [])
        if not isinstance(intents, list) or not all(isinstance(u, str) for u in intents):
            build.error("intents is a list of utterances.")
            intents = []
        build.compiled["intents"] = tuple(intents)

    async def run(self, run: StepRun) -> Traces:
        run.follow("next")
        return
        yield  # an async generator, like every step's run
