"""Rate limits (API.md §1), shared by every process: a sliding one-minute window, one round trip a request.

The window is estimated from two fixed windows, as proxies do: the current one's count plus the previous one's,
weighted by how much of it still lies in the last minute and rounded up. A burst across a window boundary therefore
still meets the limit (fixed windows let through twice the limit there). Only admitted requests count, so a client
that keeps knocking is let in again as the minute slides.

With Redis: one Lua script (`EVALSHA`) on the loop's long-lived client; Redis down → the request goes through
(fail open), logged once per interval and counted in `conduet_rate_limit_fail_open_total`. Without Redis: one
transaction on the database cache table. `rate_limit_hit` records the usage on the request for
`ApiResponseMiddleware` to write the `X-RateLimit-*` headers, and raises 429 past the limit."""
import math
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.utils import timezone

from config import db
from config.api.errors import RateLimited
from config.metrics import RATE_LIMIT_FAIL_OPEN
from config.redis import ERRORS, degraded, redis_configured, redis_script, sync_call

PERIOD_SECONDS = 60
CACHE_TABLE = "conduet_cache"
_PURGE_CHANCE = 0.01  # the database cache drops expired windows now and then, not on every request


@dataclass(frozen=True)
class RateUsage:
    limit: int
    remaining: int
    reset_ms: int
    retry_after: int

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_ms),
        }


def _used(previous: int, current: int, weight: float) -> int:
    """Requests in the sliding minute: the previous window's share still inside it, rounded up, plus the current."""
    return math.ceil(previous * weight - 1e-9) + current


# KEYS: current window, previous window. ARGV: limit, the previous window's weight, the keys' lifetime in ms.
# Returns {count in the current window, count in the previous one, 1 when admitted}.
_COUNT_SCRIPT = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local previous = tonumber(redis.call('GET', KEYS[2]) or '0')
if math.ceil(previous * tonumber(ARGV[2]) - 1e-9) + current >= tonumber(ARGV[1]) then
  return {current, previous, 0}
