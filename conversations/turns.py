"""The turn pipeline (DESIGN.md "Scale"): every surface — v1 interact and interact/stream, later the project chat and
v2 — runs a turn through `turn_start` and only formats the events it follows (a JSON array, or SSE).

    turn = await turn_start(request=…)          # the lease (409 after the wait), the user message: one round trip
    async for event in turn.follow():           # each trace as soon as the engine yields it, then DONE
        …

`turn_start` takes the conversation's lease and stores the user message, then runs the turn in its own task, so
that it runs to its end (bounded by the version's turn timeout) even if the client goes away. The task publishes
every trace as an event to the followers in this process and, once the turn has run longer than
CONDUET_EVENT_FLUSH_SECONDS, to the shared event log that a client resuming on another process reads
(`conversations/events.py`). The process's watcher renews the leases of its running turns and looks for a stop
asked anywhere, for all of them at once.
Completion, failure, timeout, a stop and the loss of the lease all end in `_store`: the reply (with what was
produced) and the conversation's new state are written in one transaction that also frees the lease."""
import asyncio
import contextvars
import logging
import secrets
import time
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass

from asgiref.sync import SyncToAsync
from django.conf import settings
from django.utils import timezone

from agents.ids import new_id
from agents.llm import llm_missing
from agents.models import Project
from agents.ports import aports_for
from agents.runtime import Action, AgentSpec, run_turn
from agents.runtime.ports import UpstreamError
from config import db
from config.api.errors import NotFound
from config.api.sse import DONE
from config.metrics import TURN_SECONDS, TURNS
from conversations import events as event_log
from conversations.lease import MESSAGE, ConversationKey, lease_acquire, leases_renew, release_statement

log = logging.getLogger("conduet.turns")

API_STATE_KEYS = ("variables", "stack", "waiting", "history")  # the session state of the API (API.md §2)
# ... plus what only the engine reads back: the agent's phase and its own counters (handoffs).
ENGINE_STATE_KEYS = (*API_STATE_KEYS, "phase", "agent")
COMPLETE, INTERRUPTED, FAILED = "complete", "interrupted", "failed"


def new_turn_id() -> str:
    return f"turn_{secrets.token_hex(10)}"


@dataclass(frozen=True)
class TurnRequest:
    project: Project
    key: ConversationKey
    action: Action
    spec: AgentSpec
    version_id: str
    debug: bool = False
    exclude_types: frozenset[str] = frozenset()
    platform: str = "api"
    files: tuple[str, ...] = ()  # the file_refs attached to the user's message (v2), stored with it


@dataclass(frozen=True)
class TurnEvent:
    """One event of a turn's stream: a trace (or the error that ended it), or DONE. `seq` is the trace's place in
    the turn (1-based), so the SSE id `<turnId>:<seq>` names the same event on every process and in the replay."""

    seq: int
    data: dict | str
    # A text trace's message in the reply: the engine's count of messages said when it was yielded. A model's chunks
    # share one; a message said after a streamed reply starts another — which the traces alone cannot tell (v2's
    # deltas put a newline there, as the stored content does).
    part: int = 0

    @property
    def done(self) -> bool:
        return self.data == DONE


def user_content(action: Action) -> str:
    payload = action.payload
    if action.type == "text":
        return payload
    if action.type == "button":
        return str(payload.get("label", ""))
    if action.type == "media":
        return str(payload.get("url", ""))
    return ""


def engine_state(row: dict) -> dict:
    state = {key: row["state"].get(key) for key in ENGINE_STATE_KEYS if key in row["state"]}
    if row["status"] == "ended":
        # The last turn reached an end step: this one starts over, keeping what is known about the user.
        state = {"variables": state.get("variables", {}), "history": state.get("history", [])}
    return state


def error_trace(message: str, code: str) -> dict:
    return {"type": "error", "payload": {"error": message, "code": code}}


_running: dict[str, "RunningTurn"] = {}  # the turns this process runs, by id (a strong reference to each task)


def running_turn(turn_id: str) -> "RunningTurn | None":
    """The turn if it runs in this process."""
    return _running.get(turn_id)


