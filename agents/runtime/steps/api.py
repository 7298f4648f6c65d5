"""`api`: calls one of the project's tools through `Ports.tools` with its `args` (templates), saves parts of the
result into variables (`save`: variable → dotted path), and takes `next` — or `error` when the call fails or no
tool port is configured, so a definition can say what to do when a service is down. Each call is recorded in the
turn's `tool_calls` (kept on the reply message), as the agent loop's are."""
import json
import time
from typing import Any

from agents.runtime.steps.base import StepBuild, StepRun, StepType, Traces
from agents.runtime.values import VARIABLE_NAME_RE, json_value

RECORDED_CHARS = 2000  # of a call's result (or error) kept on the reply message


def _ms_since(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)


class ApiStep(StepType):
    name = "api"
    ports = frozenset({"next", "error"})

    def prepare(self, build: StepBuild) -> None:
        data = build.data
        if not isinstance(data.get("tool"), str):
            build.error("An api step names its tool.")
        args, save = data.get("args") or {}, data.get("save") or {}
        if not isinstance(args, dict):
            build.error("args is an object of name → template.")
            args = {}
        for name, source in args.items():
            build.template(f"args.{name}", str(source), at=f".data.args.{name}")
        if not isinstance(save, dict) or not all(VARIABLE_NAME_RE.fullmatch(str(name)) for name in save):
            build.error("save is an object of variable → path in the result.")

    async def run(self, run: StepRun) -> Traces:
        step, tool = run.step, run.step.data["tool"]
        if run.ports.tools is None:
            yield run.debug("warn", f"Tool {tool!r} not called: no tool port is configured")
            run.follow("error")
            return
        args = {key.removeprefix("args."): run.render(t) for key, t in step.templates.items()
                if key.startswith("args.")}
        record = {"tool": tool, "callId": f"{run.workflow_id}/{step.id}", "arguments": args}
        started = time.perf_counter()
        try:
            result = await run.ports.tools(tool, args)
        except Exception as exc:  # the tool's fault, not the turn's; a cancellation is no Exception and goes through
            run.turn.tool_calls.append({**record, "status": "error", "durationMs": _ms_since(started),
                                        "result": None, "error": str(exc)[:RECORDED_CHARS]})
            yield run.debug("warn", f"Tool {tool!r} failed: {exc}")
            run.follow("error")
            return
        shown = json.dumps(result, ensure_ascii=False, default=str)
        run.turn.tool_calls.append({**record, "status": "ok", "durationMs": _ms_since(started),
                                    "result": shown[:RECORDED_CHARS]})
        for variable, path in (step.data.get("save") or {}).items():
            run.variables[variable] = json_value(dig(result, str(path)))
        run.follow("next")


def dig(data: Any, path: str) -> Any:
    """The value at a dotted path (`account.balance`, `items.0.id`), or None."""
    for part in path.split("."):
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return None
    return data
