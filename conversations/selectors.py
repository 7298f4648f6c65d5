"""Reads on conversations for the API."""
from config import db
from conversations.lease import CONVERSATION, ROW, ConversationKey, row_decode


async def conversation_aget(*, key: ConversationKey) -> dict | None:
    """The open conversation (v1) or the conversation (v2) as a row, or None."""
    where, params = key.where()
    return row_decode(await db.fetch_one(f"SELECT {ROW} FROM {CONVERSATION} WHERE {where}", params))
