"""The lease on a conversation (DESIGN.md "Persistence rules"): a token and an expiry written by one conditional
statement, so two turns of one user never interleave and no transaction is held while a turn runs.

A turn's hot path is a handful of statements, so the two that take a lease each do their work in one round trip:
`UPDATE … RETURNING` takes the lease of the open conversation and reads it back, and `INSERT … ON CONFLICT DO
NOTHING RETURNING` opens a new conversation already leased. Both are plain SQL that PostgreSQL and SQLite (3.35+)
share; Django's ORM has no UPDATE … RETURNING."""
import secrets
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from agents.models import Project
from config.api.errors import Conflict
from conversations.models import Conversation

LEASE_MARGIN = timedelta(seconds=30)
DEFAULT_TURN_TIMEOUT = 120


def turn_timeout(project: Project) -> int:
    value = (project.document.get("settings") or {}).get("turnTimeoutSeconds")
    return value if isinstance(value, int) and value > 0 else DEFAULT_TURN_TIMEOUT


def _returning() -> str:
    return ", ".join(connection.ops.quote_name(f.column) for f in Conversation._meta.concrete_fields)


def _when(value: datetime):
    return connection.ops.adapt_datetimefield_value(value)


def _one(sql: str, params: list) -> Conversation | None:
    rows = list(Conversation.objects.raw(sql, params))
    return rows[0] if rows else None


def _take(project: Project, user_id: str, token: str, now: datetime, expires: datetime, reserve: int):
    """The open conversation with its lease now ours, if it had none or an expired one."""
    table = connection.ops.quote_name(Conversation._meta.db_table)
    return _one(
        f"UPDATE {table} SET lease_token = %s, lease_expires_at = %s, message_seq = message_seq + %s "
        f"WHERE project_id = %s AND user_id = %s AND closed_at IS NULL "
        f"AND (lease_token IS NULL OR lease_expires_at < %s) RETURNING {_returning()}",
        [token, _when(expires), reserve, project.id, user_id, _when(now)],
    )


def _open_leased(project: Project, user_id: str, platform: str, token: str, now: datetime, expires: datetime,
                 reserve: int) -> Conversation | None:
    """A new open conversation, leased to us; None when the user already has an open one (the partial unique
    constraint on open conversations refuses the row)."""
    row = Conversation(project=project, user_id=user_id, platform=platform, lease_token=token,
                       lease_expires_at=expires, message_seq=reserve, created_at=now, updated_at=now)
    fields = Conversation._meta.concrete_fields
    values = [field.get_db_prep_save(field.pre_save(row, add=False), connection) for field in fields]
    table = connection.ops.quote_name(Conversation._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    marks = ", ".join(["%s"] * len(fields))
    return _one(f"INSERT INTO {table} ({columns}) VALUES ({marks}) ON CONFLICT DO NOTHING RETURNING {_returning()}",
                values)


def lease_acquire(*, project: Project, user_id: str, platform: str = "api", reserve_messages: int = 0,
                  create: bool = True) -> tuple[Conversation | None, str]:
    """Takes the lease of the user's open conversation (opening one if `create`), waiting up to
    CONDUET_TURN_WAIT_SECONDS for a running turn to end, then 409. `reserve_messages` sequence numbers are taken
    in the same statement, so a crashed turn can never make the next one reuse its numbers."""
    token = secrets.token_hex(16)
    ttl = timedelta(seconds=turn_timeout(project)) + LEASE_MARGIN
    deadline = time.monotonic() + settings.CONDUET_TURN_WAIT_SECONDS
    delay = 0.005
    while True:
        now = timezone.now()
        conversation = _take(project, user_id, token, now, now + ttl, reserve_messages)
        if conversation is None and create:
            conversation = _open_leased(project, user_id, platform, token, now, now + ttl, reserve_messages)
        if conversation is not None:
            return conversation, token
        if not create and not Conversation.objects.filter(project=project, user_id=user_id,
                                                          closed_at__isnull=True).exists():
            return None, token
        if time.monotonic() >= deadline:
            raise Conflict("Another turn for this user is still running; retry when it has finished.")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def lease_release(conversation: Conversation, token: str, **changes) -> bool:
    """Frees the conversation, writing `changes` with it, if the lease is still ours."""
    changes.setdefault("updated_at", timezone.now())
    released = Conversation.objects.filter(pk=conversation.pk, lease_token=token).update(
        lease_token=None, lease_expires_at=None, **changes
    )
    return bool(released)
