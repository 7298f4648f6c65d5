"""The one long-lived Redis client of each event loop (rate limits, event logs, stop signals), and how a Redis
outage is degraded around: the caller fails open, the fault is logged once per interval per operation and counted
in `conduet_dependency_errors_total`, and `/readyz` reports Redis down."""
import asyncio
import logging
import time
import weakref

import redis.asyncio as aioredis
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
