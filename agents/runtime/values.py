"""Values a definition names and a turn stores: variable names, whole numbers, read-only copies of the document's
JSON and JSON-safe copies of engine values."""
import re
from types import MappingProxyType
from typing import Any

VARIABLE_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # variable names, used with fullmatch


def is_whole_number(value: Any) -> bool:
    """An int that is not a bool (JSON `true` would otherwise pass as 1)."""
    return isinstance(value, int) and not isinstance(value, bool)


def frozen(value: Any) -> Any:
    """A read-only deep copy of JSON data."""
    if isinstance(value, dict):
        return MappingProxyType({k: frozen(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(frozen(v) for v in value)
    return value


def json_value(value: Any) -> Any:
    """Engine values made JSON: mappings and tuples from the frozen spec back to dict and list."""
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if hasattr(value, "items"):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    return str(value)
