"""Turns and session state. A turn holds the conversation's lease (`conversations/lease.py`), not a transaction:
the user message is stored when the turn starts, the agent message and the new state when it ends, so a stream
that lasts minutes pins no connection."""
import logging
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.db.models import F
from django.utils import timezone

from agents.models import Project
from agents.runtime import Action, AgentSpec, run_turn
from agents.selectors import agent_spec_get
from config.api.errors import Conflict
from conversations.lease import lease_acquire, lease_release
from conversations.models import Conversation, Message

log = logging.getLogger("conduet.turns")

ENGINE_STATE_KEYS = ("variables", "stack", "waiting", "history")


@dataclass(frozen=True)
class TurnRequest:
    project: Project
    user_id: str
    action: Action
    version: str = "development"
    debug: bool = False
    exclude_types: frozenset[str] = frozenset()
    platform: str = "api"


def _engine_state(conversation: Conversation) -> dict:
    state = {key: conversation.state.get(key) for key in ENGINE_STATE_KEYS if key in conversation.state}
    if conversation.status == Conversation.Status.ENDED:
        # The last turn reached an end step: this one starts over, keeping what is known about the user.
        state = {"variables": state.get("variables", {}), "history": state.get("history", [])}
    return state


@dataclass
class ActiveTurn:
    """A turn that holds its conversation's lease. Iterate `run()` for the traces, then call `finish()`; on any
    fault call `fail()`, which stores what was produced and releases the lease."""

    request: TurnRequest
    conversation: Conversation
    token: str
    spec: AgentSpec
    version_id: str
    user_seq: int
    id: str = field(default_factory=lambda: f"turn_{secrets.token_hex(10)}")
    traces: list[dict] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)
    first_trace_ms: int | None = None
    _engine_turn: object = None
    _done: bool = False

    def run(self) -> Iterator[dict]:
        conversation = self.conversation
        engine_turn = run_turn(
            self.spec,
            _engine_state(conversation),
            self.request.action,
            context={
                "user_id": conversation.user_id,
                "platform": conversation.platform,
                "timestamp": timezone.now().isoformat(),
                "turn": conversation.turn + 1,
            },
            debug=self.request.debug,
        )
        self._engine_turn = engine_turn
        for trace in engine_turn:
            if self.first_trace_ms is None:
                self.first_trace_ms = int((time.perf_counter() - self.started) * 1000)
            self.traces.append(trace)
            if trace["type"] not in self.request.exclude_types:
                yield trace

    def finish(self) -> Message:
        engine_turn = self._engine_turn
        if engine_turn is None:
            raise RuntimeError("finish() before run() completed")
        status = Conversation.Status.ACTIVE
        if engine_turn.ended:
            status = Conversation.Status.ENDED
        elif engine_turn.handoff:
            status = Conversation.Status.HANDOFF
        return self._store(Message.Status.COMPLETE, content=engine_turn.reply_text, changes={
            "state": engine_turn.state, "turn": F("turn") + 1, "status": status, "version_id": self.version_id,
        })

    def fail(self, status: str = Message.Status.FAILED) -> Message | None:
        """Stores what was produced (the session state is left as it was) and frees the conversation."""
        if self._done:
            return None
        content = "".join(t["payload"].get("message", "") for t in self.traces if t["type"] == "text")
        try:
            return self._store(status, content=content, changes={})
        except Exception:
            log.exception("Could not store the reply of turn %s; releasing its lease", self.id)
            self._done = True
            lease_release(self.conversation, self.token)
            return None

    def _store(self, status: str, *, content: str, changes: dict) -> Message:
        """The reply first, then the state with the lease's release: two autocommit statements, no transaction.
        The reply's sequence number was reserved with the lease, so it cannot collide; if the lease was lost (the
        turn outlived its timeout and a newer turn took over) the reply is kept, marked interrupted, and its state
        is not saved."""
        message = Message.objects.create(
            conversation=self.conversation, seq=self.user_seq + 1, turn_id=self.id,
            role=Message.Role.ASSISTANT, status=status, content=content, traces=self.traces,
            version_id=self.version_id, duration_ms=int((time.perf_counter() - self.started) * 1000),
            first_trace_ms=self.first_trace_ms,
        )
        self._done = True
        try:
            released = lease_release(self.conversation, self.token, **changes)
        except Exception:
            lease_release(self.conversation, self.token)  # the state is not saved, but nobody is locked out
            raise
        if not released:
            Message.objects.filter(pk=message.pk).update(status=Message.Status.INTERRUPTED)
            raise Conflict("This turn ran past its time limit and lost the conversation to a newer turn.")
        return message


