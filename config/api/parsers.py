"""JSON request bodies. PostgreSQL cannot store the NUL character in text or jsonb, so a body whose strings (keys
or values) contain one is refused as malformed here, before anything is written, on every database alike."""
import json

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


def _has_nul(value) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def refuse_nul(data):
    if _has_nul(data):
        raise ParseError("JSON strings may not contain the NUL character (\\u0000).")
    return data


def parse_json_body(raw: bytes):
    """The body of a view outside DRF (the SSE endpoint), checked like StrictJSONParser's."""
    try:
        return refuse_nul(json.loads(raw or b"{}"))
    except ValueError as exc:
        raise ParseError(f"JSON parse error - {exc}") from None


class StrictJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        return refuse_nul(super().parse(stream, media_type, parser_context))
