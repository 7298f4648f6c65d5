"""Reads of a conversation's files and data frames for the v2 API."""
from django.db.models import QuerySet

from agents.authentication import tenant_agent_get
from config.api.errors import Conflict, NotFound
from conversations.models import Conversation
from conversations.selectors import conversation_v2_get
from files.models import DataFrame, StoredFile


def files_conversation_get(*, credential, tenant: str, agent_id: str, conversation_id: str) -> Conversation:
    """The open v2 conversation `conversation_id` of the agent the key reaches in `tenant`, else a 404: a
    conversation of another agent or tenant, a v1 session, or a closed conversation is not revealed."""
    agent = tenant_agent_get(credential, tenant, agent_id)
    conversation = conversation_v2_get(agent=agent, conversation_id=conversation_id)
    if conversation.closed_at is not None:
        raise NotFound(f"Conversation {conversation_id} not found.")
    return conversation


def files_list(*, conversation_id: str) -> QuerySet[StoredFile]:
    return StoredFile.objects.filter(conversation_id=conversation_id)


def file_get(*, conversation_id: str, file_ref: str) -> StoredFile:
    """The file, or a 404 (a ref of another conversation is unknown here)."""
    stored = StoredFile.objects.filter(conversation_id=conversation_id, id=file_ref).first()
    if stored is None:
        raise NotFound(f"File {file_ref} not found in this conversation.")
    return stored


def frames_list(*, conversation_id: str) -> list[DataFrame]:
    """Every frame of the conversation, oldest first (a conversation holds a handful: its uploads' tables and its
    queries' results)."""
    return list(DataFrame.objects.filter(conversation_id=conversation_id).order_by("created_at", "id"))


def frame_get(*, conversation_id: str, name: str) -> DataFrame:
    """The frame named `name`, or a 404."""
    frame = DataFrame.objects.filter(conversation_id=conversation_id, name=name).first()
    if frame is None:
        raise NotFound(f"Data frame {name} not found in this conversation.")
    return frame


def frame_ready_get(*, conversation_id: str, name: str) -> DataFrame:
    """A frame that can be read: a failed one (its file was not a readable table) is a 409 carrying its error."""
    frame = frame_get(conversation_id=conversation_id, name=name)
    if frame.status != DataFrame.Status.READY:
        raise Conflict(f"Data frame {name} could not be made: {frame.error}", details={"name": [frame.error]})
    return frame


