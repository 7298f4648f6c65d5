"""Tool secrets at rest: the header values of a project's tools (`tools[i].http.headers`, `tools[i].mcp.headers`) are
stored encrypted, shown redacted, and decrypted only to build the runtime spec.

Stored form of one value: `{"$secret": "<Fernet token>"}`. Every header value is treated as a secret (an
`Authorization` value and a `Content-Type` alike): what the engine cannot tell apart it must not show.

Keys: `CONDUET_SECRET_KEYS`, a list of Fernet keys (`Fernet.generate_key()`); the first encrypts, all decrypt. Unset,
one key is derived from `SECRET_KEY` (HKDF-SHA256, info `conduet tool secrets v1`), so a first run needs no
configuration; that key is also tried, last, for decryption when `CONDUET_SECRET_KEYS` is set, so moving from the
derived key to explicit keys loses nothing. Rotation needs `CONDUET_SECRET_KEYS`: put the new key first and keep the
old ones after it until every document has been saved again (each save seals new values with the first key; a kept
value keeps its token). A token that no configured key opens is reported, at spec build time, naming the tool and
the header, as a `DocumentError` (enter the value again).

The three document functions take a project document (or any dict with its `tools` part: `Project.document`, a
version snapshot, `Project.as_document()`) and return a copy; they never change their argument.
"""
import base64
import copy
import functools
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from agents.runtime.types import DocumentError

REDACTED = "••••••••"  # what every output shows for a secret; sent back, it means "unchanged"
SEALED_KEY = "$secret"
HEADER_SECTIONS = ("http", "mcp")  # the parts of a tool that carry `headers`
_DERIVATION_INFO = b"conduet tool secrets v1"


class SecretError(ValueError):
    """A sealed value that no configured key opens."""


# --- keys ----------------------------------------------------------------------------------------------------------

def derived_key(secret_key: str) -> bytes:
    """The Fernet key derived from `SECRET_KEY` when `CONDUET_SECRET_KEYS` is unset."""
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_DERIVATION_INFO).derive(secret_key.encode())
    return base64.urlsafe_b64encode(raw)


@functools.lru_cache(maxsize=8)
def _multi_fernet(keys: tuple[str, ...], secret_key: str) -> MultiFernet:
    fernets = []
    for position, key in enumerate(keys):
        try:
            fernets.append(Fernet(key.strip()))
        except (ValueError, TypeError):
            raise ImproperlyConfigured(f"CONDUET_SECRET_KEYS[{position}] is not a Fernet key (32 url-safe base64 "
                                       "bytes, as Fernet.generate_key() makes)") from None
    fernets.append(Fernet(derived_key(secret_key)))  # first when no keys are set, else a decrypt-only fallback
    return MultiFernet(fernets)


def _fernet() -> MultiFernet:
    return _multi_fernet(tuple(key for key in settings.CONDUET_SECRET_KEYS if key.strip()), settings.SECRET_KEY)


# --- one value -----------------------------------------------------------------------------------------------------

def is_sealed(value: Any) -> bool:
    return isinstance(value, Mapping) and set(value) == {SEALED_KEY} and isinstance(value[SEALED_KEY], str)


def secret_seal(value: str) -> dict:
    return {SEALED_KEY: _fernet().encrypt(value.encode()).decode("ascii")}


def secret_open(value: Mapping) -> str:
    try:
        return _fernet().decrypt(value[SEALED_KEY].encode("ascii")).decode()
    except (InvalidToken, UnicodeError, ValueError):
        raise SecretError("no configured key opens this value") from None


# --- documents -----------------------------------------------------------------------------------------------------

def _headers(document: Mapping) -> Iterator[tuple[int, Mapping, str, dict]]:
    """(tool position, tool, section, its headers dict) for each header object of each tool of a document."""
    tools = document.get("tools") if isinstance(document, Mapping) else None
    if not isinstance(tools, list):
        return
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            continue
        for section in HEADER_SECTIONS:
            part = tool.get(section)
            if isinstance(part, dict) and isinstance(part.get("headers"), dict):
                yield i, tool, section, part["headers"]


