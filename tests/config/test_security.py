"""Deployment safety: no server on the published development SECRET_KEY outside development, `check --deploy` flags
it, and the HTTPS settings (HSTS, secure cookies, SSL redirect, the proxy's header) come from the environment."""
import os
import subprocess
import sys

import httpx
import pytest
from django.test import Client

from tests.live import ROOT, daphne_server, free_port

UNSET = ("SECRET_KEY", "DEBUG", "CONDUET_DEVELOPMENT", "CONDUET_REQUIRE_SECRET_KEY", "SECURE_HSTS_SECONDS",
         "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_HSTS_PRELOAD", "SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE",
         "CSRF_COOKIE_SECURE", "SECURE_PROXY_SSL_HEADER")
A_SECRET_KEY = "k3y-" + "Zq8vT2mW9xLp4Rb7Nc1Hs6Jd0Fg5Ky3Ue" * 2


def environment(**values: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name not in UNSET}
    return {**env, "DJANGO_SETTINGS_MODULE": "config.settings", "LOG_LEVEL": "WARNING", **values}


def run(args: list[str], **values: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=environment(**values), capture_output=True,
                          text=True, timeout=60)


@pytest.fixture
def clean_environ(monkeypatch):
    """tests.live.daphne_server starts from os.environ: none of the settings under test may leak in from it."""
    for name in UNSET:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.server
def test_the_server_refuses_to_start_on_the_development_key():
    process = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(free_port()), "config.asgi:application"],
        cwd=ROOT, env=environment(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        output, _ = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        pytest.fail("daphne started on the development SECRET_KEY")

    assert process.returncode != 0
    assert "ImproperlyConfigured: SECRET_KEY is not set" in output
    assert "CONDUET_DEVELOPMENT=true" in output


@pytest.mark.server
@pytest.mark.parametrize("env", [{"CONDUET_DEVELOPMENT": "true"}, {"DEBUG": "true", "CONDUET_DEVELOPMENT": "false"},
                                 {"SECRET_KEY": A_SECRET_KEY, "CONDUET_DEVELOPMENT": "false"}],
                         ids=["development", "debug", "secret-key"])
def test_the_server_starts_in_development_or_with_a_secret_key(clean_environ, env):
    with daphne_server(env=env) as url:
        assert httpx.get(f"{url}/healthz").status_code == 200


def test_check_deploy_flags_the_development_key():
    flagged = run(["manage.py", "check", "--deploy"])
    with_key = run(["manage.py", "check", "--deploy"], SECRET_KEY=A_SECRET_KEY)

    assert flagged.returncode != 0
    assert "(conduet.E001) SECRET_KEY is the published development key." in flagged.stderr
    assert "conduet.E001" not in with_key.stderr + with_key.stdout


def test_management_commands_need_no_secret_key():
    result = run(["manage.py", "check"])

    assert result.returncode == 0, result.stderr


PRINT_SETTINGS = """
import django
django.setup()
from django.conf import settings
print([getattr(settings, name) for name in ("SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS",
       "SECURE_HSTS_PRELOAD", "SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE",
       "SECURE_PROXY_SSL_HEADER")])
"""
HTTPS = {"SECURE_HSTS_SECONDS": "31536000", "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true", "SECURE_HSTS_PRELOAD": "true",
         "SECURE_SSL_REDIRECT": "true", "SESSION_COOKIE_SECURE": "true", "CSRF_COOKIE_SECURE": "true"}


def test_https_settings_are_off_by_default():
    result = run(["-c", PRINT_SETTINGS])

    assert result.stdout.strip() == "[0, False, False, False, False, False, None]", result.stderr


@pytest.mark.parametrize(("header", "expected"), [
    ("X-Forwarded-Proto", "('HTTP_X_FORWARDED_PROTO', 'https')"),
    ("x-forwarded-ssl=on", "('HTTP_X_FORWARDED_SSL', 'on')"),
])
def test_https_settings_from_the_environment(header, expected):
    result = run(["-c", PRINT_SETTINGS], **HTTPS, SECURE_PROXY_SSL_HEADER=header)

    assert result.stdout.strip() == f"[31536000, True, True, True, True, True, {expected}]", result.stderr


def test_check_deploy_has_no_https_warning_when_https_is_configured():
    result = run(["manage.py", "check", "--deploy"], **HTTPS, SECRET_KEY=A_SECRET_KEY)

    assert result.returncode == 0, result.stderr
    https_warnings = ("security.W004", "security.W005", "security.W008", "security.W012", "security.W016",
                      "security.W021")
    assert not [warning for warning in https_warnings if warning in result.stderr], result.stderr


def test_the_security_middleware_applies_the_https_settings(settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 3600
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True

    client = Client()  # its handler loads the middleware, which reads the settings, on its first request

    redirect = client.get("/api/v1/conversations/jane/state")
    assert redirect.status_code == 301 and redirect["Location"].startswith("https://")
    assert client.get("/healthz").status_code == 200  # load balancers probe over plain HTTP
    assert client.get("/healthz", secure=True)["Strict-Transport-Security"] == "max-age=3600; includeSubDomains"


@pytest.mark.parametrize(("name", "value"), [("SECURE_PROXY_SSL_HEADER", "X-Forwarded-Proto: https"),
                                             ("SECURE_HSTS_SECONDS", "a year"), ("SESSION_COOKIE_SECURE", "maybe")])
def test_bad_values_fail_loudly(name, value):
    result = run(["manage.py", "check"], **{name: value})

    assert result.returncode != 0
    assert f"ImproperlyConfigured: {name} must be" in result.stderr


def test_check_deploy_sees_the_https_settings_through_our_middleware():
    """Our middleware extend Django's (config/middleware.py): Django's deploy checks must still see them, neither
    calling them missing nor skipping the HSTS, SSL-redirect and CSRF-cookie warnings."""
    result = run(["manage.py", "check", "--deploy"], SECRET_KEY=A_SECRET_KEY)

    for warning in ("security.W004", "security.W008", "security.W016"):
        assert warning in result.stderr, result.stderr
    for missing in ("security.W001", "security.W002", "security.W003"):
        assert missing not in result.stderr
