"""Operators read conversations here: each conversation's page (v1 session or named v2 conversation) shows its
transcript as chat bubbles, then its uploaded files (each downloadable through an admin-only view) and its data
frames (shape, status or error, first rows). Messages are written only by the turn service, so the admin never adds
or edits them."""
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404
from django.template.loader import render_to_string
from django.urls import path, reverse

from agents.admin import pretty_json
from conversations.models import Conversation, Message
from conversations.services import conversations_delete

FRAME_ROWS = 5  # first rows of each frame the page shows
FRAMES_SHOWN = 50  # frames with their rows on one page (the rest are counted)


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
            elif kind == "tool-call" and payload.get("phase") == "start":
                parts.append({"kind": "tool", "text": payload.get("toolName", "")})
            elif kind == "data_frame":
                parts.append({"kind": "data frame", "text": f"{payload.get('name')} ({payload.get('numRows')} rows)"})
            elif kind in ("end", "handoff", "error", "completion-start"):
                parts.append({"kind": kind, "text": payload.get("reason") or payload.get("error") or ""})
        if message.role == Message.Role.USER:
            action = message.action or {}
            text = message.content or f"[{action.get('type', 'action')}]"
            parts = [{"kind": "text", "text": text}]
        entries.append({"message": message, "parts": [p for p in parts if p["kind"] != "completion-start"],
                        "model": model_summary(message), "tools": tool_summaries(message)})
    return entries


def model_summary(message: Message) -> str:
    """`gpt-4o-mini · 812 + 64 tokens · first token 230 ms` for a reply that called a model, else ""."""
    if not message.model and message.prompt_tokens is None:
        return ""
    tokens = f"{message.prompt_tokens or 0} + {message.completion_tokens or 0} tokens"
    if message.tokens_estimated:
        tokens += " (estimated)"
    first = f" · first token {message.first_token_ms} ms" if message.first_token_ms is not None else ""
    calls = len(message.llm_calls or [])
    return f"{message.model or 'model'} · {tokens}{first}" + (f" · {calls} calls" if calls > 1 else "")


def tool_summaries(message: Message) -> list[str]:
    """One line per tool call of a reply: `lookup_order ok 84 ms`."""
    return [f"{call.get('tool')} {call.get('status')} {call.get('durationMs')} ms"
            + (f": {call['error']}" if call.get("error") else "") for call in message.tool_calls or []]


class MessageInline(admin.TabularInline):
    model = Message
    fields = ["seq", "role", "status", "content", "model", "prompt_tokens", "completion_tokens", "duration_ms",
              "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True
    ordering = ["seq"]
    classes = ["collapse"]

    def has_add_permission(self, request, obj=None):
        return False


def data_entries(conversation: Conversation) -> dict:
    """The conversation's files (each with its admin download URL) and data frames (each ready one with its first
    rows, read from the start of its Parquet), as the template draws them."""
    from files.sql import frame_rows

    files = [{"file": stored, "url": reverse("admin:conversations_conversation_file", args=[stored.pk])}
             for stored in conversation.files.order_by("created_at", "id")]
    frames = list(conversation.data_frames.select_related("file").order_by("created_at", "id"))
    shown = []
    for frame in frames[:FRAMES_SHOWN]:
        try:
            rows = frame_rows(frame, FRAME_ROWS)
        except Exception as exc:  # a Parquet gone or unreadable: the page still opens, and says so
            rows, unreadable = [], f"{type(exc).__name__}: {exc}"
        else:
            unreadable = ""
        shown.append({"frame": frame, "columns": [column.get("name") for column in frame.columns], "rows": rows,
                      "unreadable": unreadable})
    return {"files": files, "frames": shown, "more_frames": max(len(frames) - FRAMES_SHOWN, 0)}


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ["user_id", "kind", "name", "project", "status", "turn", "updated_at", "closed_at"]
    list_filter = ["kind", "status", "platform", "project"]
    list_select_related = ["project"]
    search_fields = ["user_id", "id", "name"]
    date_hierarchy = "created_at"
    fields = ["id", "kind", "name", "project", "user_id", "platform", "status", "version_id", "turn", "created_at",
              "updated_at", "closed_at", "transcript", "files_and_frames", "state_json"]
    readonly_fields = fields
    inlines = [MessageInline]

    def delete_model(self, request, obj):
        conversations_delete(conversations=Conversation.objects.filter(id=obj.id))

    def delete_queryset(self, request, queryset):
        conversations_delete(conversations=queryset)

    def get_urls(self):
        download = path("files/<str:file_ref>/download/", self.admin_site.admin_view(self.file_download),
                        name="conversations_conversation_file")
        return [download, *super().get_urls()]

    def file_download(self, request, file_ref: str):
        """A conversation's file as uploaded, to a staff member who may view conversations (admin_view has checked
        the staff login), as an attachment under its sanitized name."""
        from files.models import StoredFile

        if not self.has_view_permission(request):
            raise PermissionDenied
        stored = StoredFile.objects.filter(pk=file_ref).first()
        if stored is None:
            raise Http404("No such file.")
        try:
            handle = default_storage.open(stored.stored_name, "rb")
        except OSError:
            raise Http404("The file's bytes are missing from storage.") from None
        return FileResponse(handle, as_attachment=True, filename=stored.name,
                            content_type=stored.mime_type or "application/octet-stream")

    @admin.display(description="transcript")
    def transcript(self, conversation):
        return render_to_string("admin/conversations/transcript.html",
                                {"entries": transcript_entries(conversation)})

    @admin.display(description="files and data frames")
    def files_and_frames(self, conversation):
        return render_to_string("admin/conversations/files.html", data_entries(conversation))

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
