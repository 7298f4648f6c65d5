"""The lease on a conversation (DESIGN.md "Persistence rules"): the running turn's id and an expiry, written by one
conditional statement, so two turns of one conversation never interleave and no transaction is held while a turn
runs. The lease is short (`LEASE_SECONDS`) and the turn's process renews it while it runs (`leases_renew`, the
heartbeat of all its running turns at once), so a turn whose process died frees its conversation within seconds.

A lease belongs to a conversation id. The v1 API names a conversation by (project, userId) — the user's open one —
and v2 by its id; `ConversationKey` says which. Taking a lease is one round trip: an `UPDATE … RETURNING` (or, for
a v1 user with no open conversation, an `INSERT … ON CONFLICT DO NOTHING RETURNING` that opens one already
leased), with the turn's user message written in the same transaction. The sequence numbers of the turn's two
messages are reserved by that UPDATE, so a crashed turn never makes the next one reuse them. The statements are
plain SQL that PostgreSQL and SQLite share (Django's ORM has no UPDATE … RETURNING)."""
import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from agents.ids import new_id
from config import db
from config.api.errors import Conflict

log = logging.getLogger("conduet.turns")

CONVERSATION = "conversations_conversation"
MESSAGE = "conversations_message"
ROW = ("id, project_id, user_id, platform, version_id, status, state, turn, message_seq, expired_turn_id, "
       "created_at, updated_at")
LEASED_ROW = "id, user_id, platform, status, state, turn, message_seq, expired_turn_id"  # what a lease holder needs


@dataclass(frozen=True)
class ConversationKey:
    """Which conversation: by id (v2), or the open conversation of (project, user_id) (v1)."""

    project_id: str
    user_id: str | None = None
    conversation_id: str | None = None

    def where(self) -> tuple[str, list]:
        if self.conversation_id is not None:
            return "id = %s AND project_id = %s AND closed_at IS NULL", [self.conversation_id, self.project_id]
        return ("project_id = %s AND user_id = %s AND closed_at IS NULL AND kind = 'v1'",
                [self.project_id, self.user_id])


def lease_seconds() -> int:
    return settings.CONDUET_LEASE_SECONDS


def row_decode(row: dict | None) -> dict | None:
    if row is not None:
        row["state"] = db.json_value(row["state"]) or {}
        for column in ("created_at", "updated_at"):
            if column in row:
                row[column] = db.datetime_value(row[column])
    return row


def _user_message(message: dict, source: str, where: str = "", params: tuple = ()) -> tuple[str, list]:
    """INSERT of the turn's user message into the conversation just leased, read from `source`: the CTE `c` of
    the statement that took the lease (PostgreSQL), or the table found by our lease token (SQLite)."""
    sql = (f"INSERT INTO {MESSAGE} (id, conversation_id, seq, turn_id, role, status, action, content, traces, "
           f"files, version_id, created_at) SELECT %s, id, message_seq - 1, %s, 'user', 'complete', %s, %s, %s, %s, "
           f"%s, %s FROM {source}")
    files = message.get("files")
    values = [new_id("msg"), message["turn_id"], db.json_param(message["action"]), message["content"],
              db.json_param([]), db.json_param(files) if files else None, message["version_id"],
              db.when(message["now"])]
    if where:
        return f"{sql} WHERE {where} AND lease_token = %s", [*values, *params, message["turn_id"]]
    return sql, values


async def _leasing(statement: tuple[str, list], key: ConversationKey, message: dict | None) -> dict | None:
    """Runs the statement that takes a lease (RETURNING the row), with the user message in the same transaction:
    on PostgreSQL one statement (a data-modifying CTE), on SQLite two in one transaction."""
    sql, params = statement
    if message is None:
        rows = await db.fetch(sql, params)
    elif db.is_postgres():
        insert, insert_params = _user_message(message, "c")
        rows = await db.fetch(f"WITH c AS ({sql}), m AS ({insert}) SELECT * FROM c", [*params, *insert_params])
    else:
        where, where_params = key.where()
        rows = (await db.run([statement, _user_message(message, CONVERSATION, where, where_params)],
                             atomic=True))[0]
    return row_decode(rows[0]) if rows else None


