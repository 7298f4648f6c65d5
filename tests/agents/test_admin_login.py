"""The admin login is throttled per client address and per username, answers 429 with the login page when over,
lets a legitimate login through once the window passed, and fails open when the cache is down."""
import logging
import time
from types import SimpleNamespace
from unittest import mock

import pytest
from django.test import Client, override_settings

import agents.admin
from config.metrics import RATE_LIMIT_FAIL_OPEN
from tests.live import free_port

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/"
PASSWORD = "the-right-password-42"


@pytest.fixture
def root(django_user_model, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast: the tests log in often
    return django_user_model.objects.create_superuser("root", "root@example.com", PASSWORD)


def attempt(client: Client, username: str, password: str = "wrong", address: str = "203.0.113.7"):
    return client.post(LOGIN, {"username": username, "password": password, "next": "/admin/"},
                       REMOTE_ADDR=address)


@pytest.fixture(autouse=True)
def clock():
    """django-ratelimit's clock, stopped: its counters are per fixed window (a minute, at an offset per key), which
    must not roll over in the middle of a test; moving it on starts a new window."""
    clock = SimpleNamespace(now=time.time())
    with mock.patch("django_ratelimit.core.time", SimpleNamespace(time=lambda: clock.now)):
        yield clock


def test_five_failures_per_username_then_429_with_the_login_page(client, root):
    for _ in range(5):
        assert attempt(client, "root").status_code == 200

    refused = attempt(client, "root", PASSWORD)  # refused even with the right password, without checking it

    assert refused.status_code == 429
    retry_after = int(refused["Retry-After"])
    assert 1 <= retry_after <= 61
    html = refused.content.decode()
    assert f"Too many login attempts. Retry in {retry_after} s." in html
    assert 'name="password"' in html  # the login page itself
    assert "_auth_user_id" not in client.session


def test_the_username_limit_holds_across_addresses_and_letter_case(client, root):
    for index in range(5):
        attempt(client, "root" if index % 2 else "ROOT", address=f"198.51.100.{index}")

    assert attempt(client, "Root", address="198.51.100.99").status_code == 429


def test_ten_attempts_per_address_whatever_the_usernames(client, root):
    for index in range(10):
        assert attempt(client, f"guess{index}").status_code == 200

    assert attempt(client, "root", PASSWORD).status_code == 429
    other_address = attempt(client, "root", PASSWORD, address="192.0.2.1")
    assert other_address.status_code == 302 and client.session["_auth_user_id"] == str(root.pk)


def test_a_legitimate_login_works_once_the_window_passed(client, root, clock):
    for _ in range(6):
        attempt(client, "root")
    refused = attempt(client, "root", PASSWORD)
    assert refused.status_code == 429

    clock.now += int(refused["Retry-After"])
    response = attempt(client, "root", PASSWORD)

    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


def test_a_successful_login_within_the_limit_is_not_refused(client, root):
    for _ in range(4):
        attempt(client, "root")

    assert attempt(client, "root", PASSWORD).status_code == 302


@override_settings(CONDUET_ADMIN_LOGIN_RATE_PER_USERNAME=2, CONDUET_ADMIN_LOGIN_RATE_PER_ADDRESS=3)
def test_the_limits_come_from_the_settings(client, root):
    attempt(client, "root")
    attempt(client, "root")
    assert attempt(client, "root").status_code == 429
    attempt(client, "other")
    assert attempt(client, "third").status_code == 429


def test_get_is_not_counted(client, root):
    for _ in range(20):
        assert client.get(LOGIN, REMOTE_ADDR="203.0.113.7").status_code == 200

    assert attempt(client, "root", PASSWORD).status_code == 302


def test_the_throttle_fails_open_when_the_cache_is_down(client, root, caplog):
    down = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                        "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
                        "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1}}}
    agents.admin._cache_fault_logged_at = None
    counted_before = RATE_LIMIT_FAIL_OPEN._value.get()
    with override_settings(CACHES=down), caplog.at_level(logging.WARNING, logger="agents.admin"):
        for _ in range(7):
            assert attempt(client, "root").status_code == 200
        response = attempt(client, "root", PASSWORD)

    assert response.status_code == 302
    faults = [r for r in caplog.records if "cannot reach the cache" in r.getMessage()]
    assert len(faults) == 1  # logged once per interval, not per attempt
    assert RATE_LIMIT_FAIL_OPEN._value.get() - counted_before == 8 + 8  # per address and per username, each
