"""Rate limits on django-ratelimit's core, in the shared cache (Redis or the database), so they hold across processes.

`rate_limit_hit` counts one request, records the usage on the request for `ApiResponseMiddleware` to write the
`X-RateLimit-*` headers, and raises 429 past the limit (django-ratelimit itself sets no headers).
"""
import time
from dataclasses import dataclass

from django.conf import settings
from django_ratelimit.core import get_usage
from rest_framework.throttling import BaseThrottle

from config.api.errors import RateLimited

PERIOD_SECONDS = 60


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


def _http_request(request):
    return getattr(request, "_request", request)  # a DRF Request wraps the HttpRequest the middleware sees


def rate_limit_hit(request, *, group: str, key: str, limit: int, period: int = PERIOD_SECONDS) -> RateUsage:
    usage = get_usage(_http_request(request), group=group, key=lambda _g, _r: key, rate=(limit, period),
                      increment=True)
    time_left = max(int(usage["time_left"]), 1)
    result = RateUsage(
        limit=limit,
        remaining=max(limit - usage["count"], 0),
        reset_ms=int((time.time() + time_left) * 1000),
        retry_after=time_left,
    )
    _http_request(request).conduet_rate_usage = result
    if usage["should_limit"]:
        raise RateLimited(
            f"Rate limit of {limit} requests per minute reached; retry in {time_left} s.",
            headers={"Retry-After": str(time_left), **result.headers()},
        )
    return result


def interact_rate_limit_hit(request, *, project, user_key: str) -> RateUsage:
    """Interact endpoints: per end user, `settings.rateLimit.perMinute` of the project (default 60)."""
    configured = (project.document.get("settings") or {}).get("rateLimit", {}).get("perMinute")
    limit = configured if isinstance(configured, int) and configured > 0 else settings.CONDUET_INTERACT_RATE_PER_MINUTE
    return rate_limit_hit(request, group="interact", key=f"{project.id}:{user_key}", limit=limit)


def anonymous_rate_limit_hit(request) -> RateUsage:
    """API requests that no key was counted for (no or a bad key, unknown paths, the schema): per client address,
    at the per-key rate, so that they too carry the headers and cannot hammer the key lookup."""
    address = request.META.get("REMOTE_ADDR") or "unknown"
    return rate_limit_hit(request, group="anonymous", key=address, limit=settings.CONDUET_API_RATE_PER_MINUTE)


class PerKeyThrottle(BaseThrottle):
    """Every authenticated endpoint except the interact ones (`per_user_rate_limit = True`) counts against its key."""

    def allow_request(self, request, view) -> bool:
        if getattr(view, "per_user_rate_limit", False) or request.auth is None:
            return True
        rate_limit_hit(request, group="key", key=request.auth.key_id, limit=settings.CONDUET_API_RATE_PER_MINUTE)
        return True
