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
