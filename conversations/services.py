"""Writes on a conversation's session state (PUT/DELETE state, PATCH variables), and v2 conversations' creation and
deletion. Each write on an existing conversation holds its lease, so it never interleaves with a running turn (it
waits, then 409, like a turn). Turns themselves are `conversations/turns.py`."""
import secrets

from asgiref.sync import sync_to_async
from django.db import transaction
from django.utils import timezone

from agents.models import Project
from config import db
from config.api.errors import Conflict, NotFound
from conversations.lease import ConversationKey, lease_acquire, lease_release
from conversations.models import Conversation
from conversations.turns import API_STATE_KEYS
from files.store import conversations_bytes_delete_on_commit

V2_PLATFORM = "v2"


def state_view(row: dict) -> dict:
    """The API's state (API.md §2) from a conversation row."""
    state = row["state"] or {}
    return {
        "versionId": row["version_id"],
        "status": row["status"],
        "turn": row["turn"],
        "variables": state.get("variables") or {},
        "stack": state.get("stack") or [],
        "waiting": state.get("waiting"),
        "history": state.get("history") or [],
        "updatedAt": db.datetime_value(row["updated_at"]).isoformat().replace("+00:00", "Z"),
    }


def _released(row: dict | None) -> dict:
    if row is None:  # only if the lease expired between our two statements (the database stalled for seconds)
        raise Conflict("The conversation changed while it was being written; retry.")
    return state_view(row)


def _token() -> str:
    return f"state_{secrets.token_hex(10)}"


async def conversation_state_replace(*, key: ConversationKey, state: dict) -> dict:
    """PUT /state: the validated state replaces the session's (created if absent), the engine's own keys (the
    agent's phase) included: they start afresh."""
    token = _token()
    row = await lease_acquire(key=key, token=token)
    released = await lease_release(conversation_id=row["id"], token=token, changes={
        "state": db.json_param({k: state[k] for k in API_STATE_KEYS}), "status": state["status"],
        "turn": state["turn"], "version_id": state["versionId"]})
    return _released(released)


async def conversation_variables_merge(*, key: ConversationKey, variables: dict) -> dict:
    """PATCH /variables: merges into `state.variables`, creating the session if absent."""
    token = _token()
    row = await lease_acquire(key=key, token=token)
    state = dict(row["state"] or {})
    state["variables"] = {**(state.get("variables") or {}), **variables}
    released = await lease_release(conversation_id=row["id"], token=token, changes={"state": db.json_param(state)})
    return _released(released)


async def conversation_end(*, key: ConversationKey) -> None:
    """DELETE /state: closes the open conversation (its transcript stays); the next turn starts a new one."""
    token = _token()
    row = await lease_acquire(key=key, token=token, create=False)
    if row is not None:
        await lease_release(conversation_id=row["id"], token=token, changes={
            "closed_at": db.when(timezone.now()), "status": "ended"})


# --- v2 (API.md §7): named conversations

def conversation_v2_create(*, agent: Project, name: str) -> Conversation:
    """A named v2 conversation of the agent. Its `user_id` is its own id: the engine's user (built-in `user_id`) is
    the conversation, which has no end user of its own."""
    conversation = Conversation(project=agent, kind=Conversation.Kind.V2, name=name, platform=V2_PLATFORM)
    conversation.user_id = conversation.id
    conversation.save(force_insert=True)
    return conversation


def _conversation_delete_leased(*, conversation_id: str, token: str) -> Conversation:
    """Deletes the conversation we hold the lease of — its messages, files and data frames with it (the ORM's
    cascade) — and, once that has committed, their stored bytes."""
    with transaction.atomic():
        conversation = Conversation.objects.select_for_update().filter(id=conversation_id, lease_token=token).first()
        if conversation is None:  # our lease expired (the database stalled for seconds) and a turn took it
            raise Conflict("The conversation changed while it was being deleted; retry.")
        conversations_bytes_delete_on_commit(conversation_ids=[conversation_id])
        conversation.delete()
    conversation.id = conversation_id  # Model.delete() clears the primary key; the API shows what was deleted
    return conversation


def conversations_delete(*, conversations) -> None:
    """Deletes these conversations (a queryset: the admin's delete) with their messages, files and data frames, and
    their bytes once that has committed. Unlike the API's delete it takes no lease: an operator's delete wins over
    a running turn, whose reply then has no conversation to be stored in."""
    with transaction.atomic():
        ids = list(conversations.values_list("id", flat=True))
        conversations_bytes_delete_on_commit(conversation_ids=ids)
        Conversation.objects.filter(id__in=ids).delete()


async def conversation_adelete(*, conversation: Conversation) -> Conversation:
    """DELETE of a v2 conversation: under its lease, like the state endpoints, so it never cuts a running turn
    short — a turn holding it makes the delete wait (up to CONDUET_TURN_WAIT_SECONDS), then 409. A turn asked for
    after the delete finds no conversation (404)."""
    token = _token()
    row = await lease_acquire(key=ConversationKey(project_id=conversation.project_id,
                                                  conversation_id=conversation.id), token=token, create=False)
    if row is None:
        raise NotFound(f"Conversation {conversation.id} not found.")
    deleted = await sync_to_async(db.released(_conversation_delete_leased))(conversation_id=conversation.id,
                                                                            token=token)
    return deleted