def _user_content(action: Action) -> str:
    payload = action.payload
    if action.type == "text":
        return payload
    if action.type == "button":
        return str(payload.get("label", ""))
    if action.type == "media":
        return str(payload.get("url", ""))
    return ""


def turn_begin(*, request: TurnRequest) -> ActiveTurn:
    """Resolves the version (404), takes the lease (409 after the wait) and stores the user's message."""
    spec, version_id = agent_spec_get(project=request.project, version=request.version)
    conversation, token = lease_acquire(
        project=request.project, user_id=request.user_id, platform=request.platform, reserve_messages=2
    )
    user_seq = conversation.message_seq - 1
    turn = ActiveTurn(request=request, conversation=conversation, token=token, spec=spec, version_id=version_id,
                      user_seq=user_seq)
    try:
        Message.objects.create(
            conversation=conversation, seq=user_seq, turn_id=turn.id, role=Message.Role.USER,
            action={"type": request.action.type, "payload": request.action.payload},
            content=_user_content(request.action), version_id=version_id,
        )
    except Exception:
        lease_release(conversation, token)
        raise
    return turn


def turn_run(*, request: TurnRequest) -> tuple[ActiveTurn, list[dict]]:
    """One whole turn, for the JSON endpoints: the traces to return (excluded types filtered out)."""
    turn = turn_begin(request=request)
    try:
        traces = list(turn.run())
    except BaseException:
        log.exception("Turn %s failed", turn.id)
        turn.fail()
        raise
    turn.finish()
    return turn, traces


# --- Session state (GET/PUT/DELETE state, PATCH variables)

def state_view(conversation: Conversation) -> dict:
    state = conversation.state or {}
    return {
        "versionId": conversation.version_id,
        "status": conversation.status,
        "turn": conversation.turn,
        "variables": state.get("variables") or {},
        "stack": state.get("stack") or [],
        "waiting": state.get("waiting"),
        "history": state.get("history") or [],
        "updatedAt": conversation.updated_at.isoformat().replace("+00:00", "Z"),
    }


@contextmanager
def _leased(project: Project, user_id: str, *, platform: str = "api", create: bool = True):
    conversation, token = lease_acquire(project=project, user_id=user_id, platform=platform, create=create)
    changes: dict = {}
    try:
        yield conversation, changes
    finally:
        if conversation is not None:
            try:
                lease_release(conversation, token, **changes)
            except Exception:
                lease_release(conversation, token)  # never leave the user locked out because a write failed
                raise


def conversation_state_replace(*, project: Project, user_id: str, state: dict) -> dict:
    """PUT /state: the validated state replaces the session's (created if absent)."""
    with _leased(project, user_id) as (conversation, changes):
        changes.update(
            state={key: state[key] for key in ENGINE_STATE_KEYS},
            status=state["status"], turn=state["turn"], version_id=state["versionId"],
        )
    conversation.refresh_from_db()
    return state_view(conversation)


def conversation_variables_merge(*, project: Project, user_id: str, variables: dict) -> dict:
    """PATCH /variables: merges into `state.variables`, creating the session if absent."""
    with _leased(project, user_id) as (conversation, changes):
        state = dict(conversation.state or {})
        state["variables"] = {**(state.get("variables") or {}), **variables}
        changes["state"] = state
    conversation.refresh_from_db()
    return state_view(conversation)


def conversation_end(*, project: Project, user_id: str) -> None:
    """DELETE /state: closes the open conversation (its transcript stays); the next turn starts a new one."""
    with _leased(project, user_id, create=False) as (conversation, changes):
        if conversation is not None:
            now = timezone.now()
            changes.update(closed_at=now, status=Conversation.Status.ENDED)
