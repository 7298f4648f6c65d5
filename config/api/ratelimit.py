"""Rate limits (API.md §1), shared by every process: fixed one-minute windows counted in one round trip.

With Redis: `INCR` + `PEXPIRE` in one pipeline on the loop's long-lived client; Redis down → the request goes
through (fail open), logged once per interval and counted in `conduet_rate_limit_fail_open_total`. Without Redis:
one upsert on the database cache table. `rate_limit_hit` records the usage on the request for
`ApiResponseMiddleware` to write the `X-RateLimit-*` headers, and raises 429 past the limit."""
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from asgiref.sync import async_to_sync
from django.conf import settings
from django.utils import timezone

from config import db
from config.api.errors import RateLimited
from config.metrics import RATE_LIMIT_FAIL_OPEN
from config.redis import ERRORS, degraded, redis_configured, redis_script

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


# One command, one round trip: the count, and the window's expiry set when the window opens.
_COUNT_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return count
"""


async def _count_redis(key: str, period: int) -> int | None:
    try:
        return int(await redis_script(_COUNT_SCRIPT)(keys=[key], args=[period * 1000]))
    except ERRORS as exc:
        RATE_LIMIT_FAIL_OPEN.inc()
        degraded("rate limit", exc)
        return None


async def _count_database(key: str, reset: float) -> int:
    expires = db.when(datetime.fromtimestamp(reset, tz=UTC))
    table = db.quote(CACHE_TABLE)
    statements = [(
        f"INSERT INTO {table} (cache_key, value, expires) VALUES (%s, '1', %s) ON CONFLICT (cache_key) DO UPDATE "
        f"SET value = CAST(CAST({table}.value AS INTEGER) + 1 AS VARCHAR(20)) RETURNING value", [key, expires])]
    if random.random() < _PURGE_CHANCE:
        statements.append((f"DELETE FROM {table} WHERE cache_key LIKE 'rl:%%' AND expires < %s",
                           [db.when(timezone.now())]))
    return int((await db.run(statements))[0][0]["value"])


async def rate_count(*, group: str, key: str, limit: int, period: int = PERIOD_SECONDS) -> RateUsage:
    """Counts one request in the current window of (group, key)."""
    now = time.time()
    window = int(now // period)
    reset = (window + 1) * period
    cache_key = f"rl:{group}:{key}:{window}"
    if redis_configured():
        count = await _count_redis(cache_key, period)
        count = 0 if count is None else count
    else:
        count = await _count_database(cache_key, reset)
    retry_after = max(int(reset - now + 0.999), 1)
    return RateUsage(limit=limit, remaining=max(limit - count, 0), reset_ms=int(reset * 1000),
                     retry_after=retry_after if count > limit else 0)


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
        async_to_sync(key_rate_limit_hit)(request, key_id=request.auth.key_id)
        return True

    def wait(self):
        return None
