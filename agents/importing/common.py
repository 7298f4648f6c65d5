"""What both importers share: the refusal (a 400 naming what is wrong) and, for a converted document, the last
check — the same validation as every write — with what still fails left out and listed as a warning."""
import re
from collections.abc import Callable

from agents.runtime import DocumentError, validate_document

_STEP = re.compile(r"^workflows\[(\d+)\]\.steps\[(\d+)\]")
_CONNECTION = re.compile(r"^workflows\[(\d+)\]\.connections\[(\d+)\]")
_TOOL = re.compile(r"^tools\[(\d+)\]")
_VARIABLE = re.compile(r"^variables\[(\d+)\]")
MAX_REPAIRS = 5


class ImportRefused(ValueError):
    """A body that cannot be imported at all: the API answers 400 with these details."""

    def __init__(self, message: str, details: dict[str, list[str]] | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or {}


def finish_document(document: dict, warnings: list[str], describe: Callable[[dict, dict], str]) -> dict:
    """`document` once it validates: a step, connection, tool or variable the validation still names is left out
    (a warning says which and why), a few rounds at most; what cannot be repaired so is refused."""
    for _round in range(MAX_REPAIRS):
        try:
            validate_document(document)
            return document
        except DocumentError as exc:
            if not _repair(document, exc.details, warnings, describe):
                raise ImportRefused(f"The converted project is not valid: {exc.message}", exc.details) from None
    raise ImportRefused("The converted project could not be made valid.")


def _repair(document: dict, details: dict, warnings: list[str], describe) -> bool:
    workflows = document["workflows"]
    drop_steps, drop_connections, drop_tools, drop_variables = set(), set(), set(), set()
    for where, messages in details.items():
        reason = messages[0] if messages else "invalid"
        if match := _STEP.match(where):
            i, j = int(match.group(1)), int(match.group(2))
            step = workflows[i]["steps"][j]
            warnings.append(f"{describe(workflows[i], step)} is left out: {reason}")
            drop_steps.add((i, step["id"]))
        elif match := _CONNECTION.match(where):
            drop_connections.add((int(match.group(1)), int(match.group(2))))
        elif match := _TOOL.match(where):
            tool = document["tools"][int(match.group(1))]
            warnings.append(f"Tool {tool.get('id')!r} is left out: {reason}")
            drop_tools.add(int(match.group(1)))
        elif match := _VARIABLE.match(where):
            drop_variables.add(int(match.group(1)))
            warnings.append(f"Variable {document['variables'][int(match.group(1))].get('name')!r} is left out: "
                            f"{reason}")
    if not (drop_steps or drop_connections or drop_tools or drop_variables):
        return False
    for i, workflow in enumerate(workflows):
        gone = {step_id for k, step_id in drop_steps if k == i}
        workflow["steps"] = [step for step in workflow["steps"] if step["id"] not in gone]
        workflow["connections"] = [c for k, c in enumerate(workflow["connections"]) if (i, k) not in drop_connections
                                   and c["source"] not in gone and c["target"] not in gone]
    document["tools"] = [tool for k, tool in enumerate(document["tools"]) if k not in drop_tools]
    document["variables"] = [v for k, v in enumerate(document["variables"]) if k not in drop_variables]
    return True
