"""The admin project page's outline of its workflows: each step with its type and a short summary, each port and
the step it leads to, above the JSON that is edited. It reads the stored document defensively: one an older release
accepted may be malformed, and the page must still open to fix it."""
from agents.runtime.steps import STEP_TYPES

OUTLINE_SUMMARY_MAX = 120
# The data field that says what a step does, for the step types with no summary of their own below.
SUMMARY_FIELDS = ("text", "prompt", "question", "reason", "instructions", "url", "sql", "name")


def _short(value) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= OUTLINE_SUMMARY_MAX else text[:OUTLINE_SUMMARY_MAX - 1] + "…"


def _as(value, kind, default):
    return value if isinstance(value, kind) else default


def step_summary(kind, data: dict, workflow_names: dict) -> str:
    buttons = [_as(b, dict, {}) for b in _as(data.get("buttons"), list, [])]
    if kind == "start":
        return "intents: " + ", ".join(f"“{i}”" for i in _as(data.get("intents"), list, [])) if data.get("intents") \
            else ""
    if kind == "buttons":
        return _short(f"{data.get('text', '')} [{' | '.join(str(b.get('label', '?')) for b in buttons)}]")
    if kind == "capture":
        return _short(f"{data.get('prompt', '')} → {data.get('variable', '?')}")
    if kind == "condition":
        return _short(f"if {data.get('if', '')}")
    if kind == "set":
        return _short(", ".join(f"{name} = {value}" for name, value in _as(data.get("assign"), dict, {}).items()))
    if kind == "jump":
        workflow_id = data.get("workflowId")
        return f"→ workflow {workflow_names.get(workflow_id, workflow_id)}"
    if kind == "api":
        return _short(f"{data.get('method', 'GET')} {data.get('url', '')}")
    return next((_short(data[key]) for key in SUMMARY_FIELDS if isinstance(data.get(key), str)), "")


def _port_order(port: str) -> tuple:
    kind, _, index = port.partition(":")
    return (port != "next", kind, int(index) if index.isdigit() else 0, port)


def workflow_outline(document) -> list[dict]:
    """The workflows of a document as the outline template shows them."""
    workflows = [w for w in _as(_as(document, dict, {}).get("workflows"), list, []) if isinstance(w, dict)]
    names = {w.get("id"): w.get("name") or w.get("id") for w in workflows}
    outline = []
    for workflow in workflows:
        steps = [s for s in _as(workflow.get("steps"), list, []) if isinstance(s, dict)]
        step_ids = {str(step.get("id")) for step in steps}
        anchor = f"outline-{workflow.get('id')}"
        targets: dict[tuple, str] = {}
        for connection in _as(workflow.get("connections"), list, []):
            if isinstance(connection, dict):
                targets[(str(connection.get("source")), str(connection.get("port")))] = str(connection.get("target"))
        shown = []
        for step in steps:
            kind, data, step_id = step.get("type"), _as(step.get("data"), dict, {}), str(step.get("id"))
            step_type = STEP_TYPES.get(kind) if isinstance(kind, str) else None
            declared = step_type.ports_for(data) if step_type else frozenset()
            ports = declared | {port for source, port in targets if source == step_id}
            buttons = _as(data.get("buttons"), list, [])
            port_rows = []
            for port in sorted(ports, key=_port_order):
                label = port
                index = port.removeprefix("button:")
                if port.startswith("button:") and index.isdigit() and int(index) < len(buttons):
                    label = f"{port} “{_as(buttons[int(index)], dict, {}).get('label', '?')}”"
                target = targets.get((step_id, port))
                port_rows.append({"label": label, "target": target, "known": target in step_ids,
                                  "anchor": f"{anchor}-{target}"})
            shown.append({"id": step_id, "type": kind, "summary": step_summary(kind, data, names),
                          "anchor": f"{anchor}-{step_id}", "ports": port_rows})
        outline.append({"id": workflow.get("id"), "name": workflow.get("name"), "steps": shown})
    return outline
