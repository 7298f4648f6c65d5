"""Input validation of the v1 Conversations API (API.md §2), shared by the JSON and the SSE endpoints."""
import re

from django.core.validators import URLValidator
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from agents.runtime import VARIABLE_NAME_RE, Action, TraceType
from config.api.errors import ApiError

USER_ID_RE = re.compile(r"[A-Za-z0-9_.:@-]{1,128}")
ACTION_TYPES = ("launch", "text", "button", "media")
MAX_TEXT = 4000
_url = URLValidator(schemes=["http", "https"])


TURN_ID_RE = re.compile(r"turn_[0-9a-f]{20}")
MAX_TURN = 2**31 - 1  # the turn counter's column is a 32-bit integer


def validate_turn_id(turn_id: str | None) -> str:
    if not turn_id or not TURN_ID_RE.fullmatch(turn_id):
        raise ApiError("turn must be a turn id (turn_ followed by 20 hex digits).",
                       details={"turn": ["Invalid turn id."]})
    return turn_id


def last_event_seq(last_event_id: str | None, turn_id: str) -> int:
    """The sequence number in `Last-Event-ID` (`<turnId>:<seq>`), 0 when absent: replay from the start."""
    if not last_event_id:
        return 0
    event_turn, _, seq = last_event_id.strip().partition(":")
    if event_turn != turn_id or not seq.isdigit() or len(seq) > 9:
        raise ApiError("Last-Event-ID must be an event id of this turn (<turnId>:<seq>).",
                       details={"Last-Event-ID": ["Not an event id of this turn."]})
    return int(seq)


def validate_user_id(user_id: str) -> str:
    if not USER_ID_RE.fullmatch(user_id):
        raise ApiError(
            "userId must be 1–128 characters of letters, digits and _ . : @ -",
            details={"userId": ["Invalid user id."]},
        )
    return user_id


