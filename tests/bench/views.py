"""The baseline the interact endpoints are measured against: an async Django view doing the minimum database work
of a turn on psycopg's async pool, with none of the application (DRF, rate limit, lease, engine, ORM):

1. read the API key row by its lookup prefix, joined to its project, and compare the digest (as authentication does);
2. open or update the user's open conversation in one statement (`INSERT … ON CONFLICT … DO UPDATE … RETURNING`
   on the partial unique index of open conversations), reserving two message sequence numbers;
3. insert the user and the assistant message in one statement;

then answer a JSON array with one text trace. Three round trips on an autocommit connection held only around them.
"""
import asyncio
import hashlib
import hmac
import json
import os

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from agents.ids import LOOKUP_PREFIX_LENGTH, PROJECT_KEY_PREFIX, new_id
from agents.models import Project, ProjectApiKey
from conversations.models import Conversation, Message

POOL_MIN, POOL_MAX = 4, 20
REPLY = [{"type": "text", "payload": {"message": "ok"}}]

KEY_SQL = (
    f"SELECT k.digest, k.revoked_at, p.id FROM {ProjectApiKey._meta.db_table} k "
    f"JOIN {Project._meta.db_table} p ON p.id = k.project_id WHERE k.prefix = %s"
)
_CONVERSATIONS = Conversation._meta.db_table
UPSERT_SQL = (
    f"INSERT INTO {_CONVERSATIONS} AS c (id, project_id, user_id, platform, version_id, status, state, turn, "
    f"message_seq, created_at, updated_at) VALUES (%s, %s, %s, 'api', 'development', 'active', '{{}}', 1, 2, "
    f"now(), now()) "
    f"ON CONFLICT (project_id, user_id) WHERE closed_at IS NULL AND kind = 'v1' DO UPDATE SET turn = c.turn + 1, "
    f"message_seq = c.message_seq + 2, updated_at = now() RETURNING c.id, c.message_seq"
)
MESSAGES_SQL = (
    f"INSERT INTO {Message._meta.db_table} (id, conversation_id, seq, turn_id, role, status, action, content, "
    f"traces, version_id, created_at) VALUES "
    f"(%s, %s, %s, %s, 'user', 'complete', %s, %s, '[]', 'development', now()), "
    f"(%s, %s, %s, %s, 'assistant', 'complete', NULL, '', %s, 'development', now())"
)

_pool: AsyncConnectionPool | None = None
_pool_lock: asyncio.Lock | None = None


async def _connection_pool() -> AsyncConnectionPool:
    """The process's pool, opened on first use on the running loop (daphne runs one loop per process)."""
    global _pool, _pool_lock
    if _pool is not None:
        return _pool
    if _pool_lock is None:
        _pool_lock = asyncio.Lock()
    async with _pool_lock:
        if _pool is None:
            pool = AsyncConnectionPool(settings.DATABASE_URL, min_size=POOL_MIN, max_size=POOL_MAX,
                                       kwargs={"autocommit": True}, open=False)
            await pool.open(wait=True)
            _pool = pool
    return _pool


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message, "code": "BENCH"}, status=status)


@csrf_exempt
@require_POST
async def baseline_turn(request, user_id: str):
    scheme, _, key = (request.headers.get("Authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not key.startswith(PROJECT_KEY_PREFIX):
        return _error(401, "Bearer cdt_… key expected.")
    try:
        action = json.loads(request.body)["action"]
    except (ValueError, KeyError, TypeError):
        return _error(400, "Body must be {\"action\": …}.")
    prefix = key[len(PROJECT_KEY_PREFIX):][:LOOKUP_PREFIX_LENGTH]
    digest = hashlib.sha256(key.encode()).hexdigest()
    text = action.get("payload") if isinstance(action, dict) and isinstance(action.get("payload"), str) else ""
    turn_id = new_id("turn")

    pool = await _connection_pool()
    async with pool.connection() as connection:
        rows = await (await connection.execute(KEY_SQL, (prefix,))).fetchall()
        project_id = next((p for d, revoked, p in rows if hmac.compare_digest(d, digest) and revoked is None), None)
        if project_id is None:
            return _error(401, "Unknown API key.")
        cursor = await connection.execute(UPSERT_SQL, (new_id("conv"), project_id, user_id))
        conversation_id, last_seq = await cursor.fetchone()
        await connection.execute(MESSAGES_SQL, (
            new_id("msg"), conversation_id, last_seq - 1, turn_id, Jsonb(action), text,
            new_id("msg"), conversation_id, last_seq, turn_id, Jsonb(REPLY),
        ))
    return JsonResponse(REPLY, safe=False)


async def process_id(request):
    """Which daphne process answered: the runner uses it to see that every process of a group is serving."""
    return HttpResponse(str(os.getpid()), content_type="text/plain")
