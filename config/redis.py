"""The one long-lived Redis client of each event loop (rate limits, event logs, stop signals), and how a Redis
outage is degraded around: the caller fails open, the fault is logged once per interval per operation and counted
in `conduet_dependency_errors_total`, and `/readyz` reports Redis down."""
import asyncio
import contextlib
import logging
import os
import time
import weakref

import redis.asyncio as aioredis
from asgiref.sync import SyncToAsync, async_to_sync
from django.conf import settings
from redis.exceptions import RedisError

from config.metrics import DEPENDENCY_ERRORS

log = logging.getLogger("conduet.redis")
LOG_INTERVAL_SECONDS = 60
ERRORS = (RedisError, OSError, asyncio.TimeoutError)

_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis]" = weakref.WeakKeyDictionary()
_last_logged: dict[str, float] = {}


def redis_configured() -> bool:
    return bool(settings.REDIS_URL)


def redis_client() -> aioredis.Redis:
    """This loop's client (a client's connections belong to the loop that opened them). Short socket timeouts:
    a Redis that is down must cost a request milliseconds, not seconds."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        client = aioredis.Redis.from_url(settings.REDIS_URL, socket_timeout=0.5, socket_connect_timeout=0.5,
                                         health_check_interval=30, max_connections=200)
        _clients[loop] = client
    return client


async def redis_client_close() -> None:
    """Closes this loop's client, if it has one (a loop that ends)."""
    client = _clients.pop(asyncio.get_running_loop(), None)
    if client is not None:
        with contextlib.suppress(*ERRORS):
            await client.aclose()


def sync_call(func, /, *args, **kwargs):
    """`async_to_sync(func)(*args, **kwargs)` for sync code that may reach Redis (the DRF views' rate limit). On the
    server the coroutine runs on daphne's loop and uses its long-lived client. Where there is no such loop (the test
    client, a management command) asgiref gives each call a loop of its own: the client that loop opened is closed
    with the call, instead of keeping its connection open until a garbage collection finds it (a test process held
    a thousand such sockets, past what `select()` takes)."""
    threadlocal = SyncToAsync.threadlocal
    main = getattr(threadlocal, "main_event_loop", None)  # asgiref's own test; it may name a loop long closed
    if main is not None and not main.is_closed() and getattr(threadlocal, "main_event_loop_pid", None) == os.getpid():
        return async_to_sync(func)(*args, **kwargs)

    async def once():
        try:
            return await func(*args, **kwargs)
        finally:
            await redis_client_close()

    return async_to_sync(once)()


_scripts: "weakref.WeakKeyDictionary[aioredis.Redis, dict]" = weakref.WeakKeyDictionary()


def redis_script(source: str):
    """A Lua script on this loop's client, registered once (EVALSHA, with a fallback to EVAL after a flush)."""
    client = redis_client()
    scripts = _scripts.setdefault(client, {})
    if source not in scripts:
        scripts[source] = client.register_script(source)
    return scripts[source]


def degraded(operation: str, exc: BaseException) -> None:
    """Records a Redis failure that the caller works around; logs it at most once per interval per operation."""
    DEPENDENCY_ERRORS.labels("redis", operation).inc()
    now = time.monotonic()
    if now - _last_logged.get(operation, -LOG_INTERVAL_SECONDS) >= LOG_INTERVAL_SECONDS:
        _last_logged[operation] = now
        log.warning("Redis unavailable during %s (%s: %s); degrading (logged once per %d s)",
                    operation, type(exc).__name__, exc, LOG_INTERVAL_SECONDS)
