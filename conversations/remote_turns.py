"""A turn seen from any process, by its id: follow its events (the stream's resume) and stop it. A turn that runs
in this process is reached directly; one that runs elsewhere through its conversation row and the shared event
log (`conversations/events.py`); a finished one through its stored reply."""
import asyncio
import time
from collections.abc import AsyncIterator

from django.conf import settings
from django.utils import timezone

from config import db
from config.api.errors import Conflict, NotFound
from config.api.sse import DONE
from conversations import events as event_log
from conversations.lease import MESSAGE, ConversationKey
from conversations.turns import TurnEvent, error_trace, running_turn


async def _open_conversation(key: ConversationKey) -> dict | None:
    where, params = key.where()
    return await db.fetch_one(
        f"SELECT id, lease_token, lease_expires_at FROM conversations_conversation WHERE {where}", params)


async def _reply(turn_id: str) -> dict | None:
    row = await db.fetch_one(
        f"SELECT status, traces FROM {MESSAGE} WHERE turn_id = %s AND role = 'assistant'", [turn_id])
    if row is not None:
        row["traces"] = db.json_value(row["traces"])
    return row


async def turn_stop(*, key: ConversationKey) -> dict:
    """Cancels the conversation's running turn wherever it runs; what it produced is stored as `interrupted` and
    its lease freed. 409 when no turn is running. Waits up to CONDUET_STOP_WAIT_SECONDS for the turn to stop."""
    conversation = await _open_conversation(key)
    expires = db.datetime_value(conversation["lease_expires_at"]) if conversation else None
    turn_id = conversation["lease_token"] if conversation else None
    if not turn_id or not turn_id.startswith("turn_") or expires is None or expires < timezone.now():
        raise Conflict("No turn is running for this user.", details={"turn": ["No running turn to stop."]})
    local = running_turn(turn_id)
    if local is not None:
        local.stop("stopped")
        await asyncio.wait({local.task}, timeout=settings.CONDUET_STOP_WAIT_SECONDS)
    else:
        await db.fetch("UPDATE conversations_conversation SET stop_turn_id = lease_token "
                       "WHERE id = %s AND lease_token = %s", [conversation["id"], turn_id])
        await event_log.stop_signal(turn_id)
    deadline = time.monotonic() + settings.CONDUET_STOP_WAIT_SECONDS
    while (reply := await _reply(turn_id)) is None and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    if reply is None:
        return {"turnId": turn_id, "status": "stopping", "traces": []}
    return {"turnId": turn_id, "status": reply["status"], "traces": reply["traces"]}


async def turn_find(*, key: ConversationKey, turn_id: str) -> str:
    """The id of the conversation the turn belongs to (404 if it is not a turn of this user or conversation)."""
    column, value = ("c.id", key.conversation_id) if key.conversation_id else ("c.user_id", key.user_id)
    row = await db.fetch_one(
        f"SELECT m.conversation_id FROM {MESSAGE} m JOIN conversations_conversation c ON c.id = m.conversation_id "
        f"WHERE m.turn_id = %s AND m.role = 'user' AND c.project_id = %s AND {column} = %s",
        [turn_id, key.project_id, value])
    if row is None:
        raise NotFound(f"Turn {turn_id} not found.")
    return row["conversation_id"]


async def turn_follow(*, conversation_id: str, turn_id: str, after: int = 0,
                      idle: float | None = None) -> AsyncIterator[TurnEvent | None]:
    """A turn's events after `after`, then DONE: live from this process if it runs here; else from the shared
    event log while it runs elsewhere, and from its stored reply once it is stored (a finished turn replays)."""
    local = running_turn(turn_id)
    if local is not None:
        async for event in local.follow(after=after, idle=idle):
            yield event
        return
    cursor, quiet_since = "0-0", time.monotonic()
    while True:
        reply = await _reply(turn_id)
        if reply is None:
            row = await db.fetch_one("SELECT lease_token FROM conversations_conversation WHERE id = %s",
                                     [conversation_id])
            if row is None or row["lease_token"] != turn_id:
                reply = await _reply(turn_id) or {"traces": [
                    error_trace("This turn stopped when its server process was lost.", "TURN_LOST")]}
        if reply is not None:
            traces = reply["traces"]
            for seq, trace in enumerate(traces, start=1):
                if seq > after:
                    yield TurnEvent(seq, trace)
            yield TurnEvent(len(traces) + 1, DONE)
            return
        found, cursor, _closed = await event_log.log_read(turn_id, after=after, cursor=cursor, wait=0.5)
        for seq, data in found:
            after = seq
            yield TurnEvent(seq, data)
        if found:
            quiet_since = time.monotonic()
        elif idle is not None and time.monotonic() - quiet_since >= idle:
            quiet_since = time.monotonic()
            yield None
