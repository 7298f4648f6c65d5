"""Async API endpoints (the turn path: DESIGN.md "Scale"), with what DRF gives its views: Bearer authentication, the
per-key rate limit, JSON bodies with the same checks, and errors in the contract's shape through the same
`describe_exception`. DRF's views are sync, and a sync view on daphne runs in asgiref's one thread.

    @api_endpoint(GET=state_get, PUT=state_put)      # handlers: async (request, credential, **url kwargs)

Each handler may say `per_key_rate_limit=False` (the interact endpoints count per end user instead)."""
from collections.abc import Awaitable, Callable

from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework.exceptions import NotAuthenticated, UnsupportedMediaType

from agents.authentication import Credential, credential_from_header_async
from config.api.errors import ErrorCode, describe_exception, error_response
from config.api.parsers import parse_json_body
from config.api.ratelimit import key_rate_limit_hit

Handler = Callable[..., Awaitable[HttpResponse]]


def json_body(request):
    """The request's JSON body (`{}` when empty); 415 for another content type, 400 when malformed."""
    if request.body and request.content_type != "application/json":
        raise UnsupportedMediaType(request.content_type or "(none)")
    return parse_json_body(request.body)


def json_response(data, status: int = 200) -> JsonResponse:
    return JsonResponse(data, status=status, safe=False)


def per_user_rate_limit(handler: Handler) -> Handler:
    """Marks a handler that counts its own rate limit (per end user) instead of per key."""
    handler.per_key_rate_limit = False
    return handler


async def _dispatch(handlers: dict[str, Handler], request, **kwargs) -> HttpResponse:
    handler = handlers.get(request.method)
    if handler is None:
        return error_response(f'Method "{request.method}" not allowed.', ErrorCode.METHOD_NOT_ALLOWED,
                              headers={"Allow": ", ".join(handlers)})
    try:
        credential: Credential | None = await credential_from_header_async(request.headers.get("Authorization"))
        if credential is None:
            raise NotAuthenticated("Authentication credentials were not provided.")
        if getattr(handler, "per_key_rate_limit", True):
            await key_rate_limit_hit(request, key_id=credential.key_id)
        return await handler(request, credential, **kwargs)
    except Exception as exc:
        message, code, details, headers = describe_exception(exc)
        return error_response(message, code, details=details, headers=headers)


def api_endpoint(*, doc=None, **handlers: Handler):
    """An async view for one path, dispatching on the method. `doc` is a DRF APIView class that only documents
    the path for drf-spectacular (its methods are never called)."""

    async def view(request, **kwargs):
        return await _dispatch(handlers, request, **kwargs)

    view = csrf_exempt(view)  # authenticated by Bearer key, never by a session cookie
    if doc is not None:
        view.cls = doc  # lets drf-spectacular document the async view
        view.initkwargs = {}
    return view

