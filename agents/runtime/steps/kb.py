"""`kb`: answers a `question` (a template; the user's words when it has none) from the project's knowledge base
through `Ports.knowledge`, whose default answer is the hits good enough to answer with (the search's threshold).

- With a model: a grounded answer. The model gets the hits as numbered passages (document, headings, text) and the
  question, and is told to answer only from them and to cite them as [n]; its reply streams like the `ai` step's
  (`completion-start`, then `text` chunks), then a `knowledge` trace names the passages it cited (all it was given
  when it cited none).
- Without a model, or when the model fails (a debug warning, never a failed turn): the best passage itself, quoted
  with its source — `From "Refund policy" (Refunds › Timing):` then the passage as a `> ` block — and a `knowledge`
  trace naming it.
- No hit good enough (or no knowledge base): the `noAnswer` port when it is connected (a flow's own answer), else
  the fallback message; no model is called. Then `next`.

The engine's free-text branch answers the same way (`knowledge_reply`)."""
import re
from typing import TYPE_CHECKING

from agents.runtime.agentic import DEFAULT_HISTORY_TOKENS, ModelReply, history_within
from agents.runtime.ports import UpstreamError
from agents.runtime.steps.base import StepRun, StepType, Traces
from agents.runtime.types import TraceType, trace

if TYPE_CHECKING:
    from agents.runtime.engine import Turn

SOURCE_KEYS = ("documentId", "documentName", "chunkId", "score")  # a `knowledge` trace's source (API.md §2)
GROUNDING = ("Answer the user's question using only the numbered passages from the knowledge base that come with "
             "it. Cite each passage you use by its number in square brackets, like [1]. If the passages do not "
             "answer the question, say that you don't know rather than guessing.")
_CITATIONS = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")  # [2] and [1, 3]
_HEADING_LINE = re.compile(r"^#{1,6}\s")
_OWN_LINE = re.compile(r"^(?:[-*+•]\s|\d{1,3}[.)]\s|\|)")  # a list item or a table row starts its own line


class KbStep(StepType):
    name = "kb"
    ports = frozenset({"next", "noAnswer"})  # noAnswer: the knowledge base has no answer (when connected)
    template_fields = ("question",)

    async def run(self, run: StepRun) -> Traces:
        question = run.render(run.step.templates.get("question")) or run.user_text or ""
        hits = await run.ports.knowledge(question) if run.ports.knowledge and question else []
        if hits:
            async for item in knowledge_reply(run.turn, question, hits):
                yield item
        elif run.step.target("noAnswer"):
            yield run.debug("info", "The knowledge base has no answer; taking noAnswer")
            run.follow("noAnswer")
            return
        else:
            yield run.say(run.spec.fallback_message)
        run.follow("next")


async def knowledge_reply(turn: "Turn", question: str, hits: list[dict]) -> Traces:
    """The answer to `question` from `hits` (best first, not empty): grounded by the model when there is one, else
    the best passage quoted; then the `knowledge` trace citing what it rests on."""
    if turn.ports.llm is not None:
        reply = ModelReply()
        try:
            async for item in turn.stream_reply(turn.ports.llm(grounded_messages(turn, question, hits)), reply):
                yield item
        except UpstreamError as exc:
            turn.warn(f"The model failed ({exc.message}); answering with the best passage instead")
        else:
            if reply.result.text.strip():
                yield trace(TraceType.KNOWLEDGE, sources=[source(hit) for hit in cited(reply.result.text, hits)])
                return
            turn.warn("The model's answer was empty; answering with the best passage instead")
    yield turn.say(quoted(hits[0]))
    yield trace(TraceType.KNOWLEDGE, sources=[source(hits[0])])


def grounded_messages(turn: "Turn", question: str, hits: list[dict]) -> list[dict]:
    """The project's instructions and the grounding rule, the history within the agent's budget, then the numbered
    passages and the question."""
    system = "\n\n".join(part for part in (turn.spec.instructions, GROUNDING) if part)
    budget = int(turn.context.get("history_tokens") or DEFAULT_HISTORY_TOKENS)
    passages = "\n\n".join(f"[{n}] {where(hit)}\n{hit.get('text') or ''}" for n, hit in enumerate(hits, 1))
    return [{"role": "system", "content": system}, *history_within(turn.state["history"], budget),
            {"role": "user", "content": f"Passages:\n\n{passages}\n\nQuestion: {question}"}]


def cited(answer: str, hits: list[dict]) -> list[dict]:
    """The hits the answer cites as [n], in the order it first cites them; all of them when it cites none."""
    numbers: list[int] = []
    for match in _CITATIONS.finditer(answer):
        for part in match.group(1).split(","):
            n = int(part)
            if 1 <= n <= len(hits) and n not in numbers:
                numbers.append(n)
    return [hits[n - 1] for n in numbers] if numbers else list(hits)


def where(hit: dict) -> str:
    """`"Refund policy" (Refunds › Timing)`: the document and the headings above the passage (the document's own
    title, when it is its first heading, once)."""
    name = str(hit.get("documentName") or "the knowledge base")
    headings = [str(heading) for heading in hit.get("headingPath") or [] if heading]
    if headings and headings[0].strip().casefold() == name.strip().casefold():
        headings = headings[1:]
    return f'"{name}"' + (f" ({' › '.join(headings)})" if headings else "")


def quoted(hit: dict) -> str:
    """The passage as a quote block under its source. Its own heading lines are left out (the source names them),
    and a paragraph's lines are joined (a PDF's or a text file's hard wraps), list items and table rows kept."""
    lines: list[str] = []
    for line in str(hit.get("text") or "").strip().splitlines():
        line = line.strip()
        if _HEADING_LINE.match(line):
            continue
        if line and lines and lines[-1] and not _OWN_LINE.match(line):
            lines[-1] += " " + line
        elif line or (lines and lines[-1]):
            lines.append(line)
    while lines and not lines[-1]:
        lines.pop()
    body = "\n".join(f"> {line}" if line else ">" for line in lines)
    return f"From {where(hit)}:\n{body}"


def source(hit: dict) -> dict:
    return {key: hit.get(key) for key in SOURCE_KEYS}
