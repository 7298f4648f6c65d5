"""Liveness and readiness probes (no authentication). `/readyz` answers 503 when a dependency the process needs is
down: the database always, Redis when REDIS_URL is set (the API then degrades — rate limits fail open — but the
operator must know). It also says which knowledge-base search modes run here (lexical only without an embeddings
endpoint or a database that stores vectors) and the embeddings model; those never make it unready."""
import asyncio

from django.http import JsonResponse

from config import db
from config.redis import ERRORS, redis_client, redis_configured


def healthz(request):
    return JsonResponse({"status": "ok"})


async def _check_database() -> str:
    try:
        await asyncio.wait_for(db.ping(), timeout=3)
    except Exception:
        return "unreachable"
    return "ok"


async def _check_redis() -> str:
    try:
        await asyncio.wait_for(redis_client().ping(), timeout=1)
    except (*ERRORS, Exception):
        return "unreachable"
    return "ok"


async def _knowledge(database: str) -> dict:
    from agents.knowledge.embeddings import embeddings_model
    from agents.knowledge.search import asearch_modes

    modes = ["lexical"]
    if database == "ok":
        try:
            modes = await asyncio.wait_for(asearch_modes(), timeout=3)
        except Exception:  # the database answered a ping but not this: it says lexical
            pass
    return {"modes": modes, "embeddings": embeddings_model()}


async def readyz(request):
    checks = {"database": await _check_database()}
    if redis_configured():
        checks["redis"] = await _check_redis()
    ready = all(value == "ok" for value in checks.values())
    return JsonResponse({"status": "ok" if ready else "unavailable", **checks,
                         "knowledge": await _knowledge(checks["database"])}, status=200 if ready else 503)
