"""The one error shape of the API, `{"error", "code", "details"?}`, for domain errors and DRF's and Django's own."""
import logging
from enum import StrEnum

from django.core.exceptions import PermissionDenied, RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf
from rest_framework.response import Response

log = logging.getLogger("conduet.api")


class ErrorCode(StrEnum):
    BAD_REQUEST = "BAD_REQUEST"
    UNAUTHORIZED = "UNAUTHORIZED"
    FORBIDDEN = "FORBIDDEN"
    NOT_FOUND = "NOT_FOUND"
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    CONFLICT = "CONFLICT"
    PRECONDITION_FAILED = "PRECONDITION_FAILED"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE"
    RATE_LIMITED = "RATE_LIMITED"
    INTERNAL = "INTERNAL"
    UPSTREAM_ERROR = "UPSTREAM_ERROR"


STATUS = {
    ErrorCode.BAD_REQUEST: 400,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.METHOD_NOT_ALLOWED: 405,
    ErrorCode.CONFLICT: 409,
    ErrorCode.PRECONDITION_FAILED: 412,
    ErrorCode.PAYLOAD_TOO_LARGE: 413,
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: 415,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.INTERNAL: 500,
    ErrorCode.UPSTREAM_ERROR: 502,
}


class ApiError(Exception):
    """A domain error a client can cause (or an upstream fault): it carries its code, hence its status."""

    code: ErrorCode = ErrorCode.BAD_REQUEST

    def __init__(self, message: str, *, code: ErrorCode | None = None, details: dict | None = None,
                 headers: dict | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details
        self.headers = headers or {}

    @property
    def status(self) -> int:
        return STATUS[self.code]


class NotFound(ApiError):
    code = ErrorCode.NOT_FOUND


class Conflict(ApiError):
    code = ErrorCode.CONFLICT


class Forbidden(ApiError):
    code = ErrorCode.FORBIDDEN


class RateLimited(ApiError):
    code = ErrorCode.RATE_LIMITED


def error_body(message: str, code: ErrorCode, details: dict | None = None) -> dict:
    body = {"error": message, "code": str(code)}
    if details:
        body["details"] = details
    return body


def error_response(message: str, code: ErrorCode, *, details: dict | None = None, headers=None) -> JsonResponse:
    response = JsonResponse(error_body(message, code, details), status=STATUS[code])
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _messages(detail, prefix: str = "") -> list[str]:
    """A field's messages as plain strings: a list's or a nested serializer's errors (`{0: [...]}` for the first
    item of a ListField) flattened with where they are (`0: Not a valid string.`), never a Python repr."""
    if isinstance(detail, dict):
        return [m for key, value in detail.items() for m in _messages(value, f"{prefix}{key}: ")]
    if isinstance(detail, list):
        return [m for value in detail for m in _messages(value, prefix)]
    return [f"{prefix}{detail}"]


def _validation_details(detail) -> dict:
    if isinstance(detail, dict):
        return {field: _messages(msgs) for field, msgs in detail.items()}
    return {"non_field_errors": _messages(detail)}


def describe_exception(exc: Exception) -> tuple[str, ErrorCode, dict | None, dict]:
    """(message, code, details, headers) for any exception; unknown ones are INTERNAL and logged."""
    if isinstance(exc, ApiError):
        return exc.message, exc.code, exc.details, exc.headers
    if isinstance(exc, drf.ValidationError):
        details = _validation_details(exc.detail)
        first_field, first_msgs = next(iter(details.items()))
        where = "" if first_field == "non_field_errors" else f"{first_field}: "
        return f"Invalid request: {where}{first_msgs[0]}", ErrorCode.BAD_REQUEST, details, {}
    if isinstance(exc, drf.ParseError):
        kind = "multipart" if str(exc.detail).startswith("Multipart form parse error") else "JSON"
        return f"Malformed {kind} body: {exc.detail}", ErrorCode.BAD_REQUEST, None, {}
    if isinstance(exc, drf.AuthenticationFailed | drf.NotAuthenticated):
        return str(exc.detail), ErrorCode.UNAUTHORIZED, None, {"WWW-Authenticate": 'Bearer realm="api"'}
    if isinstance(exc, drf.PermissionDenied | PermissionDenied):
        return "This key may not do that.", ErrorCode.FORBIDDEN, None, {}
    if isinstance(exc, drf.NotFound | Http404):
        return "Not found.", ErrorCode.NOT_FOUND, None, {}
    if isinstance(exc, drf.MethodNotAllowed):
        return str(exc.detail), ErrorCode.METHOD_NOT_ALLOWED, None, {}
    if isinstance(exc, drf.UnsupportedMediaType):
        return f"{exc.detail} Send JSON (Content-Type: application/json).", ErrorCode.UNSUPPORTED_MEDIA_TYPE, None, {}
    if isinstance(exc, RequestDataTooBig):
        return "Request body is larger than 1 MiB.", ErrorCode.PAYLOAD_TOO_LARGE, None, {}
    if isinstance(exc, TooManyFieldsSent | TooManyFilesSent):  # Django's multipart parser (1,000 fields, 100 files)
        return "Too many parts in the multipart body.", ErrorCode.BAD_REQUEST, None, {}
    if isinstance(exc, drf.Throttled):
        return "Rate limit reached.", ErrorCode.RATE_LIMITED, None, {"Retry-After": str(exc.wait or 1)}
    if isinstance(exc, drf.APIException):
        return str(exc.detail), ErrorCode.BAD_REQUEST, None, {}
    log.exception("Unhandled error in an API request", exc_info=exc)
    return "Internal server error.", ErrorCode.INTERNAL, None, {}


def exception_handler(exc: Exception, context: dict) -> Response:
    """DRF's EXCEPTION_HANDLER: every exception of a DRF view becomes the contract's JSON (never a traceback)."""
    message, code, details, headers = describe_exception(exc)
    return Response(error_body(message, code, details), status=STATUS[code], headers=headers)
