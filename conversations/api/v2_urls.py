"""The v2 conversations API's paths under /tenants/{tenant}/api/v2/ (API.md §7); the files' and data frames' paths
under a conversation are the files app's (`files/api/urls.py`)."""
from django.urls import path

from conversations.api import v2, v2_turns

urlpatterns = [
    path("agents/<str:aid>/conversations", v2.ConversationListCreateApi.as_view()),
    path("agents/<str:aid>/conversations/<str:cid>", v2.ConversationDetailApi.as_view()),
    path("agents/<str:aid>/conversations/<str:cid>/messages", v2_turns.messages_view),
    path("agents/<str:aid>/conversations/<str:cid>/stream", v2_turns.stream_view),
]
