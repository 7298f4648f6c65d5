"""Reads on conversations for the API."""
from agents.models import Project
from conversations.models import Conversation


def conversation_open_get(*, project: Project, user_id: str) -> Conversation | None:
    return Conversation.objects.filter(project=project, user_id=user_id, closed_at__isnull=True).first()
