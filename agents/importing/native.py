"""A Conduet-native project document (as `GET /projects/{pid}` returns it) → the document of a new project: the
same parts, a new id. Header values that were redacted in the export (`agents/secrets.py` REDACTED) cannot be
imported as values: each such header is left out and named in the warnings, to be entered again."""
import copy

from agents.importing.common import ImportRefused
from agents.models import DOCUMENT_PARTS
from agents.secrets import HEADER_SECTIONS, REDACTED

METADATA = ("id", "slug", "createdAt", "updatedAt", "warnings")
FIELDS = ("name", "description", "framework", "language")
MAX_NAME = 200
MAX_LANGUAGE = 16


def is_native(data) -> bool:
    return isinstance(data, dict) and "diagrams" not in data and (
        isinstance(data.get("workflows"), list) or any(part in data for part in DOCUMENT_PARTS))


def native_convert(data: dict) -> tuple[dict, list[str]]:
    warnings: list[str] = []
    errors: dict[str, list[str]] = {}
    name = data.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
        errors["name"] = [f"The document needs a name: text of 1 to {MAX_NAME} characters."]
    description = data.get("description")
    if description is not None and not isinstance(description, str):
        errors["description"] = ["Expected text or null."]
    language = data.get("language", "en")
    if not isinstance(language, str) or not 1 <= len(language) <= MAX_LANGUAGE:
        errors["language"] = [f"Expected a language code of at most {MAX_LANGUAGE} characters."]
    slug = data.get("slug")
    if slug is not None and not isinstance(slug, str):
        errors["slug"] = ["Expected text."]
    if errors:
        where, messages = next(iter(errors.items()))
        raise ImportRefused(f"Invalid project document: {where}: {messages[0]}", errors)
    unknown = sorted(set(data) - set(DOCUMENT_PARTS) - set(FIELDS) - set(METADATA))
    if unknown:
        warnings.append(f"Unknown fields ignored: {', '.join(unknown[:20])}.")
    document = {key: copy.deepcopy(data[key]) for key in (*FIELDS, *DOCUMENT_PARTS, "slug") if key in data}
    document["language"] = language
    _drop_redacted(document, warnings)
    return document, warnings


def _drop_redacted(document: dict, warnings: list[str]) -> None:
    tools = document.get("tools")
    for i, tool in enumerate(tools if isinstance(tools, list) else []):
        if not isinstance(tool, dict):
            continue
        for section in HEADER_SECTIONS:
            headers = tool[section].get("headers") if isinstance(tool.get(section), dict) else None
            if not isinstance(headers, dict):
                continue
            for header, value in list(headers.items()):
                if value == REDACTED:
                    del headers[header]
                    warnings.append(f"tools[{i}].{section}.headers.{header}: the export hides this secret, so the "
                                    f"header of tool {tool.get('id')!r} is left out; enter its value again.")
