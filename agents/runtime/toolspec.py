"""The shape of a project's tools (`tools` of the project document), checked before a document is stored, and the
HTTP tools as the model sees them. Pure: no Django, no HTTP client.

An HTTP tool: `{"id", "kind"?: "http", "description", "parameters"?: JSON Schema (type object), "http": {"method",
"url", "headers"?, "timeoutMs"?, "body"?}, "save"?: {variable: "dotted.path"}}`. An MCP server (whose tools the
model sees as `<prefix or id>__<tool name>`): `{"id", "kind": "mcp", "description"?, "mcp": {"url", "headers"?,
"timeoutMs"?}, "prefix"?}`. A tool with no `kind` is an HTTP tool when it has `http`, an MCP server when it has
only `mcp`. Header values are text, or the sealed form `{"$secret": …}` of a stored secret (`agents/secrets.py`).
"""
import functools
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from jsonschema import SchemaError
from jsonschema.exceptions import best_match
from jsonschema.validators import validator_for

from agents.runtime.cache import compiled
from agents.runtime.ports import ToolDefinition
from agents.runtime.templates import Template
from agents.runtime.types import DocumentError
from agents.runtime.values import VARIABLE_NAME_RE, json_value

TOOL_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")  # what a model may call (OpenAI function names); fullmatch
HEADER_NAME_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # an HTTP token; fullmatch
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
KINDS = ("http", "mcp")
MAX_TIMEOUT_MS = 60_000
EMPTY_PARAMETERS = {"type": "object", "properties": {}}


def tool_kind(tool: Mapping) -> str | None:
    """`http` or `mcp`, or None when the tool says neither."""
    kind = tool.get("kind")
    if kind is None:
        if tool.get("http") is not None:
            return "http"
        if tool.get("mcp") is not None:
            return "mcp"
        return None
    return kind if kind in KINDS else None


def check_tools(tools: Any) -> dict[str, list[str]]:
    """Every problem of the document's `tools` part, keyed by location (`tools[2].http.url`,
    `tools[0].parameters`); empty when the tools can run."""
    problems: dict[str, list[str]] = {}

    def error(where: str, message: str) -> None:
        problems.setdefault(where, []).append(message)

    if tools is None:
        return problems
    if not isinstance(tools, Sequence) or isinstance(tools, str):
        error("tools", "Expected a list.")
        return problems
    ids = [tool.get("id") if isinstance(tool, Mapping) else None for tool in tools]
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        if not isinstance(tool, Mapping):
            error(where, "A tool is an object.")
            continue
        tool_id = tool.get("id")
        if not isinstance(tool_id, str) or not TOOL_NAME_RE.fullmatch(tool_id):
            error(f"{where}.id", "A tool id is 1 to 64 letters, digits, _ or - (the model calls it by that name).")
        elif ids.count(tool_id) > 1:
            error(f"{where}.id", f"Duplicate tool id {tool_id!r}.")
        if not isinstance(tool.get("description", ""), str):
            error(f"{where}.description", "Expected text.")
        kind = tool_kind(tool)
        if kind is None:
            error(f"{where}.kind", "Expected http (with an http object) or mcp (with an mcp object).")
        elif kind == "http":
            _check_http(tool, where, error)
        else:
            _check_mcp(tool, where, error)
    return problems


def _check_http(tool: Mapping, where: str, error) -> None:
    http = tool.get("http")
    if not isinstance(http, Mapping):
        error(f"{where}.http", "An HTTP tool has an http object {method, url, headers?, timeoutMs?, body?}.")
    else:
        method = http.get("method", "GET")
        if not isinstance(method, str) or method.upper() not in HTTP_METHODS:
            error(f"{where}.http.method", f"Expected one of {', '.join(HTTP_METHODS)}.")
        _check_url(http.get("url"), f"{where}.http.url", error)
        _check_headers(http.get("headers"), f"{where}.http.headers", error)
        _check_timeout(http.get("timeoutMs"), f"{where}.http.timeoutMs", error)
        _check_templates(http, where, error)
    parameters = tool.get("parameters")
    if parameters is not None:
        for message in schema_problems(parameters):
            error(f"{where}.parameters", message)
    save = tool.get("save")
    if save is not None and (not isinstance(save, Mapping) or not all(
            isinstance(name, str) and VARIABLE_NAME_RE.fullmatch(name) and isinstance(path, str) and path
            for name, path in save.items())):
        error(f"{where}.save", "save is an object of variable name → dotted path in the response.")


def _check_mcp(tool: Mapping, where: str, error) -> None:
    mcp = tool.get("mcp")
    if not isinstance(mcp, Mapping):
        error(f"{where}.mcp", "An MCP tool has an mcp object {url, headers?, timeoutMs?}.")
    else:
        _check_url(mcp.get("url"), f"{where}.mcp.url", error)
        _check_headers(mcp.get("headers"), f"{where}.mcp.headers", error)
        _check_timeout(mcp.get("timeoutMs"), f"{where}.mcp.timeoutMs", error)
    prefix = tool.get("prefix")
    if prefix is not None and (not isinstance(prefix, str) or not TOOL_NAME_RE.fullmatch(prefix)):
        error(f"{where}.prefix", "A prefix is 1 to 64 letters, digits, _ or -.")


