"""Workspaces, members, agents (projects), their published versions, and the two kinds of API key."""
from functools import partial

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from agents.ids import new_id
from agents.secrets import document_redact

DOCUMENT_PARTS = ("instructions", "model", "workflows", "variables", "tools", "phases", "behaviourConfig", "widget",
                  "settings")


def default_document() -> dict:
    return {
        "instructions": "",
        # No name: the operator's CONDUET_LLM_MODEL, until the project names its own.
        "model": {"temperature": 0.3, "maxTokens": 800},
        "workflows": [],
        "variables": [],
        "tools": [],
        "phases": [],
        "behaviourConfig": {"agentHarness": {"allowedToolIds": [], "maxHandoffs": 2, "snapshotKeys": []}},
        "widget": {"title": "", "color": "#4f46e5", "welcomeMessage": "", "starters": []},
        "settings": {"rateLimit": {"perMinute": 60}, "fallbackMessage": "Sorry, I didn't understand that.",
                     "turnTimeoutSeconds": 120},
    }


class Workspace(models.Model):
    """The tenant of the v2 API: it owns agents and has members."""

    id = models.CharField(primary_key=True, max_length=32, default=partial(new_id, "ws"), editable=False)
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner"
        ADMIN = "admin"
        MEMBER = "member"

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "user"], name="membership_unique")]

    def __str__(self) -> str:
        return f"{self.user} in {self.workspace} ({self.role})"


class Project(models.Model):
    """An agent. `document` is its live-edited `development` definition (API.md §3, minus the metadata columns)."""

    class Framework(models.TextChoices):
        CONVERSATION_FLOW = "conversation-flow"
        AGENTIC = "agentic"

    id = models.CharField(primary_key=True, max_length=32, default=partial(new_id, "proj"), editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="projects")
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100)
    description = models.TextField(null=True, blank=True)  # noqa: DJ001 (the API distinguishes null from "")
    framework = models.CharField(max_length=32, choices=Framework.choices, default=Framework.CONVERSATION_FLOW)
    language = models.CharField(max_length=16, default="en")
    document = models.JSONField(default=default_document)
    production_version = models.ForeignKey(
        "ProjectVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "slug"], name="project_slug_unique")]

    def __str__(self) -> str:
        return self.name

    def as_document(self, *, sealed: bool = False) -> dict:
        """The full project document as the API shows it: tool header values (secrets) redacted. `sealed=True` keeps
        them as stored, encrypted (`agents/secrets.py`), for a version snapshot or the spec builder."""
        document = {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "framework": self.framework,
            "language": self.language,
            "slug": self.slug,
            **{part: self.document.get(part, default_document()[part]) for part in DOCUMENT_PARTS},
            "createdAt": self.created_at.isoformat().replace("+00:00", "Z"),
            "updatedAt": self.updated_at.isoformat().replace("+00:00", "Z"),
        }
        return document if sealed else document_redact(document)


class ProjectVersion(models.Model):
    """An immutable snapshot of a project's document, made when it is published."""

    id = models.CharField(primary_key=True, max_length=32, default=partial(new_id, "ver"), editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="versions")
    name = models.CharField(max_length=200, blank=True, default="")
    snapshot = models.JSONField()
    digest = models.CharField(max_length=64, help_text="SHA-256 of the canonical snapshot JSON")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["project", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.project} · {self.name or self.id}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise ValidationError("A published version is immutable; publish a new one instead.")
        super().save(*args, **kwargs)


class KeyBase(models.Model):
    """Shared by both key kinds: a lookup prefix and the SHA-256 digest are stored, never the key."""

    name = models.CharField(max_length=200, blank=True, default="")
    prefix = models.CharField(max_length=16, db_index=True, editable=False)
    digest = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class ProjectApiKey(KeyBase):
    """`cdt_…`: one project, scope `server` (back ends) or `widget` (public, embedded in pages)."""

    class Scope(models.TextChoices):
        SERVER = "server"
        WIDGET = "widget"

    id = models.CharField(primary_key=True, max_length=32, default=partial(new_id, "key"), editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="api_keys")
    scope = models.CharField(max_length=16, choices=Scope.choices, default=Scope.SERVER)

    class Meta:
        verbose_name = "project API key"

    def __str__(self) -> str:
        return f"cdt_{self.prefix}… ({self.scope}, {self.project_id})"


class DeveloperToken(KeyBase):
    """`cdt_acc_…`: acts as its user across the projects of the workspaces they belong to."""

    id = models.CharField(primary_key=True, max_length=32, default=partial(new_id, "tok"), editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="developer_tokens")

    def __str__(self) -> str:
        return f"cdt_acc_{self.prefix}… ({self.user})"


from agents.knowledge.models import KnowledgeChunk, KnowledgeDocument  # noqa: E402,F401  (the app's models)
