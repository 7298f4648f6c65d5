"""Django's 404/500 handlers: JSON in the contract's shape under /api/ and /tenants/, Django's pages elsewhere."""
from django.views import defaults

from config.api.errors import ErrorCode, error_response
from config.api.middleware import is_api_path


def not_found(request, exception=None):
    if is_api_path(request.path):
        return error_response(f"No endpoint at {request.path}.", ErrorCode.NOT_FOUND)
    return defaults.page_not_found(request, exception)


def server_error(request):
    if is_api_path(request.path):
        return error_response("Internal server error.", ErrorCode.INTERNAL)
    return defaults.server_error(request)
