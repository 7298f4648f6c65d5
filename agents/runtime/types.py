"""What goes into a turn (an `Action`) and what comes out (traces), and the error of a bad definition."""
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class TraceType(StrEnum):
    TEXT = "text"
    CHOICE = "choice"
    VISUAL = "visual"
    KNOWLEDGE = "knowledge"
    DATA_FRAME = "data_frame"
    HANDOFF = "handoff"
    END = "end"
    COMPLETION_START = "completion-start"
    TOOL_CALL = "tool-call"
    DEBUG = "debug"
    ERROR = "error"


@dataclass(frozen=True)
class Action:
    """The user's input: `launch` (payload None), `text` (str), `button` ({label, value}), `media` ({url,
    mimeType}). The API layer has validated the payload's shape."""

    type: str
    payload: Any = None


def trace(kind: TraceType, **payload) -> dict:
    return {"type": str(kind), "payload": payload}


class DocumentError(ValueError):
    """A project document that cannot run; `details` maps a location (`workflows[0].steps[2]`) to messages."""

    def __init__(self, message: str, details: dict[str, list[str]] | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or {}

    @classmethod
    def listing(cls, details: dict[str, list[str]]) -> "DocumentError":
        """The error of a document with these problems (location → messages), its message naming the first."""
        where, messages = next(iter(details.items()))
        return cls(f"Invalid project document: {where}: {messages[0]}", details)
