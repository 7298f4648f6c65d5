"""A project document from a brief, written by the configured model (API.md §3, endpoint 5).

The model is asked for one JSON object (`json_output`, as the `ai` step's extraction asks), given the document's
shape, the step types and their ports, and a complete example (a built-in template). Its answer goes through the
same checks as an imported document and the same validation as every write; when it has faults the model is asked
once more, with the faults named, and a second faulty answer is refused naming them — nothing is stored either
way. No model configured: `GenerateRefused` says what to set."""
import json
import re

from agents.importing import ImportRefused
from agents.importing.native import native_convert
from agents.llm import llm_missing, llm_port
from agents.models import default_document
from agents.project_templates import TEMPLATES
from agents.runtime import AgentSpec, DocumentError
from agents.runtime.ports import LlmResult
from agents.services import _validate as project_validate

MAX_BRIEF = 4000
ATTEMPTS = 2  # the first answer, and one repair
MODEL = {"temperature": 0.2, "maxTokens": 4000}  # a whole document is longer than a turn's reply
_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)

STEPS_GUIDE = """Step types (`data` fields; the ports a connection may leave by):
- start {intents?: [utterances]} — ports: next. Exactly one per workflow.
- message {text} — next. Templates use Jinja: "Hi {{ name|default('there') }}".
- buttons {text?, buttons: [{label, value, utterances?}]} — button:0, button:1, …, noMatch. Waits for the user.
- capture {prompt, variable, validate?: email|number|phone|regex, pattern?, retryPrompt?} — next, fail. Waits.
- condition {if: "<Jinja expression>"} — true, false.
- set {assign: {variable: "<Jinja expression>"}} — next.
- jump {workflowId} — next. end {} — no ports. handoff {reason} — no ports.
- api {tool, args: {name: template}, save: {variable: "dotted.path"}} — next, error.
- ai {prompt} — next (needs a model). kb {question} — next, noAnswer (the knowledge base).
- agent {instructions, exitCondition?} — next. data_query {sql, name} — next."""


class GenerateRefused(ValueError):
    """No document could be made: a 400 with `details` (the faults of the last answer), or no model."""

    def __init__(self, message: str, details: dict[str, list[str]] | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or {}


def _spec() -> AgentSpec:
    return AgentSpec.from_document({**default_document(), "model": MODEL}, project_id="", version_id="")


def model_missing() -> str | None:
    """What to set for generation to have a model, or None."""
    return llm_missing(_spec())


def system_prompt() -> str:
    example = {"name": TEMPLATES["customer-support"].name, **TEMPLATES["customer-support"].document}
    return (
        "You design conversational agents for Conduet. Reply with only one JSON object: a complete Conduet project "
        "document with these keys: name, description, framework (\"conversation-flow\" for a drawn flow that needs "
        "no model, \"agentic\" for a model with tools), language, instructions, variables "
        "([{name, type?, default?, description?}]), workflows ([{id, name, steps: [{id, type, data}], connections: "
        "[{source, port, target}]}]), tools (usually []), phases (usually []), settings ({startWorkflowId, "
        "fallbackMessage}).\nEvery connection joins two steps of its workflow through a port the source step has; "
        "step ids are unique in their workflow; variables are letters, digits and _.\n"
        f"{STEPS_GUIDE}\n"
        f"An example of a valid document:\n{json.dumps(example, ensure_ascii=False, separators=(',', ':'))}")


def faults_of(text: str) -> tuple[dict | None, dict[str, list[str]]]:
    """(the document, {}) when the answer is a valid project document, else (None, its faults by location)."""
    match = _FENCE.match(text or "")
    try:
        candidate = json.loads(match.group(1) if match else text)
    except (ValueError, RecursionError) as exc:
        return None, {"document": [f"The answer is not JSON: {str(exc)[:200]}"]}
    if not isinstance(candidate, dict):
        return None, {"document": ["The answer must be one JSON object, the project document."]}
    try:
        document, _warnings = native_convert(candidate)
    except ImportRefused as exc:
        return None, exc.details or {"document": [exc.message]}
    parts = {part: document.get(part, value) for part, value in default_document().items()}
    fields = {"name": document.get("name"), "description": document.get("description"),
              "language": document.get("language", "en")}
    try:  # the write path's own check (the engine's validation and the project's fields), so create cannot refuse it
        project_validate(parts, fields, document.get("framework") or "conversation-flow")
    except DocumentError as exc:
        return None, exc.details
    return document, {}


async def _ask(port, messages: list[dict]) -> str:
    text = ""
    async for item in port(messages, json_output=True):
        if isinstance(item, LlmResult):
            text = item.text
    return text


async def document_generate(*, brief: str) -> dict:
    """A valid project document for `brief` (not stored). `GenerateRefused` when there is no model or the model's
    second answer still has faults; `UpstreamError` when the model fails."""
    spec = _spec()
    missing = llm_missing(spec)
    if missing:
        raise GenerateRefused(f"Generating a project needs a language model. {missing}",
                              {"model": ["No language model is configured."]})
    port = llm_port(spec)
    messages = [{"role": "system", "content": system_prompt()},
                {"role": "user", "content": f"Write the project document for this brief:\n\n{brief}"}]
    faults: dict[str, list[str]] = {}
    for _attempt in range(ATTEMPTS):
        answer = await _ask(port, messages)
        document, faults = faults_of(answer)
        if document is not None:
            return document
        listed = "\n".join(f"- {where}: {'; '.join(messages_)}" for where, messages_ in list(faults.items())[:30])
        messages += [{"role": "assistant", "content": answer[:20000]},
                     {"role": "user", "content": "That document is not valid. Its faults:\n" + listed
                      + "\nReply with the whole corrected JSON document, and nothing else."}]
    where, first = next(iter(faults.items()))
    raise GenerateRefused(f"The model did not write a valid project document: {where}: {first[0]}", faults)
