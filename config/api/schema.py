"""Shared pieces of the OpenAPI schema: the error body and the trace list."""
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, inline_serializer
from rest_framework import serializers

# The query parameters of every keyset-paginated list (config/api/pagination.py).
PAGE_PARAMS = [OpenApiParameter("limit", int, description="1–100, default 20"),
               OpenApiParameter("next", str, description="The cursor of the previous page")]

ERROR = inline_serializer("Error", {
    "error": serializers.CharField(help_text="human readable"),
    "code": serializers.CharField(help_text="BAD_REQUEST, UNAUTHORIZED, FORBIDDEN, NOT_FOUND, …"),
    "details": serializers.DictField(child=serializers.ListField(child=serializers.CharField()), required=False),
})

_DESCRIPTIONS = {
    400: "BAD_REQUEST: invalid body, userId, action or malformed JSON (details name the fields)",
    401: "UNAUTHORIZED: missing, malformed, unknown or revoked key",
    403: "FORBIDDEN: the key's kind or scope may not do this",
    404: "NOT_FOUND: unknown resource, version, or one of another project",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT: another turn for this user is running (after a 10 s wait)",
    413: "PAYLOAD_TOO_LARGE: body over 1 MiB",
    415: "UNSUPPORTED_MEDIA_TYPE: send application/json",
    429: "RATE_LIMITED: see Retry-After and X-RateLimit-*",
    500: "INTERNAL: a server fault (never a traceback)",
}


def error_responses(*statuses: int) -> dict:
    """The documented error responses of an operation: the given statuses, and always 500."""
    return {status: OpenApiResponse(ERROR, description=_DESCRIPTIONS[status]) for status in (*statuses, 500)}


TRACE_LIST = inline_serializer("Trace", {
    "type": serializers.CharField(help_text="text, choice, visual, knowledge, data_frame, handoff, end, …"),
    "payload": serializers.DictField(),
}, many=True)


class BearerKeyScheme(OpenApiAuthenticationExtension):
    """Documents `Authorization: Bearer cdt_…` (project key) or `cdt_acc_…` (developer token)."""

    target_class = "agents.authentication.BearerKeyAuthentication"
    name = "BearerKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer",
                "description": "A project key `cdt_…` or a developer token `cdt_acc_…` (with `X-Project-Id`)."}


# Request bodies whose unknown keys are refused (a 400), so the schema says they are closed.
CLOSED_REQUEST_BODIES = ("StateInputRequest", "ConversationCreateRequest", "MessageCreateRequest")


def close_request_bodies(result, generator, request, public):
    """drf-spectacular post-processing hook: `additionalProperties: false` on CLOSED_REQUEST_BODIES."""
    schemas = result.get("components", {}).get("schemas", {})
    for name in CLOSED_REQUEST_BODIES:
        if name in schemas:
            schemas[name]["additionalProperties"] = False
    return result