class RunningTurn:
    def __init__(self, request: TurnRequest, turn_id: str):
        self.request = request
        self.id = turn_id
        self.conversation: dict = {}
        self.user_seq = 0
        self.leased: asyncio.Future = asyncio.get_running_loop().create_future()
        self.events: list[TurnEvent] = []
        self.status: str | None = None  # once stored
        self._wake = asyncio.Event()
        self._stop_reason: str | None = None
        self._engine_running = False
        self._engine = None
        self._flushed = 0  # events[:_flushed] are in the shared log (or were tried)
        self._flush_handle: asyncio.TimerHandle | None = None
        self._flushing: asyncio.Task | None = None
        self._started = time.perf_counter()
        self._first_trace_ms: int | None = None
        self.task: asyncio.Task | None = None

    # --- followers

    async def follow(self, *, after: int = 0, idle: float | None = None) -> AsyncIterator[TurnEvent | None]:
        """The events after `after`, as they come, ending with DONE; None whenever nothing came for `idle` s."""
        index = 0
        while True:
            while index < len(self.events):
                event = self.events[index]
                index += 1
                if event.seq > after:
                    yield event
                if event.done:
                    return
            wake = self._wake
            try:
                await asyncio.wait_for(wake.wait(), timeout=idle)
            except TimeoutError:
                yield None

    def _publish(self, data) -> None:
        if self._first_trace_ms is None:
            self._first_trace_ms = int((time.perf_counter() - self._started) * 1000)
        said = getattr(self._engine, "said", None)
        self.events.append(TurnEvent(len(self.events) + 1, data, len(said) if said is not None else 0))
        wake, self._wake = self._wake, asyncio.Event()
        wake.set()
        if self._flush_handle is None and self._flushing is None and data != DONE:
            self._schedule_flush()

    def _schedule_flush(self) -> None:
        """Events reach the shared log in batches, once the turn has outlived the flush delay: a turn that never
        waits on I/O finishes first and never writes it."""
        elapsed = time.perf_counter() - self._started
        delay = max(settings.CONDUET_EVENT_FLUSH_SECONDS - elapsed, 0)
        self._flush_handle = asyncio.get_running_loop().call_later(delay, self._start_flush)

    def _start_flush(self) -> None:
        self._flush_handle = None
        self._flushing = asyncio.create_task(self._flush())

    async def _flush(self) -> None:
        batch = [(e.seq, e.data) for e in self.events[self._flushed:] if not e.done]
        self._flushed = len(self.events)
        try:
            await event_log.log_append(self.id, batch)
        except Exception:
            log.warning("Could not write the event log of turn %s", self.id, exc_info=True)
        finally:
            self._flushing = None
        if len(self.events) > self._flushed and not self.events[-1].done:
            self._schedule_flush()

    # --- the turn

    def stop(self, reason: str) -> None:
        """Cancels the engine where it is (between steps, or in an awaited call); `_run` then stores the turn."""
        if self._stop_reason is None and self._engine_running:
            self._stop_reason = reason
            self.task.cancel()

    async def _drive(self) -> None:
        request, conversation = self.request, self.conversation
        self._engine = run_turn(
            request.spec, engine_state(conversation), request.action,
            ports=await aports_for(request.spec, conversation["id"]),
            context={"user_id": conversation["user_id"], "platform": conversation["platform"],
                     "timestamp": timezone.now().isoformat(), "turn": conversation["turn"] + 1,
                     "llm_missing": llm_missing(request.spec),
                     "max_tool_rounds": settings.CONDUET_AGENT_MAX_TOOL_ROUNDS,
                     "history_tokens": settings.CONDUET_AGENT_HISTORY_TOKENS},
            debug=request.debug,
        )
        async for trace in self._engine:
            self._publish(trace)

    async def _lease(self) -> bool:
        """Takes the lease and stores the user message; `leased` tells `turn_start` how that went."""
        request, action = self.request, self.request.action
        try:
            conversation = await lease_acquire(
                key=request.key, token=self.id, platform=request.platform, reserve_messages=2,
                user_message={"turn_id": self.id, "action": {"type": action.type, "payload": action.payload},
                              "content": user_content(action), "version_id": request.version_id,
                              "files": list(request.files)},
            )
            if conversation is None:
                raise NotFound("Conversation not found.")
        except BaseException as exc:
            _running.pop(self.id, None)
            self.leased.set_exception(exc)
            self.leased.exception()  # retrieved here: the client that asked may be gone
            return False
        self.conversation, self.user_seq = conversation, conversation["message_seq"] - 1
        self._started = time.perf_counter()
        self.leased.set_result(None)
        return True

    async def _run(self) -> None:
        """The turn's task, from the lease to the stored reply. A stop cancels this task while the engine runs:
        the cancellation is caught here (and taken back with `uncancel`), so that what was produced is stored like
        any other ending. The turn joins the process's watcher only if it is still running after the first poll
        interval: a fast turn costs it nothing."""
        if not await self._lease():
            return
        timeout = self.request.spec.turn_timeout_seconds or settings.CONDUET_TURN_TIMEOUT_SECONDS
        loop = asyncio.get_running_loop()
        watch_later = loop.call_later(settings.CONDUET_STOP_POLL_SECONDS, self._join_watch)
        status, shutting_down = COMPLETE, False
        self._engine_running = True
        try:
            async with asyncio.timeout(timeout):
                await self._drive()
        except TimeoutError:
            status = FAILED
            self._publish(error_trace(f"This turn ran past its time limit of {timeout} s.", "TURN_TIMEOUT"))
        except UpstreamError as exc:  # the model (or another upstream) failed after its retries
            log.warning("Turn %s: upstream failure: %s", self.id, exc.message)
            status = FAILED
            self._publish(error_trace(exc.message, "UPSTREAM_ERROR"))
        except asyncio.CancelledError:
            status = INTERRUPTED
            shutting_down = self._stop_reason is None  # cancelled by no stop of ours: the process is stopping
            if not shutting_down:
                asyncio.current_task().uncancel()
        except Exception:
            log.exception("Turn %s failed", self.id)
            status = FAILED
            self._publish(error_trace("The turn failed because of an internal error.", "INTERNAL"))
        finally:
            self._engine_running = False
            watch_later.cancel()
            _watcher().leave(self)
        try:
            await self._store(status)
        except Exception:
            log.exception("Could not store turn %s; its lease expires on its own", self.id)
            if not self.events or self.events[-1].data["type"] != "error":
                self._publish(error_trace("The reply could not be stored.", "INTERNAL"))
            self.status = FAILED
        finally:
            await self._close()
        if shutting_down:
            raise asyncio.CancelledError

    def _join_watch(self) -> None:
        if self._engine_running:
            _watcher().join(self)

    async def _store(self, status: str) -> None:
        """The reply (what was produced) and, for a complete turn, the new state — one transaction that frees the
        lease only if it is still ours. A turn that lost its lease keeps its reply, marked interrupted, and does
        not overwrite the newer state."""
        traces = [event.data for event in self.events]
        engine = self._engine
        if status == COMPLETE:
            content = engine.reply_text
            conversation_status = "ended" if engine.ended else "handoff" if engine.handoff else "active"
            changes = {"state": db.json_param(engine.state), "turn": "+1", "status": conversation_status,
                       "version_id": self.request.version_id}
        else:
            # What was said before the end, one line a message, like a complete turn's `reply_text`.
            content = engine.reply_text if engine is not None else ""
            changes = {}
        message_id = new_id("msg")
        duration_ms = int((time.perf_counter() - self._started) * 1000)
        cost = _cost(engine)
        insert = (f"INSERT INTO {MESSAGE} (id, conversation_id, seq, turn_id, role, status, action, content, traces, "
                  f"version_id, duration_ms, first_trace_ms, model, prompt_tokens, completion_tokens, "
                  f"tokens_estimated, first_token_ms, llm_calls, tool_calls, created_at) "
                  f"VALUES (%s, %s, %s, %s, 'assistant', %s, NULL, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)")
        insert_params = [message_id, self.conversation["id"], self.user_seq + 1, self.id, status, content,
                         db.json_param(traces), self.request.version_id, duration_ms, self._first_trace_ms,
                         cost["model"], cost["prompt_tokens"], cost["completion_tokens"], cost["tokens_estimated"],
                         cost["first_token_ms"], cost["llm_calls"], cost["tool_calls"], db.when(timezone.now())]
        release, release_params = release_statement(conversation_id=self.conversation["id"], token=self.id,
                                                    changes=changes, returning="id")
        if db.is_postgres():  # one statement: the reply is written whether or not the lease is still ours
            released = await db.fetch(f"WITH m AS ({insert}) {release}", [*insert_params, *release_params])
        else:
            _inserted, released = await db.run([(insert, insert_params), (release, release_params)], atomic=True)
        if not released:
            status = INTERRUPTED
            await db.fetch(f"UPDATE {MESSAGE} SET status = %s WHERE id = %s", [INTERRUPTED, message_id])
        self.status = status
        TURNS.labels(status).inc()
        TURN_SECONDS.observe(duration_ms / 1000)

    async def _close(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if self._flushing is not None:
            await asyncio.wait({self._flushing})
        if self._flushed:  # readers on other processes may be waiting on the log: wake them
            try:
                await event_log.log_close(self.id)
            except Exception:
                log.warning("Could not close the event log of turn %s", self.id, exc_info=True)
        self._publish(DONE)
        _running.pop(self.id, None)


def _cost(engine) -> dict:
    """The reply message's record of the model and tool calls the engine made (its sums, and each call)."""
    llm_calls = list(getattr(engine, "llm_calls", None) or [])
    tool_calls = list(getattr(engine, "tool_calls", None) or [])
    if not llm_calls:
        return {"model": "", "prompt_tokens": None, "completion_tokens": None, "tokens_estimated": False,
                "first_token_ms": None, "llm_calls": None, "tool_calls": db.json_param(tool_calls) if tool_calls
                else None}
    return {
        "model": llm_calls[-1].get("model") or "",
        "prompt_tokens": sum(call.get("promptTokens") or 0 for call in llm_calls),
        "completion_tokens": sum(call.get("completionTokens") or 0 for call in llm_calls),
        "tokens_estimated": any(call.get("estimated") for call in llm_calls),
        "first_token_ms": llm_calls[0].get("firstTokenMs"),
        "llm_calls": db.json_param(llm_calls),
        "tool_calls": db.json_param(tool_calls) if tool_calls else None,
    }


class _Watcher:
    """The one watcher of a process (of its event loop) for every turn running longer than a poll interval: each
    poll it looks for the stops asked of all of them at once (one Redis `MGET`, or one SELECT), and each beat — a
    third of the lease — renews all their leases in one statement. Its work per interval does not grow with the
    number of running turns (a per-turn watcher cost 4,000 Redis calls a second at 1,000 open streams)."""

    def __init__(self):
        self.turns: dict[str, RunningTurn] = {}
        self.task: asyncio.Task | None = None

    def join(self, turn: "RunningTurn") -> None:
        self.turns[turn.id] = turn
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._run(), name="turn-watcher", context=_outliving_context())

    def leave(self, turn: "RunningTurn") -> None:
        self.turns.pop(turn.id, None)

    def _running(self) -> list["RunningTurn"]:
        return [turn for turn in self.turns.values() if turn._engine_running]

    async def _run(self) -> None:
        beat = settings.CONDUET_LEASE_SECONDS / 3
        last_beat = time.monotonic()
        first = True
        while self.turns:
            if not first:
                await asyncio.sleep(min(settings.CONDUET_STOP_POLL_SECONDS, beat))
            first = False
            try:
                if time.monotonic() - last_beat >= beat:
                    last_beat = time.monotonic()
                    await self._renew()
                await self._look_for_stops()
            except Exception:  # the database is away for a moment: keep running, the leases say how long
                log.warning("Could not renew the leases of %d running turns", len(self.turns), exc_info=True)

    async def _renew(self) -> None:
        turns = self._running()
        if not turns:
            return
        renewed = await leases_renew(leases=[(turn.conversation["id"], turn.id) for turn in turns])
        asked = {turn.id for turn in turns}
        for turn in self._running():  # the turns still running once the statement is back
            if turn.id not in asked:
                continue
            if turn.conversation["id"] not in renewed:
                log.warning("Turn %s lost its lease (it ran past it); stopping it", turn.id)
                turn.stop("lease lost")
            elif renewed[turn.conversation["id"]] == turn.id:
                turn.stop("stopped")

    async def _look_for_stops(self) -> None:
        turns = self._running()
        if not turns:
            return
        if event_log.redis_configured():
            stopped = await event_log.stops_signalled([turn.id for turn in turns])
        else:
            marks = ", ".join(["%s"] * len(turns))
            rows = await db.fetch(f"SELECT stop_turn_id FROM conversations_conversation WHERE id IN ({marks}) "
                                  f"AND stop_turn_id IS NOT NULL", [turn.conversation["id"] for turn in turns])
            stopped = {row["stop_turn_id"] for row in rows}
        for turn in turns:
            if turn.id in stopped:
                turn.stop("stopped")


_watchers: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Watcher]" = weakref.WeakKeyDictionary()


def _watcher() -> _Watcher:
    loop = asyncio.get_running_loop()
    watcher = _watchers.get(loop)
    if watcher is None:
        watcher = _watchers[loop] = _Watcher()
    return watcher


def _outliving_context() -> contextvars.Context:
    """The context of a turn's task: the request's, but not its thread-sensitive context. Django gives each request
    a thread for its sync work and shuts it down with the response; a turn outlives its request (a client that
    left), so its sync work (SQL on SQLite) goes to the process's own sync thread instead."""
    context = contextvars.copy_context()
    context.run(SyncToAsync.thread_sensitive_context.set, None)
    return context


async def turn_start(*, request: TurnRequest) -> RunningTurn:
    """Starts the turn's task, which takes the lease (409 after the wait; 404 for a conversation id that does not
    exist) and stores the user message; raises before the first event, so a view can answer with a plain error.
    Once the lease is taken the turn runs to its end, even if the client that asked for it has already gone."""
    turn = RunningTurn(request, new_turn_id())
    _running[turn.id] = turn
    turn.task = asyncio.create_task(turn._run(), name=turn.id, context=_outliving_context())
    await asyncio.shield(turn.leased)
    return turn
