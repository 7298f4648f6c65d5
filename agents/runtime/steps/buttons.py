"""`buttons`: offers choices and waits. A `button` action picks the button whose value it carries; typed text picks
the button whose label or value it is, else the one whose label, value or `utterances` it matches (the no-model
intent matcher), else the `noMatch` port — or, with no `noMatch` connection, the question again."""
from dataclasses import dataclass
from typing import Any

from agents.runtime.matching import IntentIndex
from agents.runtime.steps.base import StepBuild, StepRun, StepType, Traces
from agents.runtime.templates import Template
from agents.runtime.types import TraceType, trace
from agents.runtime.values import frozen, json_value


@dataclass(frozen=True)
class Button:
    label: Template
    value: Any


class ButtonsStep(StepType):
    name = "buttons"
    ports = frozenset({"noMatch"})  # and `button:<i>` per button, see ports_for
    template_fields = ("text",)
    waits_for_answer = True

    def ports_for(self, data: dict) -> frozenset[str]:
        buttons = data.get("buttons", [])
        return self.ports | {f"button:{i}" for i in range(len(buttons) if isinstance(buttons, list) else 0)}

    def prepare(self, build: StepBuild) -> None:
        items = build.data.get("buttons")
        if not isinstance(items, list) or not items:
            build.error("A buttons step has a non-empty list of buttons.")
            return
        buttons, entries = [], []
        for i, item in enumerate(items):
            at = f".data.buttons[{i}]"
            if not isinstance(item, dict) or not isinstance(item.get("label"), str):
                build.error("A button has a label.", at=at)
                continue
            buttons.append(Button(label=Template(item["label"], f"{build.where}{at}.label"),
                                  value=frozen(item.get("value", item["label"]))))
            utterances = item.get("utterances") or []
            if not isinstance(utterances, list):
                build.error("utterances is a list of text.", at=at)
                utterances = []
            value = item.get("value")
            entries += [(i, item["label"]), *[(i, u) for u in utterances if isinstance(u, str)]]
            if isinstance(value, str):
                entries.append((i, value))
        build.compiled["buttons"] = tuple(buttons)
        build.compiled["button_index"] = IntentIndex(entries)

    async def run(self, run: StepRun) -> Traces:
        async for item in self.prompt(run):
            yield item
        run.wait()

    async def prompt(self, run: StepRun) -> Traces:
        if "text" in run.step.templates:
            yield run.say(run.render(run.step.templates["text"]))
        buttons = [{"label": run.render(b.label), "value": json_value(b.value)} for b in run.step.compiled["buttons"]]
        yield trace(TraceType.CHOICE, buttons=buttons)

    async def answer(self, run: StepRun) -> Traces:
        port = self.picked_port(run)
        if port is None and run.step.target("noMatch"):
            port = "noMatch"
        if port is None:
            yield run.debug("info", "No button matched; asking again")
            async for item in self.prompt(run):
                yield item
            run.wait(attempts=int(run.waiting.get("attempts") or 0))
            return
        yield run.debug("info", f"Button port {port}")
        run.follow(port)

    def picked_port(self, run: StepRun) -> str | None:
        buttons = run.step.compiled["buttons"]
        if run.action.type == "button":
            value = run.action.payload.get("value")
            for i, button in enumerate(buttons):
                if json_value(button.value) == value:
                    return f"button:{i}"
        text = (run.user_text or "").strip().casefold()
        if not text:
            return None
        for i, button in enumerate(buttons):
            if text in (run.render(button.label).casefold(), str(json_value(button.value)).casefold()):
                return f"button:{i}"
        match = run.step.compiled["button_index"].best(text)
        return f"button:{match.key}" if match else None
