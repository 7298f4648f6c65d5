"""The per-turn event log and stop signal that every process can read (DESIGN.md "Persistence rules").

A running turn's events (`seq`, data) go to a Redis stream when REDIS_URL is set (with a TTL), else to the
`TurnEvent` table; a client resuming the stream on another process reads them from there and follows new ones.
A finished turn's events replay from its stored reply, so the log only matters while a turn runs: a turn writes it
in batches, and only once it has run longer than CONDUET_EVENT_FLUSH_SECONDS (`conversations/turns.py`).

A stop asked on another process reaches the turn through the conversation row (`stop_turn_id`, read by the
heartbeat) and, with Redis, through a key the turn polls more often. Redis down: the log and the stop key are
skipped (logged once per interval); the database's stop flag still works."""
import asyncio
import json

from django.conf import settings

from config import db
from config.redis import ERRORS, degraded, redis_client, redis_configured

EVENTS_TABLE = "conversations_turnevent"
DONE_MARK = "[DONE]"  # appended to a Redis stream when the turn is stored, to wake readers at once


def _stream(turn_id: str) -> str:
    return f"conduet:turn:{turn_id}:events"


def _stop_key(turn_id: str) -> str:
    return f"conduet:turn:{turn_id}:stop"


def _encode(data) -> str:
    return data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))


def _decode(raw):
    return raw if raw == DONE_MARK else json.loads(raw)


async def log_append(turn_id: str, events: list[tuple[int, object]]) -> None:
    if not events:
        return
    if redis_configured():
        try:
            async with redis_client().pipeline(transaction=False) as pipe:
                for seq, data in events:
                    pipe.xadd(_stream(turn_id), {"seq": seq, "data": _encode(data)})
                pipe.expire(_stream(turn_id), settings.CONDUET_EVENT_TTL_SECONDS)
                await pipe.execute()
        except ERRORS as exc:
            degraded("event log write", exc)
        return
    rows = ", ".join(["(%s, %s, %s, CURRENT_TIMESTAMP)"] * len(events))
    params = [value for seq, data in events for value in (turn_id, seq, db.json_param(data))]
    await db.fetch(f"INSERT INTO {EVENTS_TABLE} (turn_id, seq, data, created_at) VALUES {rows} "
                   f"ON CONFLICT (turn_id, seq) DO NOTHING", params)


async def log_close(turn_id: str) -> None:
    """The turn's reply is stored: readers switch to it. Redis: wake blocked readers, keep the stream briefly."""
    if redis_configured():
        try:
            async with redis_client().pipeline(transaction=False) as pipe:
                pipe.xadd(_stream(turn_id), {"seq": 0, "data": DONE_MARK})
                pipe.expire(_stream(turn_id), 60)
                await pipe.execute()
        except ERRORS as exc:
            degraded("event log write", exc)
        return
    await db.fetch(f"DELETE FROM {EVENTS_TABLE} WHERE turn_id = %s", [turn_id])


async def log_read(turn_id: str, *, after: int, cursor: str, wait: float) -> tuple[list[tuple[int, object]], str, bool]:
    """Events after `after` (waiting up to `wait` seconds for some), the cursor to go on from, and whether the log
    says the turn was stored."""
    if redis_configured():
        try:
            found = await redis_client().xread({_stream(turn_id): cursor}, block=max(int(wait * 1000), 1))
        except ERRORS as exc:
            degraded("event log read", exc)
            await asyncio.sleep(wait)
            return [], cursor, False
        events, closed = [], False
        for _stream_name, entries in found or []:
            for entry_id, fields in entries:
                cursor = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                data = fields.get(b"data", fields.get("data"))
                data = data.decode() if isinstance(data, bytes) else data
                if data == DONE_MARK:
                    closed = True
                    continue
                seq = int(fields.get(b"seq", fields.get("seq")))
                if seq > after:
                    events.append((seq, _decode(data)))
        return events, cursor, closed
    rows = await db.fetch(f"SELECT seq, data FROM {EVENTS_TABLE} WHERE turn_id = %s AND seq > %s ORDER BY seq",
                          [turn_id, after])
    if not rows:
        await asyncio.sleep(wait)
    return [(row["seq"], db.json_value(row["data"])) for row in rows], cursor, False


async def stop_signal(turn_id: str) -> None:
    """Tells the turn's process fast (the conversation row's `stop_turn_id` is the flag that always works)."""
    if not redis_configured():
        return
    try:
        await redis_client().set(_stop_key(turn_id), 1, ex=max(settings.CONDUET_LEASE_SECONDS * 4, 60))
    except ERRORS as exc:
        degraded("stop signal", exc)


async def stops_signalled(turn_ids: list[str]) -> set[str]:
    """Which of these turns were asked to stop: one `MGET` for all the running turns of a process."""
    try:
        values = await redis_client().mget([_stop_key(turn_id) for turn_id in turn_ids])
    except ERRORS as exc:
        degraded("stop signal", exc)
        return set()
    return {turn_id for turn_id, value in zip(turn_ids, values, strict=True) if value is not None}


