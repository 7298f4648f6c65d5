"""`kb`: answers a `question` (a template; the user's words when it has none) from the knowledge base through
`Ports.knowledge` — the best hit's text and the sources — or says the fallback message. The engine's no-workflow
branch answers the same way (`knowledge_answer`)."""
from collections.abc import Iterator
from typing import Protocol

from agents.runtime.steps.base import StepRun, StepType, Traces
from agents.runtime.types import TraceType, trace


class Speaker(Protocol):
    def say(self, message: str) -> dict | None: ...


class KbStep(StepType):
    name = "kb"
    template_fields = ("question",)

    async def run(self, run: StepRun) -> Traces:
        question = run.render(run.step.templates.get("question")) or run.user_text or ""
        hits = await run.ports.knowledge(question) if run.ports.knowledge and question else []
        if hits:
            for item in knowledge_answer(run, hits):
                yield item
        else:
            yield run.say(run.spec.fallback_message)
        run.follow("next")


def knowledge_answer(speaker: Speaker, hits: list[dict]) -> Iterator[dict | None]:
    """The best hit said as the answer, then every hit as a source; `speaker` is a step's run or the turn itself."""
    yield speaker.say(hits[0]["text"])
    sources = [{key: hit.get(key) for key in ("documentId", "documentName", "chunkId", "score")} for hit in hits]
    yield trace(TraceType.KNOWLEDGE, sources=sources)
