"""`ai`: a model call in a flow, through `Ports.llm`, with the project's instructions and the recent history.

- A reply (no `saveTo`): the model answers its `prompt` (a template; the user's words when it has none), streamed
  to the user chunk by chunk; then `next`.
- An extraction (`saveTo`: a variable; `schema`: the JSON Schema of the value, default `{"type": "string"}`): the
  model is asked, in JSON mode, for `{"value": …}` — the task is the `prompt`, the material the conversation and
  the user's words. An answer that is not that object, or whose value the schema refuses, is sent back naming the
  fault, up to `retries` times (default 2); a valid value is stored and nothing is said; then `next`. Still invalid:
  the variable is left as it was, a debug warning, and the `error` port when it is connected, else `next`.

With no model the step says the fallback message (and a debug warning) and takes `next`, so a flow still answers."""
import json
from typing import Any

from jsonschema import SchemaError
from jsonschema.exceptions import best_match
from jsonschema.validators import validator_for

from agents.runtime.agentic import DEFAULT_HISTORY_TOKENS, history_within
from agents.runtime.builtins import as_json
from agents.runtime.steps.base import StepBuild, StepRun, StepType, Traces
from agents.runtime.values import VARIABLE_NAME_RE, is_whole_number, json_value

DEFAULT_SCHEMA = {"type": "string"}
DEFAULT_RETRIES = 2
MAX_RETRIES = 5


class AiStep(StepType):
    name = "ai"
    ports = frozenset({"next", "error"})  # `error`: an extraction that found no valid value
    template_fields = ("prompt",)

    def ports_for(self, data: dict) -> frozenset[str]:
        return self.ports if isinstance(data, dict) and data.get("saveTo") is not None else frozenset({"next"})

    def prepare(self, build: StepBuild) -> None:
        data = build.data
        if data.get("saveTo") is None:
            return
        if not isinstance(data["saveTo"], str) or not VARIABLE_NAME_RE.fullmatch(data["saveTo"]):
            build.error("saveTo names a variable (letters, digits and _).", at=".data.saveTo")
        schema = data.get("schema", DEFAULT_SCHEMA)
        try:
            if not isinstance(schema, dict | bool):
                raise SchemaError("a JSON Schema is an object")
            validator = validator_for(schema)
            validator.check_schema(schema)
            build.compiled["validator"] = validator(schema)
        except SchemaError as exc:
            build.error(f"schema is not a valid JSON Schema: {exc.message}", at=".data.schema")
        retries = data.get("retries", DEFAULT_RETRIES)
        if not is_whole_number(retries) or not 0 <= retries <= MAX_RETRIES:
            build.error(f"retries is a whole number from 0 to {MAX_RETRIES}.", at=".data.retries")

    async def run(self, run: StepRun) -> Traces:
        if run.ports.llm is None:
            yield run.debug("warn", "No LLM is configured; answering with the fallback message")
            yield run.say(run.spec.fallback_message)
            run.follow("next")
            return
        if run.step.data.get("saveTo") is not None:
            async for item in extract(run):
                yield item
            return
        prompt = run.render(run.step.templates.get("prompt")) or run.user_text or ""
        async for item in run.stream(run.ports.llm(conversation(run, run.spec.instructions, prompt))):
            yield item
        run.follow("next")


def conversation(run: StepRun, system: str, last: str | None) -> list[dict]:
    """The system prompt, the history within the agent's token budget, and the last user message."""
    budget = int(run.context.get("history_tokens") or DEFAULT_HISTORY_TOKENS)
    messages = [{"role": "system", "content": system}] if system else []
    messages += history_within(run.state["history"], budget)
    return messages + ([{"role": "user", "content": last}] if last else [])


async def extract(run: StepRun) -> Traces:
    step, variable = run.step, run.step.data["saveTo"]
    schema = json_value(step.data.get("schema", DEFAULT_SCHEMA))
    task = run.render(step.templates.get("prompt")) or f"The value of {variable}."
    instruction = (f"Extract one value from the conversation. The value: {task}\nReply with only a JSON object "
                   f'{{"value": …}} whose value matches this JSON Schema: {as_json(schema)}')
    system = "\n\n".join(part for part in (run.spec.instructions, instruction) if part)
    messages = conversation(run, system, run.user_text)
    retries = step.data.get("retries", DEFAULT_RETRIES)
    for attempt in range(retries + 1):
        result = await run.complete(messages, json_output=True)
        fault, value = _fault(result.text, step.compiled["validator"])
        if fault is None:
            run.variables[variable] = json_value(value)
            yield run.debug("info", f"Extracted {variable} = {as_json(value)}")
            run.follow("next")
            return
        yield run.debug("info", f"Extraction of {variable}, attempt {attempt + 1}: {fault}")
        messages = [*messages, {"role": "assistant", "content": result.text},
                    {"role": "user", "content": f"That reply is not valid: {fault}. Reply again with only a JSON "
                                                f'object {{"value": …}} whose value matches the schema.'}]
    yield run.debug("warn", f"No valid value for {variable} after {retries + 1} attempts; it is left unchanged")
    run.follow("error" if step.target("error") else "next")


def _fault(text: str, validator: Any) -> tuple[str | None, Any]:
    """(what is wrong with the model's reply, or None; the value)."""
    try:
        reply = json.loads(text)
    except ValueError:
        return "it is not JSON", None
    if not isinstance(reply, dict) or "value" not in reply:
        return 'it is not an object with a "value"', None
    error = best_match(validator.iter_errors(reply["value"]))
    if error is not None:
        where = "/".join(str(part) for part in error.absolute_path)
        return f"the value {'at ' + where + ' ' if where else ''}does not match the schema ({error.message})", None
    return None, reply["value"]
