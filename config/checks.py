"""The development SECRET_KEY: refused when the server starts (config/asgi.py) and flagged by `check --deploy`.

Settings themselves load on it, so that management commands and the test suite need no configuration; what must
not happen is a server answering requests with sessions and CSRF tokens signed by a key published in the source.
"""
from django.conf import settings
from django.core.checks import Error, Tags, register
from django.core.exceptions import ImproperlyConfigured

DEVELOPMENT_KEY_MESSAGE = (
    "SECRET_KEY is not set, so the published development key would sign sessions and CSRF tokens. Set SECRET_KEY "
    "(e.g. the output of `python -c 'import secrets; print(secrets.token_urlsafe(50))'`), or set "
    "CONDUET_DEVELOPMENT=true on a development machine."
)


def on_development_key() -> bool:
    return settings.SECRET_KEY == settings.DEVELOPMENT_SECRET_KEY


def server_start_refusal() -> None:
    """Raises ImproperlyConfigured when a server would serve on the development key outside development."""
    if on_development_key() and not (settings.DEBUG or settings.CONDUET_DEVELOPMENT):
        raise ImproperlyConfigured(DEVELOPMENT_KEY_MESSAGE)


@register(Tags.security, deploy=True)
def check_development_secret_key(app_configs, **kwargs):
    """Django's own security.W009 does not flag the development key (it is long and varied enough)."""
    if on_development_key():
        return [Error("SECRET_KEY is the published development key.", hint=DEVELOPMENT_KEY_MESSAGE,
                      id="conduet.E001")]
    return []


# Django's deploy checks of the security, CSRF and X-Frame-Options middleware look for their exact dotted paths in
# MIDDLEWARE; ours are subclasses (config/middleware.py), so Django would skip HSTS, the SSL redirect or the CSRF
# cookie and instead warn that the middleware is missing. These run Django's own checks on MIDDLEWARE with each of
# our classes named by the Django class it extends; the false "missing" warnings are silenced in settings.
def _standard_middleware() -> list[str]:
    from django.utils.module_loading import import_string

    named = []
    for path in settings.MIDDLEWARE:
        named.append(path)
        for base in import_string(path).__mro__[1:]:
            if base.__module__.startswith("django."):
                named.append(f"{base.__module__}.{base.__qualname__}")
                break
    return named


@register(Tags.security, deploy=True)
def check_middleware_security(app_configs, **kwargs):
    from django.core.checks.security import base, csrf
    from django.test.utils import override_settings

    checks = (base.check_sts, base.check_sts_include_subdomains, base.check_sts_preload,
              base.check_content_type_nosniff, base.check_ssl_redirect, base.check_referrer_policy,
              base.check_cross_origin_opener_policy, base.check_xframe_deny, csrf.check_csrf_cookie_secure)
    with override_settings(MIDDLEWARE=_standard_middleware()):
        return [message for check in checks for message in check(app_configs)]
