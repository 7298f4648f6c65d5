"""Every response under /api/ and /tenants/: the X-RateLimit-* headers, the 1 MiB JSON body limit, and JSON for
errors raised outside DRF (async SSE views, Django's own 404/500)."""
from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings

from config.api.errors import ErrorCode, describe_exception, error_response

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
        if too_big is not None:
            return too_big
        return self._finish(request, self.get_response(request))

    async def __acall__(self, request):
        too_big = self._too_big(request)
        if too_big is not None:
            return too_big
        return self._finish(request, await self.get_response(request))

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
