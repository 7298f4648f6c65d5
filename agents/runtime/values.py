"""Values a turn reads from the user and writes to the session: capture validation and JSON-safe copies."""
import re
from typing import Any

from agents.runtime.spec import Step
from agents.runtime.types import Action

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+?\d{7,15}$")


def capture_value(step: Step, action: Action, text: str | None) -> tuple[bool, Any]:
    """(valid, value to store) for the answer to a capture step, by its `validate` kind."""
    kind = step.data.get("validate")
    if action.type == "media":
        return (kind is None), dict(action.payload)
    value = (text or "").strip()
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
        return (True, value) if step.pattern.fullmatch(value) else (False, None)
    return True, value


def dig(data: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return None
    return data


def json_value(value: Any) -> Any:
    """Engine values made JSON: mappings and tuples from the frozen spec back to dict and list."""
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if hasattr(value, "items"):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    return str(value)