def _check_templates(http: Mapping, where: str, error) -> None:
    """The URL, the header values and the body's strings are Jinja templates (`agents/tools.py` renders them over
    the arguments): one that does not compile is refused now rather than failing every call. A header's fault never
    quotes it (header values are secrets)."""
    def check(source: Any, at: str, secret: bool = False) -> None:
        if not isinstance(source, str) or "{" not in source:
            return
        try:
            compiled(Template, source, at)
        except DocumentError as exc:
            error(at, "Not a valid template." if secret else exc.details[at][0])

    check(http.get("url"), f"{where}.http.url")
    headers = http.get("headers")
    if isinstance(headers, Mapping):
        for name, value in headers.items():
            check(value, f"{where}.http.headers.{name}", secret=True)
    if "body" in http:
        _check_body(http["body"], f"{where}.http.body", check)


def _check_body(body: Any, where: str, check, depth: int = 0) -> None:
    if depth > 32:
        return
    if isinstance(body, str):
        check(body, where)
    elif isinstance(body, Mapping):
        for key, value in body.items():
            _check_body(value, f"{where}.{key}", check, depth + 1)
    elif isinstance(body, list):
        for i, value in enumerate(body):
            _check_body(value, f"{where}[{i}]", check, depth + 1)


def _check_url(url: Any, where: str, error) -> None:
    if not isinstance(url, str) or not url:
        error(where, "Expected an http or https URL.")
        return
    try:
        parts = urlsplit(url)
    except ValueError:
        error(where, "Expected an http or https URL.")
        return
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        error(where, "Expected an http or https URL.")


def _check_headers(headers: Any, where: str, error) -> None:
    if headers is None:
        return
    if not isinstance(headers, Mapping):
        error(where, "Expected an object of header name → text.")
        return
    for name, value in headers.items():
        sealed = isinstance(value, Mapping) and set(value) == {"$secret"} and isinstance(value["$secret"], str)
        if not isinstance(name, str) or not HEADER_NAME_RE.fullmatch(name):
            error(where, f"{name!r} is not a header name.")
        elif not isinstance(value, str) and not sealed:
            error(f"{where}.{name}", "Expected text.")  # never the value: header values are secrets


def _check_timeout(timeout: Any, where: str, error) -> None:
    if timeout is None:
        return
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= MAX_TIMEOUT_MS:
        error(where, f"Expected a number of milliseconds, more than 0 and at most {MAX_TIMEOUT_MS}.")


def schema_problems(schema: Any) -> list[str]:
    """Why `schema` is not a valid JSON Schema of type object (for a tool's arguments); empty when it is."""
    if not isinstance(schema, Mapping):
        return ["parameters is a JSON Schema object."]
    plain = json_value(schema)
    try:
        validator_for(plain).check_schema(plain)
    except SchemaError as exc:
        at = "/".join(str(part) for part in exc.absolute_path)
        return [f"Not a valid JSON Schema{f' at {at}' if at else ''}: {_short(exc.message)}"]
    if plain.get("type") != "object":
        return ['The arguments schema has "type": "object".']
    return []


@functools.lru_cache(maxsize=256)
def _validator(schema_json: str):
    schema = json.loads(schema_json)
    cls = validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def argument_fault(parameters: Mapping | None, args: Any) -> str | None:
    """Why a call's `args` do not match the tool's `parameters` (None: any object), as `: <reason>` or
    ` at <path>: <reason>`; None when they match. Raises ValueError when `parameters` is not a valid schema."""
    if not isinstance(args, Mapping):
        return f": expected a JSON object, not {type(args).__name__}"
    if parameters is None:
        return None
    try:
        validator = _validator(json.dumps(json_value(parameters), sort_keys=True))
    except (SchemaError, TypeError) as exc:
        raise ValueError("not a valid JSON Schema") from exc
    fault = best_match(validator.iter_errors(json_value(args)))
    if fault is None:
        return None
    path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in fault.absolute_path).lstrip(".")
    return f"{f' at {path}' if path else ''}: {_short(fault.message, 300)}"


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def http_tool_definitions(tools: Sequence[Mapping]) -> list[ToolDefinition]:
    """The project's HTTP tools as the model sees them: name = id, source = id."""
    definitions = []
    for tool in tools:
        if not isinstance(tool, Mapping) or tool_kind(tool) != "http":
            continue
        tool_id = tool.get("id")
        if not isinstance(tool_id, str) or not TOOL_NAME_RE.fullmatch(tool_id):
            continue
        parameters = tool.get("parameters")
        definitions.append(ToolDefinition(
            name=tool_id, description=str(tool.get("description") or ""),
            parameters=json_value(parameters) if isinstance(parameters, Mapping) else dict(EMPTY_PARAMETERS),
            source=tool_id))
    return definitions


def mcp_tool_name(prefix: str, name: str) -> str:
    """The name the model calls an MCP server's tool by: `<prefix>__<name>`, every character outside
    `[A-Za-z0-9_-]` replaced by `_`, cut to 64 characters."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", f"{prefix}__{name}")[:64]
