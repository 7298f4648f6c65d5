"""`capture`: asks, waits, and stores the answer (validated by `validate`: email, number, phone or regex) in its
`variable`. An invalid answer is asked again with `retryPrompt`; after `maxAttempts` invalid answers the walk takes
the `fail` port if it is connected, else it keeps asking. A media answer is stored as `{url, mimeType}` when the
step has no `validate`."""
import re
from typing import Any

from agents.runtime.steps.base import StepBuild, StepRun, StepType, Traces
from agents.runtime.values import VARIABLE_NAME_RE, is_whole_number

VALIDATORS = ("email", "number", "phone", "regex")
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_RETRY = {
    "email": "That doesn't look like a valid email address. Please try again.",
    "number": "Please enter a number.",
    "phone": "That doesn't look like a valid phone number. Please try again.",
    "regex": "That doesn't look right. Please try again.",
    None: "Please try again.",
}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+?\d{7,15}$")


class CaptureStep(StepType):
    name = "capture"
    ports = frozenset({"next", "fail"})
    template_fields = ("prompt", "retryPrompt")
    waits_for_answer = True

    def prepare(self, build: StepBuild) -> None:
        data = build.data
        if not isinstance(data.get("variable"), str) or not VARIABLE_NAME_RE.fullmatch(data["variable"]):
            build.error("A capture step names the variable it fills.")
        validate = data.get("validate")
        if validate is not None and validate not in VALIDATORS:
            build.error(f"validate is one of {', '.join(VALIDATORS)} (got {validate!r}).")
        max_attempts = data.get("maxAttempts", DEFAULT_MAX_ATTEMPTS)
        if not is_whole_number(max_attempts) or max_attempts < 1:
            build.error("maxAttempts is a positive integer.")
        if validate == "regex":
            try:
                build.compiled["pattern"] = re.compile(data.get("pattern"))
            except (re.error, TypeError) as exc:
                build.error(f"A regex capture needs a valid pattern: {exc}")

    async def run(self, run: StepRun) -> Traces:
        async for item in self.prompt(run):
            yield item
        run.wait()

    async def prompt(self, run: StepRun) -> Traces:
        yield run.say(run.render(run.step.templates.get("prompt")))

    async def answer(self, run: StepRun) -> Traces:
        step = run.step
        ok, value = self.value(run)
        if ok:
            run.variables[step.data["variable"]] = value
            run.follow("next")
            return
        attempts = int(run.waiting.get("attempts") or 0) + 1
        max_attempts = step.data.get("maxAttempts", DEFAULT_MAX_ATTEMPTS)
        yield run.debug("info", f"Invalid answer ({attempts}/{max_attempts})")
        if attempts >= max_attempts and step.target("fail"):
            run.follow("fail")
            return
        yield run.say(run.render(step.templates.get("retryPrompt")) or DEFAULT_RETRY[step.data.get("validate")])
        run.wait(attempts=attempts)

    def value(self, run: StepRun) -> tuple[bool, Any]:
        """(valid, value to store) for the user's answer, by the step's `validate` kind."""
        kind = run.step.data.get("validate")
        if run.action.type == "media":
            return (kind is None), dict(run.action.payload)
        value = (run.user_text or "").strip()
        if not value:
            return False, None
        if kind == "email":
            return (True, value.lower()) if _EMAIL.fullmatch(value) else (False, None)
        if kind == "number":
            try:
                number = float(value.replace(",", ""))
            except ValueError:
                return False, None
            return True, int(number) if number.is_integer() and "." not in value else number
        if kind == "phone":
            digits = re.sub(r"[\s().-]", "", value)
            return (True, digits) if _PHONE.fullmatch(digits) else (False, None)
        if kind == "regex":
            return (True, value) if run.step.compiled["pattern"].fullmatch(value) else (False, None)
        return True, value
