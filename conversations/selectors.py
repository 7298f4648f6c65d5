"""Reads on conversations for the API."""
import base64
import json
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.db.models import QuerySet

from config import db
from config.api.errors import ApiError, NotFound
from conversations.lease import CONVERSATION, ROW, ConversationKey, row_decode
from conversations.models import Conversation, Message


async def conversation_aget(*, key: ConversationKey) -> dict | None:
    """The open conversation (v1) or the conversation (v2) as a row, or None."""
    where, params = key.where()
    return row_decode(await db.fetch_one(f"SELECT {ROW} FROM {CONVERSATION} WHERE {where}", params))


# --- v2 (API.md §7): named conversations of an agent, addressed by id

def conversations_v2_list(*, agent) -> QuerySet[Conversation]:
    """The agent's v2 conversations (never its v1 sessions), for keyset pagination on (created_at, id)."""
    return Conversation.objects.filter(project=agent, kind=Conversation.Kind.V2)


def conversation_v2_get(*, agent, conversation_id: str) -> Conversation:
    """One v2 conversation of the agent; 404 for anything else — a v1 session's id included, so that the v2 API
    never reaches a v1 user's transcript."""
    conversation = conversations_v2_list(agent=agent).filter(id=conversation_id).first()
    if conversation is None:
        raise NotFound(f"Conversation {conversation_id} not found.")
    return conversation


async def conversation_v2_aget(*, agent, conversation_id: str) -> Conversation:
    return await sync_to_async(db.released(conversation_v2_get))(agent=agent, conversation_id=conversation_id)


@dataclass(frozen=True)
class MessagePage:
    items: list[Message]
    next: str | None

    @property
    def has_more(self) -> bool:
        return self.next is not None


def _seq_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(json.dumps(["seq", seq]).encode()).decode().rstrip("=")


def _seq_from_cursor(cursor: str) -> int:
    try:
        tag, seq = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if tag != "seq" or isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq < 2**31:
            raise ValueError(cursor)
        return seq
    except (ValueError, TypeError):
        raise ApiError("The next cursor is not valid.", details={"next": ["Invalid cursor."]}) from None


def messages_page(*, conversation: Conversation, limit: int, cursor: str | None) -> MessagePage:
    """A page of the conversation's messages, oldest first. The keyset is the message's sequence number, not its
    creation time: a turn's two messages are written at different moments (and a dead turn's reply later still),
    but `seq` says their order, and a new message always comes after every existing one."""
    messages = Message.objects.filter(conversation=conversation).order_by("seq")
    if cursor:
        messages = messages.filter(seq__gt=_seq_from_cursor(cursor))
    rows = list(messages[: limit + 1])
    items = rows[:limit]
    return MessagePage(items=items, next=_seq_cursor(items[-1].seq) if len(rows) > limit else None)


def turn_messages(*, conversation_id: str, turn_id: str) -> list[Message]:
    """The user message and the reply of one turn, in order."""
    return list(Message.objects.filter(conversation_id=conversation_id, turn_id=turn_id).order_by("seq"))


async def turn_messages_aget(*, conversation_id: str, turn_id: str) -> list[Message]:
    return await sync_to_async(db.released(turn_messages))(conversation_id=conversation_id, turn_id=turn_id)
