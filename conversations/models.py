"""Conversations and their messages: a v1 session of a project's end user, or a named v2 conversation of an agent —
one model, one engine, one store."""
from functools import partial

from django.db import models
from django.db.models import Q

from agents.ids import new_id
from agents.models import Project


class Conversation(models.Model):
    """One session of (project, user_id). `state` holds the engine's part of the session (variables, stack, waiting,
    history); `turn` counts completed turns. A running turn holds the lease (token + expiry) instead of a database
    transaction. DELETE /state closes the conversation (`closed_at`); its transcript stays, the next turn opens a new
    one, so at most one open v1 conversation exists per (project, user_id). A v2 conversation (`kind` v2) is named
    and addressed by its id; its `user_id` is its own id, which the engine sees as the user."""

    class Status(models.TextChoices):
        ACTIVE = "active"
        ENDED = "ended"
        HANDOFF = "handoff"

    class Kind(models.TextChoices):
        V1 = "v1", "v1 session (project, user id)"
        V2 = "v2", "v2 named conversation"

    id = models.CharField(primary_key=True, max_length=32, default=partial(new_id, "conv"), editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="conversations")
    # A database default too: the lease's raw INSERT (a v1 user's first turn) names neither column.
    kind = models.CharField(max_length=2, choices=Kind.choices, default=Kind.V1, db_default=Kind.V1)
    name = models.CharField(max_length=200, blank=True, default="", db_default="",
                            help_text="a v2 conversation's name")
    user_id = models.CharField(max_length=128)
    platform = models.CharField(max_length=32, default="api")
    version_id = models.CharField(max_length=32, default="development")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    state = models.JSONField(default=dict, blank=True)
    turn = models.PositiveIntegerField(default=0)
    message_seq = models.PositiveIntegerField(default=0, help_text="sequence number of the last message")
    lease_token = models.CharField(max_length=32, null=True, blank=True, editable=False)  # noqa: DJ001 (NULL = no lease)
    lease_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    stop_turn_id = models.CharField(  # noqa: DJ001 (NULL = no stop asked)
        max_length=32, null=True, blank=True, editable=False, help_text="the running turn a client asked to stop")
    expired_turn_id = models.CharField(  # noqa: DJ001 (NULL = the last lease was released)
        max_length=32, null=True, blank=True, editable=False,
        help_text="the turn whose lease had expired when the current lease was taken (it died)")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "user_id"], condition=Q(closed_at__isnull=True, kind="v1"),
                name="conversation_open_unique",
            ),
        ]
        indexes = [models.Index(fields=["project", "-created_at"]),
                   models.Index(fields=["project", "kind", "created_at", "id"], name="conversation_kind_page")]

    def __str__(self) -> str:
        return f"{self.user_id} · {self.project_id} · {self.id}"


class Message(models.Model):
    class Role(models.TextChoices):
        USER = "user"
        ASSISTANT = "assistant"

    class Status(models.TextChoices):
        COMPLETE = "complete"
        INTERRUPTED = "interrupted"
        FAILED = "failed"

    id = models.CharField(primary_key=True, max_length=32, default=partial(new_id, "msg"), editable=False)
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    seq = models.PositiveIntegerField()
    turn_id = models.CharField(max_length=40, db_index=True)
    role = models.CharField(max_length=16, choices=Role.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.COMPLETE)
    action = models.JSONField(null=True, blank=True, help_text="the user's action (user messages)")
    content = models.TextField(blank=True, default="")
    traces = models.JSONField(default=list, blank=True)
    files = models.JSONField(null=True, blank=True, help_text="the file_refs attached to a user message (v2)")
    version_id = models.CharField(max_length=32, blank=True, default="")
    duration_ms = models.PositiveIntegerField(null=True, blank=True, help_text="engine time of the turn")
    first_trace_ms = models.PositiveIntegerField(null=True, blank=True, help_text="time to the first trace")
    # What an agent reply cost (assistant messages that called a model): the sums over its model calls, and each
    # call and each tool call as recorded by the engine (`LlmResult.record()`, the agent loop's tool records).
    model = models.CharField(max_length=200, blank=True, db_default="", default="")
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    tokens_estimated = models.BooleanField(db_default=False, default=False,
                                           help_text="the provider gave no usage: the token counts are estimates")
    first_token_ms = models.PositiveIntegerField(null=True, blank=True, help_text="time to the model's first token")
    llm_calls = models.JSONField(null=True, blank=True, help_text="each model call of the turn")
    tool_calls = models.JSONField(null=True, blank=True, help_text="each tool call of the turn")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["conversation", "seq"]
        constraints = [models.UniqueConstraint(fields=["conversation", "seq"], name="message_seq_unique")]

    def __str__(self) -> str:
        return f"{self.conversation_id}#{self.seq} {self.role}"


class TurnEvent(models.Model):
    """The event log of a running turn when no Redis is configured (`conversations/events.py`): what a client
    resuming the stream on another process reads. Rows are written in batches while a slow turn runs and deleted
    when its reply is stored (a finished turn replays from its message)."""

    id = models.BigAutoField(primary_key=True)
    turn_id = models.CharField(max_length=32)
    seq = models.PositiveIntegerField()
    data = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["turn_id", "seq"], name="turn_event_seq_unique")]

    def __str__(self) -> str:
        return f"{self.turn_id}:{self.seq}"
