"""The middleware stack, shaped for the async API (DESIGN.md "Scale").

Django's own middleware are sync (`MiddlewareMixin`): in an async stack each one costs two hops to asgiref's
thread per request, about a dozen in all. Sessions, CSRF, authentication, messages, the common middleware and
X-Frame-Options serve the admin's browser pages only — the API authenticates by Bearer key and its views are
CSRF-exempt — so `AdminOnly` runs them for `/admin` and passes every other request straight on. The security
middleware (HTTPS redirect, HSTS and other headers) applies to everything; its work is pure computation, so it
runs inline instead of in a thread."""
from django.contrib.auth.middleware import AuthenticationMiddleware as _Authentication
from django.contrib.messages.middleware import MessageMiddleware as _Messages
from django.contrib.sessions.middleware import SessionMiddleware as _Sessions
from django.middleware.clickjacking import XFrameOptionsMiddleware as _XFrameOptions
from django.middleware.common import CommonMiddleware as _Common
from django.middleware.csrf import CsrfViewMiddleware as _Csrf
from django.middleware.security import SecurityMiddleware as _Security

ADMIN_PREFIX = "/admin"


class AdminOnly:
    """Mixed into a Django middleware: it runs for the admin's pages, and every other request passes it by."""

    def __call__(self, request):
        if request.path.startswith(ADMIN_PREFIX):
            return super().__call__(request)
        return self.get_response(request)


class SessionMiddleware(AdminOnly, _Sessions):
    pass


class CommonMiddleware(AdminOnly, _Common):
    pass


class CsrfViewMiddleware(AdminOnly, _Csrf):
    def __init__(self, get_response):
        super().__init__(get_response)
        if self.async_mode:  # Django calls a sync process_view through a thread for every request: be async
            self.process_view = self._process_view_async

    async def _process_view_async(self, request, view_func, view_args, view_kwargs):
        if request.path.startswith(ADMIN_PREFIX):
            return super().process_view(request, view_func, view_args, view_kwargs)  # cookies only, no I/O
        return None


class AuthenticationMiddleware(AdminOnly, _Authentication):
    pass


class MessageMiddleware(AdminOnly, _Messages):
    pass


class XFrameOptionsMiddleware(AdminOnly, _XFrameOptions):
    pass


class SecurityMiddleware(_Security):
    async def __acall__(self, request):
        response = self.process_request(request)
        if response is None:
            response = await self.get_response(request)
        return self.process_response(request, response)