def _each_value(document: Mapping, change: Callable[[int, Mapping, str, str, Any], Any]) -> dict:
    """A deep copy of `document` whose header values are `change(i, tool, section, name, value)`."""
    result = copy.deepcopy(dict(document))
    for i, tool, section, headers in _headers(result):
        for name, value in list(headers.items()):
            headers[name] = change(i, tool, section, name, value)
    return result


def _previous_value(previous: Mapping | None, tool_id: Any, section: str, name: str) -> Any:
    """The stored value of header `name` (matched exactly, else case-insensitively) of the tool `tool_id`."""
    if previous is None or not isinstance(tool_id, str):
        return None
    for _i, tool, tool_section, headers in _headers(previous):
        if tool.get("id") != tool_id or tool_section != section:
            continue
        if name in headers:
            return headers[name]
        for other, value in headers.items():
            if isinstance(other, str) and other.casefold() == name.casefold():
                return value
    return None


def document_seal(document: Mapping, previous: Mapping | None = None) -> dict:
    """A copy of `document` with every plain-text header value of every tool encrypted. A value equal to `REDACTED`
    keeps what `previous` (the stored document it replaces) holds for the same tool id, section and header name;
    with nothing to keep it is refused: `DocumentError` with details keyed `tools[i].http.headers.<Name>`. A value
    already sealed is kept if a configured key opens it. Other values are left for the document's validation."""
    errors: dict[str, list[str]] = {}

    def seal(i: int, tool: Mapping, section: str, name: str, value: Any) -> Any:
        where = f"tools[{i}].{section}.headers.{name}"
        if value == REDACTED:
            kept = _previous_value(previous, tool.get("id"), section, name)
            if is_sealed(kept):
                return dict(kept)
            if isinstance(kept, str) and kept != REDACTED:  # stored before secrets were sealed
                return secret_seal(kept)
            errors.setdefault(where, []).append("This value is hidden and there is no stored value to keep: enter "
                                                "the value.")
            return value
        if isinstance(value, str):
            return secret_seal(value)
        if is_sealed(value):
            try:
                secret_open(value)
            except SecretError:
                errors.setdefault(where, []).append("This encrypted value cannot be decrypted with the configured "
                                                    "keys: enter the value.")
            return dict(value)
        return value

    sealed = _each_value(document, seal)
    if errors:
        raise DocumentError.listing(errors)
    return sealed


def document_redact(document: Mapping) -> dict:
    """A copy of `document` with every header value (sealed or not) replaced by `REDACTED`: what every output —
    the admin, any API, logs — shows."""
    return _each_value(document, lambda i, tool, section, name, value:
                       REDACTED if isinstance(value, str) or is_sealed(value) else value)


def document_open(document: Mapping) -> dict:
    """A copy of `document` with its sealed values decrypted, for building the runtime spec only. A value no
    configured key opens: `DocumentError` naming each (`tools[i].http.headers.<Name>`) and the tool's id."""
    errors: dict[str, list[str]] = {}

    def open_(i: int, tool: Mapping, section: str, name: str, value: Any) -> Any:
        if not is_sealed(value):
            return value
        try:
            return secret_open(value)
        except SecretError:
            errors.setdefault(f"tools[{i}].{section}.headers.{name}", []).append(
                f"The secret header {name!r} of tool {tool.get('id')!r} cannot be decrypted with the configured keys "
                "(CONDUET_SECRET_KEYS was changed?): enter its value again.")
            return None

    opened = _each_value(document, open_)
    if errors:
        raise DocumentError.listing(errors)
    return opened


def document_has_plaintext(document: Mapping) -> bool:
    """Whether any header value is still stored in plain text (the data migration's test)."""
    return any(isinstance(value, str) for _i, _tool, _section, headers in _headers(document)
               for value in headers.values())
