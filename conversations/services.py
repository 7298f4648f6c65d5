"""Writes on a conversation's session state (PUT/DELETE state, PATCH variables). Each holds the conversation's lease
for its two statements, so it never interleaves with a running turn (it waits, then 409, like a turn). Turns
themselves are `conversations/turns.py`."""
import secrets

from django.utils import timezone

from config import db
from config.api.errors import Conflict
from conversations.lease import ConversationKey, lease_acquire, lease_release
from conversations.turns import API_STATE_KEYS


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
