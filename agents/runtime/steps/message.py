"""`message`: says a text. `texts` (a list) gives variants, taken in turn by the conversation's turn number so a
repeated message does not read the same every time."""
from agents.runtime.steps.base import StepBuild, StepRun, StepType, Traces


class MessageStep(StepType):
    name = "message"
    template_fields = ("text",)

    def prepare(self, build: StepBuild) -> None:
        texts = build.data.get("texts")
        if texts is not None and not isinstance(texts, list):
            build.error("texts is a list of text.")
            return
        if build.data.get("text") is None and not texts:
            build.error("A message step needs text.")
        for i, text in enumerate(texts or []):
            build.template(f"texts.{i}", text, at=f".data.texts[{i}]")

    async def run(self, run: StepRun) -> Traces:
        step = run.step
        template = step.templates.get("text")
        variants = [t for key, t in step.templates.items() if key.startswith("texts.")]
        if variants:
            template = variants[(run.context.get("turn") or 0) % len(variants)]
        yield run.say(run.render(template))
        run.follow("next")
