"""The v1 JSON interact joins a model's streamed reply into one `text` trace (API.md §2) — and ends it where the
reply ends: a message said right after it (an `ai` step followed by `buttons`) is its own trace, not more of the
model's chunks."""
import pytest

from agents.services import project_api_key_create, project_create
from conversations.api.v1 import whole_replies
from tests.conversations.test_v2_stream import LLM_REPLY, walkthrough_document
from tests.fakes.llm_server import Reply

pytestmark = pytest.mark.django_db


def test_a_message_after_a_streamed_reply_is_its_own_trace(workspace, client_for, model):
    project = project_create(workspace=workspace, name="Reconciler", document=walkthrough_document())
    key = project_api_key_create(project=project, name="server")[1]
    model.script(Reply(LLM_REPLY, chunk_size=6))

    response = client_for(key).post("/api/v1/conversations/jane/interact", {"action": {
        "type": "text", "payload": "Walk me through the reconciliation."}}, format="json")

    assert response.status_code == 200, response.content
    assert [(t["type"], t["payload"].get("message")) for t in response.json()] == [
        ("text", "Here is how it goes."), ("text", LLM_REPLY), ("text", "Anything else?"), ("choice", None)]


def chunk(text: str) -> dict:
    return {"type": "text", "payload": {"message": text}}


def test_without_parts_the_chunks_after_completion_start_are_joined():
    traces = [chunk("Hi."), {"type": "completion-start", "payload": {}}, chunk("A "), chunk("reply")]

    assert whole_replies(traces, debug=False) == [chunk("Hi."), chunk("A reply")]
    # with the parts, a message said after the reply (part 3, the reply's chunks being part 2) stands alone
    assert whole_replies([*traces, chunk("Next?")], debug=False, parts=[0, 1, 2, 2, 3]) == [
        chunk("Hi."), chunk("A reply"), chunk("Next?")]