end
current = redis.call('INCR', KEYS[1])
if current == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return {current, previous, 1}
"""


async def _count_redis(keys: list[str], limit: int, weight: float, period: int) -> tuple[int, int, bool]:
    try:
        current, previous, admitted = await redis_script(_COUNT_SCRIPT)(
            keys=keys, args=[limit, repr(weight), 2 * period * 1000])
    except ERRORS as exc:
        RATE_LIMIT_FAIL_OPEN.inc()
        degraded("rate limit", exc)
        return 0, 0, True
    return int(current), int(previous), bool(admitted)


async def _count_database(keys: list[str], limit: int, weight: float, expires: float) -> tuple[int, int, bool]:
    """Counts first, then takes the request back when it was over: the upsert is what makes concurrent requests
    of several processes count each other."""
    table = db.quote(CACHE_TABLE)
    current_key, previous_key = keys
    statements = [
        (f"SELECT value FROM {table} WHERE cache_key = %s", [previous_key]),
        (f"INSERT INTO {table} (cache_key, value, expires) VALUES (%s, '1', %s) ON CONFLICT (cache_key) DO UPDATE "
         f"SET value = CAST(CAST({table}.value AS INTEGER) + 1 AS VARCHAR(20)) RETURNING value",
         [current_key, db.when(datetime.fromtimestamp(expires, tz=UTC))]),
    ]
    if random.random() < _PURGE_CHANCE:
        statements.append((f"DELETE FROM {table} WHERE cache_key LIKE 'rl:%%' AND expires < %s",
                           [db.when(timezone.now())]))
    previous_rows, current_rows, *_ = await db.run(statements)
    previous = int(previous_rows[0]["value"]) if previous_rows else 0
    current = int(current_rows[0]["value"])
    if _used(previous, current - 1, weight) < limit:
        return current, previous, True
    await db.run([(f"UPDATE {table} SET value = CAST(CAST(value AS INTEGER) - 1 AS VARCHAR(20)) "
                   f"WHERE cache_key = %s", [current_key])])
    return current - 1, previous, False


def _retry_after(previous: int, current: int, limit: int, elapsed: float, period: int) -> float:
    """Seconds until one more request fits the sliding minute."""
    if current >= limit:  # nothing fits before this window ends; in the next, `current` weighs (1 - t/period)
        return period - elapsed + period * (1 - (limit - 1) / current)
    # ceil(previous * (1 - t / period)) must fall to limit - current - 1
    return period * (1 - (limit - current - 1) / previous) - elapsed


async def rate_count(*, group: str, key: str, limit: int, period: int = PERIOD_SECONDS) -> RateUsage:
    """Admits and counts one request of (group, key) if the sliding window has room for it."""
    now = time.time()
    window, elapsed = divmod(now, period)
    window = int(window)
    weight = 1 - elapsed / period
    keys = [f"rl:{group}:{key}:{window}", f"rl:{group}:{key}:{window - 1}"]
    if redis_configured():
        current, previous, admitted = await _count_redis(keys, limit, weight, period)
    else:
        current, previous, admitted = await _count_database(keys, limit, weight, (window + 2) * period)
    used = _used(previous, current, weight)
    reset = (window + 1) * period
    retry_after = 0
    if not admitted:
        retry_after = max(math.ceil(_retry_after(previous, current, limit, elapsed, period)), 1)
    return RateUsage(limit=limit, remaining=max(limit - used, 0), reset_ms=int(reset * 1000),
                     retry_after=retry_after)


def _http_request(request):
    return getattr(request, "_request", request)  # a DRF Request wraps the HttpRequest the middleware sees


async def rate_limit_hit(request, *, group: str, key: str, limit: int, record: bool = True) -> RateUsage:
    usage = await rate_count(group=group, key=key, limit=limit)
    if record:
        _http_request(request).conduet_rate_usage = usage
    if usage.retry_after:
        raise RateLimited(
            f"Rate limit of {limit} requests per minute reached; retry in {usage.retry_after} s.",
            headers={"Retry-After": str(usage.retry_after), **usage.headers()},
        )
    return usage


def client_address(request) -> str:
    return request.META.get("REMOTE_ADDR") or "unknown"


async def interact_rate_limit_hit(request, *, project_id: str, user_key: str, per_minute: int | None,
                                  widget_key_id: str | None = None) -> RateUsage:
    """Interact endpoints: per end user, at the rate of the version being run (default 60 a minute). A widget key
    (public, embedded in pages) is also capped per key and per client address, so that it cannot open
    conversations for any number of `anon_` ids."""
    if widget_key_id is not None:
        await rate_limit_hit(request, group="widget-key", key=widget_key_id,
                             limit=settings.CONDUET_WIDGET_RATE_PER_KEY, record=False)
        await rate_limit_hit(request, group="widget-address", key=client_address(request),
                             limit=settings.CONDUET_WIDGET_RATE_PER_ADDRESS, record=False)
    limit = per_minute or settings.CONDUET_INTERACT_RATE_PER_MINUTE
    return await rate_limit_hit(request, group="interact", key=f"{project_id}:{user_key}", limit=limit)


async def key_rate_limit_hit(request, *, key_id: str) -> RateUsage:
    return await rate_limit_hit(request, group="key", key=key_id, limit=settings.CONDUET_API_RATE_PER_MINUTE)


async def anonymous_rate_limit_hit(request) -> RateUsage:
    """API requests that no key was counted for (no or a bad key, unknown paths, the schema): per client address,
    at the per-key rate, so that they too carry the headers and cannot hammer the key lookup."""
    return await rate_limit_hit(request, group="anonymous", key=client_address(request),
                                limit=settings.CONDUET_API_RATE_PER_MINUTE)


class PerKeyThrottle:
    """DRF throttle for the sync (DRF) endpoints: each counts against its key."""

    def allow_request(self, request, view) -> bool:
        if request.auth is None:
            return True
        sync_call(key_rate_limit_hit, request, key_id=request.auth.key_id)
        return True

    def wait(self):
        return None