def _update(key: ConversationKey, token: str, reserve: int, now) -> tuple[str, list]:
    """Takes the lease of the conversation if it had none or an expired one (then `expired_turn_id` names the turn
    that died holding it)."""
    where, params = key.where()
    sql = (f"UPDATE {CONVERSATION} SET expired_turn_id = lease_token, lease_token = %s, lease_expires_at = %s, "
           f"message_seq = message_seq + %s, stop_turn_id = NULL WHERE {where} "
           f"AND (lease_token IS NULL OR lease_expires_at < %s) RETURNING {LEASED_ROW}")
    return sql, [token, db.when(now + timedelta(seconds=lease_seconds())), reserve, *params, db.when(now)]


_INSERT_COLUMNS = ("id, project_id, user_id, platform, version_id, status, state, turn, message_seq, lease_token, "
                   "lease_expires_at, created_at, updated_at")
_INSERT_VALUES = "%s, %s, %s, %s, 'development', 'active', %s, 0, %s, %s, %s, %s, %s"


def _insert_params(key: ConversationKey, token: str, reserve: int, platform: str, now) -> list:
    return [new_id("conv"), key.project_id, key.user_id, platform, db.json_param({}), reserve, token,
            db.when(now + timedelta(seconds=lease_seconds())), db.when(now), db.when(now)]


async def _take(key: ConversationKey, token: str, reserve: int, message: dict | None) -> dict | None:
    now = timezone.now()
    return await _leasing(_update(key, token, reserve, now), key, message and {**message, "now": now})


async def _open(key: ConversationKey, token: str, reserve: int, platform: str, message: dict | None) -> dict | None:
    """A new open conversation of a v1 user, leased to us; None when the user already has an open one (the partial
    unique constraint on open conversations refuses the row)."""
    now = timezone.now()
    insert = (f"INSERT INTO {CONVERSATION} ({_INSERT_COLUMNS}) VALUES ({_INSERT_VALUES}) "
              f"ON CONFLICT DO NOTHING RETURNING {LEASED_ROW}")
    return await _leasing((insert, _insert_params(key, token, reserve, platform, now)), key,
                          message and {**message, "now": now})


async def _take_or_open(key: ConversationKey, token: str, reserve: int, platform: str,
                        message: dict | None) -> dict | None:
    """PostgreSQL, v1: `_take`, else `_open`, else nothing (the open conversation is leased), in one statement —
    a user's first turn costs one round trip too."""
    now = timezone.now()
    update, update_params = _update(key, token, reserve, now)
    insert = (f"INSERT INTO {CONVERSATION} ({_INSERT_COLUMNS}) SELECT {_INSERT_VALUES} "
              f"WHERE NOT EXISTS (SELECT 1 FROM u) ON CONFLICT DO NOTHING RETURNING {LEASED_ROW}")
    sql = f"WITH u AS ({update}), i AS ({insert}), c AS (SELECT * FROM u UNION ALL SELECT * FROM i)"
    params = [*update_params, *_insert_params(key, token, reserve, platform, now)]
    if message is not None:
        message_insert, message_params = _user_message({**message, "now": now}, "c")
        sql, params = f"{sql}, m AS ({message_insert})", [*params, *message_params]
    rows = await db.fetch(f"{sql} SELECT * FROM c", params)
    return row_decode(rows[0]) if rows else None


async def _exists(key: ConversationKey) -> bool:
    where, params = key.where()
    return await db.fetch_one(f"SELECT 1 AS one FROM {CONVERSATION} WHERE {where}", params) is not None


async def lease_acquire(*, key: ConversationKey, token: str, platform: str = "api", reserve_messages: int = 0,
                        user_message: dict | None = None, create: bool = True) -> dict | None:
    """Takes the lease of the conversation (opening a v1 user's if `create`), waiting up to
    CONDUET_TURN_WAIT_SECONDS for a running turn to end, then 409. Returns the conversation row, or None when it
    does not exist and may not be created. `user_message` ({turn_id, action, content, version_id, files?}) is stored in
    the same transaction, at the first of the reserved sequence numbers."""
    deadline = time.monotonic() + settings.CONDUET_TURN_WAIT_SECONDS
    delay = 0.005
    while True:
        opens = create and key.conversation_id is None
        if opens and db.is_postgres():
            row = await _take_or_open(key, token, reserve_messages, platform, user_message)
        else:
            row = await _take(key, token, reserve_messages, user_message)
            if row is None and opens:
                row = await _open(key, token, reserve_messages, platform, user_message)
        if row is not None:
            if row["expired_turn_id"]:
                try:
                    await turn_mark_dead(turn_id=row["expired_turn_id"])
                except Exception:  # the lease is ours now: a failed repair of the transcript must not leak it
                    log.exception("Could not mark the dead turn %s as failed", row["expired_turn_id"])
            return row
        if not await _exists(key):
            if key.conversation_id is not None or not create:
                return None
            continue  # the user's conversation was closed between our two statements: open a new one
        if time.monotonic() >= deadline:
            raise Conflict("Another turn of this conversation is still running; retry when it has finished.")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.05)


