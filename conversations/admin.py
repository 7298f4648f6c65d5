"""Operators read conversations here: each conversation's page shows its transcript as chat bubbles. Messages are
written only by the turn service, so the admin never adds or edits them."""
from django.contrib import admin
from django.template.loader import render_to_string

from agents.admin import pretty_json
from conversations.models import Conversation, Message


def transcript_entries(conversation: Conversation) -> list[dict]:
    """The transcript as the template draws it: one entry per message, with the parts of its traces."""
    entries = []
    for message in conversation.messages.order_by("seq"):
        parts = []
        for trace in message.traces or []:
            kind, payload = trace.get("type"), trace.get("payload") or {}
            if kind == "text":
                if parts and parts[-1]["kind"] == "text" and parts[-1].get("chunk"):
                    parts[-1]["text"] += payload.get("message", "")  # streamed chunks read as one reply
                else:
                    parts.append({"kind": "text", "text": payload.get("message", ""),
                                  "chunk": bool(parts and parts[-1]["kind"] == "completion-start")})
            elif kind == "choice":
                parts.append({"kind": "choice", "labels": [b.get("label") for b in payload.get("buttons", [])]})
            elif kind == "visual":
                parts.append({"kind": "visual", "url": payload.get("url"), "alt": payload.get("alt")})
            elif kind in ("end", "handoff", "error", "completion-start"):
                parts.append({"kind": kind, "text": payload.get("reason") or payload.get("error") or ""})
        if message.role == Message.Role.USER:
            action = message.action or {}
            text = message.content or f"[{action.get('type', 'action')}]"
            parts = [{"kind": "text", "text": text}]
        entries.append({"message": message, "parts": [p for p in parts if p["kind"] != "completion-start"]})
    return entries


class MessageInline(admin.TabularInline):
    model = Message
    fields = ["seq", "role", "status", "content", "duration_ms", "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True
    ordering = ["seq"]
    classes = ["collapse"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ["user_id", "project", "status", "turn", "updated_at", "closed_at"]
    list_filter = ["status", "platform", "project"]
    list_select_related = ["project"]
    search_fields = ["user_id", "id"]
    date_hierarchy = "created_at"
    fields = ["id", "project", "user_id", "platform", "status", "version_id", "turn", "created_at", "updated_at",
              "closed_at", "transcript", "state_json"]
    readonly_fields = fields
    inlines = [MessageInline]

    @admin.display(description="transcript")
    def transcript(self, conversation):
        return render_to_string("admin/conversations/transcript.html",
                                {"entries": transcript_entries(conversation)})

    @admin.display(description="state")
    def state_json(self, conversation):
        return pretty_json(conversation.state)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # the page is read-only: state changes go through the API's services


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ["conversation", "seq", "role", "status", "content", "created_at"]
    list_filter = ["role", "status"]
    list_select_related = ["conversation"]
    search_fields = ["conversation__id", "conversation__user_id", "content"]
    readonly_fields = [f.name for f in Message._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
