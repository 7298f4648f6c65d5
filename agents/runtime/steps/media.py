"""`media`: sends a visual (`url`, `mimeType` defaulting to image/png, optional `alt`)."""
from agents.runtime.steps.base import StepBuild, StepRun, StepType, Traces
from agents.runtime.types import TraceType, trace


class MediaStep(StepType):
    name = "media"
    template_fields = ("url", "mimeType", "alt")

    def prepare(self, build: StepBuild) -> None:
        if "url" not in build.templates:
            build.error("A media step needs a url.")

    async def run(self, run: StepRun) -> Traces:
        templates = run.step.templates
        payload = {"url": run.render(templates["url"]),
                   "mimeType": run.render(templates.get("mimeType")) or "image/png"}
        if "alt" in templates:
            payload["alt"] = run.render(templates["alt"])
        yield trace(TraceType.VISUAL, **payload)
        run.follow("next")
