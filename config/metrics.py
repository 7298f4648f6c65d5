"""Prometheus metrics of this process (`GET /metrics`, from the networks in CONDUET_METRICS_ALLOWLIST only)."""
import ipaddress

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

TURNS = Counter("conduet_turns_total", "Turns finished, by how they ended", ["status"])
TURN_SECONDS = Histogram("conduet_turn_seconds", "Time from taking the lease to storing the reply",
                         buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120))
DEPENDENCY_ERRORS = Counter("conduet_dependency_errors_total",
                            "Calls to a dependency that failed and were degraded around", ["dependency", "operation"])
RATE_LIMIT_FAIL_OPEN = Counter("conduet_rate_limit_fail_open_total",
                               "Requests let through because the rate-limit store was unreachable")


def _allowed(address: str | None) -> bool:
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(network, strict=False) for network in settings.CONDUET_METRICS_ALLOWLIST)


def metrics_view(request):
    if not _allowed(request.META.get("REMOTE_ADDR")):
        return JsonResponse({"error": "Metrics are served to allowed networks only.", "code": "FORBIDDEN"},
                            status=403)
    return HttpResponse(generate_latest(), content_type=CONTENT_TYPE_LATEST)
