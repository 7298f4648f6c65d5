"""Running whole turns from sync tests, through the real pipeline (conversations/turns.py)."""
from asgiref.sync import async_to_sync

from agents.runtime import Action
from agents.selectors import agent_spec_aget
from conversations.lease import ConversationKey
from conversations.turns import TurnRequest, turn_start


async def _run(project, action: Action, user: str, version: str) -> tuple[str, list]:
    spec, version_id = await agent_spec_aget(project=project, version=version)
    turn = await turn_start(request=TurnRequest(project=project, key=ConversationKey(project.id, user),
                                                action=action, spec=spec, version_id=version_id))
    return turn.id, [event.data async for event in turn.follow() if not event.done]


def run_turn_now(project, action: Action, *, user: str = "jane", version: str = "development") -> tuple[str, list]:
    """(turn id, traces) of one whole turn."""
    return async_to_sync(_run)(project, action, user, version)


def slow_document(tool_url: str, *, seconds: float = 5, timeout: int | None = None) -> dict:
    """Says a line, calls a slow HTTP tool, then says what it got."""
    settings = {"turnTimeoutSeconds": timeout} if timeout else {}
    return {
        "name": "Slow", "settings": settings,
        "tools": [{"id": "slow", "description": "Takes its time",
                   "http": {"method": "GET", "url": f"{tool_url}/slow?seconds={{{{ seconds }}}}"}}],
        "workflows": [{"id": "wf_main", "name": "Main", "steps": [
            {"id": "start", "type": "start", "data": {}},
            {"id": "before", "type": "message", "data": {"text": "Looking it up…"}},
            {"id": "call", "type": "api", "data": {"tool": "slow", "args": {"seconds": str(seconds)},
                                                   "save": {"slept": "slept"}}},
            {"id": "after", "type": "message", "data": {"text": "Done after {{ slept }} s."}},
            {"id": "failed", "type": "message", "data": {"text": "The lookup failed."}},
        ], "connections": [
            {"source": "start", "port": "next", "target": "before"},
            {"source": "before", "port": "next", "target": "call"},
            {"source": "call", "port": "next", "target": "after"},
            {"source": "call", "port": "error", "target": "failed"},
        ]}],
    }


def say(words: str) -> dict:
    """The body of a turn of typed text."""
    return {"action": {"type": "text", "payload": words}}


def texts(traces: list[dict]) -> list[str]:
    """The messages of a turn's text traces."""
    return [trace["payload"]["message"] for trace in traces if trace["type"] == "text"]
