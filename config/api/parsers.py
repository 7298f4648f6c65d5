"""JSON request bodies, refused as malformed (400) before anything is written when a database could not store them
or the server could not walk them: NUL characters (PostgreSQL text and jsonb cannot hold them), lone surrogates
(not encodable as UTF-8), NaN and infinities (not JSON), and nesting deeper than `MAX_DEPTH` (Python's parser
would hit its recursion limit). The same checks serve DRF views and the async views."""
import json
import math

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

MAX_DEPTH = 64


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _bad_text(text: str) -> str | None:
    if "\x00" in text:
        return "JSON strings may not contain the NUL character (\\u0000)."
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "JSON strings may not contain lone surrogates (such as \\ud800)."
    return None


def check_json(data):
    """Raises ParseError for a value the database or the server cannot take; walks iteratively."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ParseError(f"JSON is nested deeper than {MAX_DEPTH} levels.")
        if isinstance(value, str):
            problem = _bad_text(value)
            if problem:
                raise ParseError(problem)
        elif isinstance(value, float) and not math.isfinite(value):
            raise ParseError("JSON numbers must be finite.")
        elif isinstance(value, dict):
            for key, item in value.items():
                problem = _bad_text(key)
                if problem:
                    raise ParseError(problem)
                stack.append((item, depth + 1))
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)
    return data


def loads(raw: bytes | str):
    try:
        return json.loads(raw, parse_constant=_refuse_constant)
    except RecursionError:
        raise ParseError(f"JSON is nested deeper than {MAX_DEPTH} levels.") from None
    except ValueError as exc:
        raise ParseError(f"JSON parse error - {exc}") from None


def parse_json_body(raw: bytes):
    """The body of an async view: `{}` when empty."""
    return check_json(loads(raw or b"{}"))


class StrictJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read() if stream is not None else b""
        return check_json(loads(raw))
