from django.urls import path

from conversations.api import chat, v1

urlpatterns = [
    path("v1/conversations/<str:user_id>/interact", v1.interact_view),
    path("v1/conversations/<str:user_id>/interact/stream", v1.interact_stream_view),
    path("v1/conversations/<str:user_id>/interact/stop", v1.interact_stop_view),
    path("v1/conversations/<str:user_id>/state", v1.state_view),
    path("v1/conversations/<str:user_id>/variables", v1.variables_view),
    path("v1/projects/<str:project_id>/chat", chat.chat_view),
    path("v1/projects/<str:project_id>/chat/stream", chat.chat_stream_view),
]