RENEW_BATCH = 1000  # leases renewed per statement (two parameters each)


async def leases_renew(*, leases: list[tuple[str, str]]) -> dict[str, str | None]:
    """The heartbeat of every running turn of a process at once: each (conversation id, token) whose lease is still
    that token's gets its expiry pushed on — one statement per thousand turns, not one per turn. Returns
    conversation id → `stop_turn_id` for the leases renewed; a pair missing from it lost its lease."""
    expires = db.when(timezone.now() + timedelta(seconds=lease_seconds()))
    renewed: dict[str, str | None] = {}
    for start in range(0, len(leases), RENEW_BATCH):
        batch = leases[start:start + RENEW_BATCH]
        pairs = ", ".join(["(%s, %s)"] * len(batch))
        rows = await db.fetch(
            f"UPDATE {CONVERSATION} SET lease_expires_at = %s WHERE (id, lease_token) IN (VALUES {pairs}) "
            f"RETURNING id, stop_turn_id", [expires, *(value for pair in batch for value in pair)])
        renewed.update((row["id"], row["stop_turn_id"]) for row in rows)
    return renewed


STATE_ROW = "id, turn, status, version_id, state, created_at, updated_at"  # what the state endpoints show


def release_statement(*, conversation_id: str, token: str, changes: dict,
                      returning: str = STATE_ROW) -> tuple[str, list]:
    """The UPDATE that frees the conversation if the lease is still ours, writing `changes` with it (JSON values
    already adapted with `db.json_param`); RETURNING tells whether it did."""
    assignments = ["lease_token = NULL", "lease_expires_at = NULL", "stop_turn_id = NULL", "updated_at = %s"]
    params: list = [db.when(timezone.now())]
    for column, value in changes.items():
        if column == "turn":
            assignments.append("turn = turn + 1" if value == "+1" else "turn = %s")
            if value != "+1":
                params.append(value)
        else:
            assignments.append(f"{column} = %s")
            params.append(value)
    sql = (f"UPDATE {CONVERSATION} SET {', '.join(assignments)} WHERE id = %s AND lease_token = %s "
           f"RETURNING {returning}")
    return sql, [*params, conversation_id, token]


async def lease_release(*, conversation_id: str, token: str, changes: dict | None = None) -> dict | None:
    """Frees the conversation (writing `changes`) if the lease is still ours; returns its new row, else None."""
    rows = await db.fetch(*release_statement(conversation_id=conversation_id, token=token, changes=changes or {}))
    return row_decode(rows[0]) if rows else None


async def turn_mark_dead(*, turn_id: str) -> None:
    """A turn whose lease expired while it ran (its process died, or the database went away mid-turn): its user
    message stays, and a `failed` reply with no content takes the sequence number it had reserved, so the
    transcript says what happened."""
    await db.fetch(
        f"INSERT INTO {MESSAGE} (id, conversation_id, seq, turn_id, role, status, action, content, traces, "
        f"version_id, created_at) SELECT %s, u.conversation_id, u.seq + 1, u.turn_id, 'assistant', 'failed', NULL, "
        f"'', %s, u.version_id, %s FROM {MESSAGE} u WHERE u.turn_id = %s AND u.role = 'user' AND NOT EXISTS "
        f"(SELECT 1 FROM {MESSAGE} r WHERE r.turn_id = u.turn_id AND r.role = 'assistant')",
        [new_id("msg"), db.json_param([{"type": "error", "payload": {
            "error": "This turn stopped when its server process or database connection was lost.",
            "code": "TURN_LOST"}}]), db.when(timezone.now()), turn_id])
