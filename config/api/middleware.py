"""Every response under /api/ and /tenants/: the X-RateLimit-* headers, the 1 MiB body limit (chunked bodies
included), and JSON for errors raised outside DRF (async views, Django's own 404/500)."""
from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings

from config.api.errors import ErrorCode, RateLimited, describe_exception, error_response
from config.api.ratelimit import anonymous_rate_limit_hit
from config.redis import sync_call

API_PREFIXES = ("/api/", "/tenants/")


def is_api_path(path: str) -> bool:
    return path.startswith(API_PREFIXES)


def _body_size(request) -> int | None:
    """The size of a body sent without Content-Length (`Transfer-Encoding: chunked`): the ASGI handler has already
    spooled it to a file, which we measure without reading it into memory."""
    stream = getattr(request, "_stream", None)
    if stream is None or not hasattr(stream, "seek"):
        return None
    position = stream.tell()
    stream.seek(0, 2)
    size = stream.tell()
    stream.seek(position)
    return size


class ApiResponseMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self.__acall__(request)
        too_big = self._check_body(request)
        response = too_big if too_big is not None else self.get_response(request)
        if is_api_path(request.path) and getattr(request, "conduet_rate_usage", None) is None:
            response = sync_call(self._count_anonymous, request, response)
        return self._headers(request, response)

    async def __acall__(self, request):
        too_big = self._check_body(request)
        response = too_big if too_big is not None else await self.get_response(request)
        if is_api_path(request.path) and getattr(request, "conduet_rate_usage", None) is None:
            response = await self._count_anonymous(request, response)
        return self._headers(request, response)

    @staticmethod
    def _check_body(request):
        """413 over the limit. A chunked body has no Content-Length, which DRF and Django read as 'no body' (a PUT
        of the state would then reset it): give it the length the body really has."""
        if not is_api_path(request.path) or request.content_type == "multipart/form-data":
            return None
        length = request.META.get("CONTENT_LENGTH")
        if not length and "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
            size = _body_size(request)
            if size is not None:
                request.META["CONTENT_LENGTH"] = length = str(size)
        try:
            length = int(length or 0)
        except ValueError:
            length = 0
        if length > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            return error_response("Request body is larger than 1 MiB.", ErrorCode.PAYLOAD_TOO_LARGE)
        return None

    @staticmethod
    async def _count_anonymous(request, response):
        try:
            await anonymous_rate_limit_hit(request)
        except RateLimited as exc:  # the request failed or was anonymous anyway: say it is too many
            response = error_response(exc.message, exc.code, headers=exc.headers)
        return response

    @staticmethod
    def _headers(request, response):
        usage = getattr(request, "conduet_rate_usage", None)
        if usage is not None and is_api_path(request.path):
            for name, value in usage.headers().items():
                response[name] = value
        return response

    def process_exception(self, request, exception):
        if not is_api_path(request.path):
            return None
        message, code, details, headers = describe_exception(exception)
        return error_response(message, code, details=details, headers=headers)
