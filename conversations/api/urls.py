from django.urls import path

from conversations.api.stream import conversation_interact_stream
from conversations.api.v1 import ConversationInteractApi, ConversationStateApi, ConversationVariablesUpdateApi

urlpatterns = [
    path("v1/conversations/<str:user_id>/interact", ConversationInteractApi.as_view()),
    path("v1/conversations/<str:user_id>/interact/stream", conversation_interact_stream),
    path("v1/conversations/<str:user_id>/state", ConversationStateApi.as_view()),
    path("v1/conversations/<str:user_id>/variables", ConversationVariablesUpdateApi.as_view()),
]