class StrictCharField(serializers.CharField):
    """Text only: DRF's CharField would turn a number or a boolean into text."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


def _action_schema(kind: str, payload: dict, required: bool = True) -> dict:
    return {"type": "object", "required": ["type", "payload"] if required else ["type"],
            "properties": {"type": {"type": "string", "enum": [kind]}, "payload": payload}}


@extend_schema_field({"oneOf": [
    _action_schema("launch", {"nullable": True, "enum": [None]}, required=False),
    _action_schema("text", {"type": "string", "minLength": 1, "maxLength": MAX_TEXT, "pattern": r"\S"}),
    _action_schema("button", {"type": "object", "required": ["label", "value"],
                              "properties": {"label": {"type": "string"}, "value": {}}}),
    _action_schema("media", {"type": "object", "required": ["url", "mimeType"],
                             "properties": {"url": {"type": "string", "format": "uri", "pattern": "^https?://"},
                                            "mimeType": {"type": "string"}}}),
], "discriminator": {"propertyName": "type"}})
class ActionField(serializers.Field):
    """`{"type", "payload"}` checked per type; becomes an engine `Action`."""

    default_error_messages = {"invalid": "Must be an object with a type and a payload."}

    def to_internal_value(self, data) -> Action:
        if not isinstance(data, dict) or "type" not in data:
            self.fail("invalid")
        kind, payload = data["type"], data.get("payload")
        if kind not in ACTION_TYPES:
            raise serializers.ValidationError(
                f"Unknown action type {kind!r}; expected one of {', '.join(ACTION_TYPES)}.")
        if kind == "launch":
            if payload is not None:
                raise serializers.ValidationError("A launch action's payload must be null.")
        elif kind == "text":
            if not isinstance(payload, str):
                raise serializers.ValidationError("A text action's payload must be a string.")
            if not payload.strip():
                raise serializers.ValidationError("A text action's payload must not be empty.")
            if len(payload) > MAX_TEXT:
                raise serializers.ValidationError(f"A text action's payload is at most {MAX_TEXT} characters.")
        elif kind == "button":
            if not isinstance(payload, dict) or not isinstance(payload.get("label"), str) or "value" not in payload:
                raise serializers.ValidationError('A button payload is {"label": string, "value": any JSON}.')
            payload = {"label": payload["label"], "value": payload["value"]}
        elif kind == "media":
            if not isinstance(payload, dict) or not all(isinstance(payload.get(k), str) for k in ("url", "mimeType")):
                raise serializers.ValidationError('A media payload is {"url": string, "mimeType": string}.')
            try:
                _url(payload["url"])
            except Exception:
                raise serializers.ValidationError("A media url must be an http(s) URL.") from None
            payload = {"url": payload["url"], "mimeType": payload["mimeType"]}
        return Action(type=kind, payload=payload)

    def to_representation(self, value: Action) -> dict:
        return {"type": value.type, "payload": value.payload}


class InteractConfigSerializer(serializers.Serializer):
    excludeTypes = serializers.ListField(child=serializers.ChoiceField(choices=[t.value for t in TraceType]),
                                         required=False, default=list)
    debug = serializers.BooleanField(required=False, default=False)


class InteractInputSerializer(serializers.Serializer):
    action = ActionField()
    versionId = StrictCharField(required=False, max_length=64)
    config = InteractConfigSerializer(required=False)


_ACTION = ActionField()


def interact_input(data: dict) -> dict:
    """`InteractInputSerializer`'s validated data. DRF deep-copies a serializer's fields each time one is made,
    which costs more than the whole check; the common body — an action, and maybe a plain versionId — is checked
    by the same `ActionField` directly, and anything else by the serializer itself."""
    version = data.get("versionId")
    plain_version = "versionId" not in data or (
        isinstance(version, str) and 0 < len(version) <= 64 and version.strip() == version)
    if "action" in data and data.keys() <= {"action", "versionId"} and plain_version:
        try:
            validated = {"action": _ACTION.run_validation(data["action"])}
        except serializers.ValidationError as exc:
            raise serializers.ValidationError({"action": exc.detail}) from None
        if "versionId" in data:
            validated["versionId"] = version
        return validated
    serializer = InteractInputSerializer(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class StackFrameSerializer(serializers.Serializer):
    workflowId = StrictCharField(max_length=200)
    stepId = StrictCharField(max_length=200)


class WaitingSerializer(StackFrameSerializer):
    kind = serializers.ChoiceField(choices=["buttons", "capture"])
    attempts = serializers.IntegerField(min_value=0, max_value=MAX_TURN, required=False, default=0)


class HistoryEntrySerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=["user", "assistant"])
    content = StrictCharField(allow_blank=True, trim_whitespace=False)


class StateInputSerializer(serializers.Serializer):
    """PUT /state. `updatedAt` is the server's and ignored; any other unknown key is an error."""

    versionId = StrictCharField(required=False, default="development", max_length=64)
    status = serializers.ChoiceField(choices=["active", "ended", "handoff"], required=False, default="active")
    turn = serializers.IntegerField(min_value=0, max_value=MAX_TURN, required=False, default=0)
    variables = serializers.DictField(required=False, default=dict,
                                      help_text="Keys are variable names: letters, digits and _, no leading digit.")
    stack = StackFrameSerializer(many=True, required=False, default=list)
    waiting = WaitingSerializer(required=False, allow_null=True, default=None)
    history = HistoryEntrySerializer(many=True, required=False, default=list)
    updatedAt = serializers.JSONField(
        required=False, write_only=True, allow_null=True,
        help_text="Ignored: the server sets it (accepted so that a GET's body can be PUT back).")

    def validate(self, attrs):
        unknown = set(self.initial_data) - set(self.fields)
        if unknown:
            raise serializers.ValidationError({key: ["Unknown state field."] for key in sorted(unknown)})
        for name in attrs.get("variables", {}):
            if not VARIABLE_NAME_RE.fullmatch(str(name)):
                raise serializers.ValidationError({"variables": [f"{name!r} is not a valid variable name."]})
        attrs.pop("updatedAt", None)
        return attrs
