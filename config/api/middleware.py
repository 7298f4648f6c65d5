"""Every response under /api/ and /tenants/: the X-RateLimit-* headers, the 1 MiB JSON body limit, and JSON for
errors raised outside DRF (async SSE views, Django's own 404/500)."""
from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings

from config.api.errors import ErrorCode, RateLimited, describe_exception, error_response
from config.api.ratelimit import anonymous_rate_limit_hit

API_PREFIXES = ("/api/", "/tenants/")


def is_api_path(path: str) -> bool:
    return path.startswith(API_PREFIXES)


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
        too_big = self._too_big(request)
        return self._finish(request, too_big if too_big is not None else self.get_response(request))

    async def __acall__(self, request):
        too_big = self._too_big(request)
        response = too_big if too_big is not None else await self.get_response(request)
        if getattr(request, "conduet_rate_usage", None) is None and is_api_path(request.path):
            return await sync_to_async(self._finish)(request, response)  # counting may query the database
        return self._finish(request, response)

    @staticmethod
    def _too_big(request):
        if not is_api_path(request.path) or request.content_type == "multipart/form-data":
            return None
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            return error_response("Request body is larger than 1 MiB.", ErrorCode.PAYLOAD_TOO_LARGE)
        return None

    @staticmethod
    def _finish(request, response):
        if not is_api_path(request.path):
            return response
        if getattr(request, "conduet_rate_usage", None) is None:
            try:
                anonymous_rate_limit_hit(request)
            except RateLimited as exc:  # the request failed or was anonymous anyway: say it is too many
                response = error_response(exc.message, exc.code, headers=exc.headers)
        for name, value in request.conduet_rate_usage.headers().items():
            response[name] = value
        return response

    def process_exception(self, request, exception):
        if not is_api_path(request.path):
            return None
        message, code, details, headers = describe_exception(exception)
        return error_response(message, code, details=details, headers=headers)
