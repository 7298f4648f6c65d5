"""Admin for workspaces, agents, versions and keys. Keys are made by the service and shown once, and revoked only
by the Revoke action; versions are read-only, as they are immutable, and the production one cannot be deleted; a
project's document is validated by the engine before it is saved or published. Tool secrets (header values) are
shown redacted and sealed on save: a value left redacted keeps the stored one. The admin login is throttled
per client address and per username."""
import copy
import json
import logging
import time

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import ValidationError
from django.template.loader import render_to_string
from django.utils.html import format_html
from django_ratelimit.core import get_usage

from agents.admin_outline import workflow_outline
from agents.ids import DEVELOPER_TOKEN_PREFIX, PROJECT_KEY_PREFIX
from agents.knowledge.models import KnowledgeDocument
from agents.knowledge.services import document_delete, document_reprocess
from agents.models import (
    DeveloperToken,
    Membership,
    Project,
    ProjectApiKey,
    ProjectVersion,
    Workspace,
    default_document,
)
from agents.runtime import DocumentError, validate_document
from agents.secrets import document_redact, document_seal
from agents.services import (
    PROJECT_FIELDS,
    developer_token_create,
    key_revoke,
    project_api_key_create,
    project_document_validate,
    projects_delete,
    version_publish,
    workspace_delete,
)
from config.metrics import RATE_LIMIT_FAIL_OPEN


def pretty_json(value) -> str:
    return format_html("<pre style='white-space: pre-wrap; margin: 0'>{}</pre>",
                       json.dumps(value, indent=2, ensure_ascii=False))


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "id", "created_at"]
    search_fields = ["name", "slug", "id"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]

    def delete_model(self, request, obj):
        workspace_delete(workspace=obj)  # its projects' stored bytes go too

    def delete_queryset(self, request, queryset):
        for workspace in queryset:
            workspace_delete(workspace=workspace)


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "workspace", "role", "created_at"]
    list_filter = ["role"]
    list_select_related = ["user", "workspace"]
    search_fields = ["user__username", "workspace__slug"]
    autocomplete_fields = ["user", "workspace"]


def document_problems(document, framework: str, fields: dict | None = None) -> list[str]:
    """What the API's validation (`project_document_validate`) finds wrong with a development document and the
    project's fields, as `location: message` lines (none when it runs). It checks the document as the runtime reads
    it: missing parts take their defaults (`Project.as_document`). Without `fields`, the document alone."""
    if not isinstance(document, dict):
        return ["document: The project document must be a JSON object."]
    try:
        if fields is None:
            parts = {part: document.get(part, default) for part, default in default_document().items()}
            validate_document({**parts, "framework": framework})
        else:
            project_document_validate(document=document, fields=fields, framework=framework)
    except DocumentError as error:
        return [f"{where}: {message}" for where, found in error.details.items() for message in found] or [str(error)]
    return []


class ProjectForm(forms.ModelForm):
    class Meta:
        model = Project
        fields = "__all__"  # noqa: DJ007 (ProjectAdmin chooses what is shown and what is read-only)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The stored document, before the form changes the instance: what a redacted value keeps.
        self.stored_document = copy.deepcopy(self.instance.document) if self.instance.pk else None
        if self.instance.pk and "document" in self.fields:
            self.initial["document"] = document_redact(self.instance.document)

    def clean(self):
        cleaned = super().clean()
        if "document" in cleaned:
            framework = cleaned.get("framework") or self.instance.framework
            fields = {field: cleaned.get(field, getattr(self.instance, field)) for field in PROJECT_FIELDS}
            problems = document_problems(cleaned["document"], framework, fields)
            for problem in problems:
                # The project's own fields' faults go beside those fields (the API names them the same way).
                where = problem.partition(":")[0]
                if where in PROJECT_FIELDS and where in self.fields and where not in self.errors:
                    self.add_error(where, problem.partition(": ")[2])
                elif where not in PROJECT_FIELDS:
                    self.add_error("document", problem)
            if not problems:
                try:
                    cleaned["document"] = document_seal(cleaned["document"], previous=self.stored_document)
                except DocumentError as error:
                    for where, found in error.details.items():
                        for message in found:
                            self.add_error("document", f"{where}: {message}")
        return cleaned


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    form = ProjectForm

    def delete_model(self, request, obj):
        projects_delete(projects=Project.objects.filter(id=obj.id))  # its stored bytes go too

    def delete_queryset(self, request, queryset):
        projects_delete(projects=queryset)
    list_display = ["name", "workspace", "framework", "production_version", "updated_at"]
    list_filter = ["framework"]
    list_select_related = ["workspace", "production_version"]
    search_fields = ["name", "slug", "id"]
    readonly_fields = ["id", "production_version", "created_at", "updated_at", "outline"]
    fieldsets = [
        (None, {"fields": ["id", "workspace", "name", "slug", "description", "framework", "language",
                           "production_version", "created_at", "updated_at"]}),
        ("Development document", {"fields": ["outline", "document"],
                                  "description": "The outline shows the stored workflows; the JSON below is what "
                                                 "is edited, validated as a whole on save, as the API does."}),
    ]
    autocomplete_fields = ["workspace"]
    actions = ["publish"]

    @admin.display(description="workflows")
    def outline(self, project):
        return render_to_string("admin/agents/project/outline.html",
                                {"workflows": workflow_outline(project.document if project else None)})

    @admin.action(description="Publish a new version of the selected projects")
    def publish(self, request, queryset):
        for project in queryset:
            problems = document_problems(project.document, project.framework)
            if problems:
                shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
                self.message_user(request, f"{project.name}: not published, its development document is invalid: "
                                           f"{shown}", messages.ERROR)
                continue
            try:
                version = version_publish(project=project, name="published from the admin", user=request.user)
            except DocumentError as error:
                self.message_user(request, f"{project.name}: not published: {error.message}", messages.ERROR)
                continue
            self.message_user(request, f"{project.name}: published {version.id}.", messages.SUCCESS)


@admin.register(ProjectVersion)
class ProjectVersionAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "name", "created_by", "created_at"]
    list_select_related = ["project", "created_by"]
    search_fields = ["id", "project__name"]
    fields = ["id", "project", "name", "digest", "created_by", "created_at", "snapshot_json"]
    readonly_fields = fields

    @admin.display(description="snapshot")
    def snapshot_json(self, version):
        return pretty_json(document_redact(version.snapshot))

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_deleted_objects(self, objs, request):
        """The version production points to is protected, as `on_delete=PROTECT` would make it: both the delete
        page and the bulk delete action then refuse (and list why) instead of deleting. Not done through
        `has_delete_permission`, which would also forbid deleting the project that owns the version."""
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        in_production = Project.objects.filter(production_version__in=[version.pk for version in objs])
        for project in in_production:
            protected.append(f"Project {project.name}: production runs this version")
            self.message_user(request, f"Version {project.production_version_id} is the production version of "
                                       f"{project.name} and cannot be deleted; publish another version first.",
                              messages.ERROR)
        return deleted, counts, perms_needed, protected


class KeyAdmin(admin.ModelAdmin):
    """Shared by both key kinds: the service makes the key (`create_key`, per kind), the admin shows it once and
    stores only its digest. What a key grants (its owner, scope) is chosen when it is made and never changes, and
    `revoked_at` is set only by the Revoke action: a revoked key cannot be revived."""

    type_prefix = ""
    add_fields: list[str] = []
    change_fields: list[str] = []
    search_fields = ["name", "prefix", "id"]
    list_filter = ["revoked_at"]
    actions = ["revoke"]

    @admin.display(description="key")
    def masked(self, key):
        return f"{self.type_prefix}{key.prefix}…"

    def get_fields(self, request, obj=None):
        return self.change_fields if obj else self.add_fields

    def get_readonly_fields(self, request, obj=None):
        return [field for field in self.change_fields if field != "name"] if obj else []

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request, queryset):
        for key in queryset:
            key_revoke(key=key)
        self.message_user(request, f"Revoked {queryset.count()} key(s).", messages.SUCCESS)

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        row, key = self.create_key(obj)
        obj.pk = row.pk
        obj._state.adding = False
        self.message_user(request, f"The new key is {key} — copy it now, it is not shown again.", messages.WARNING)


@admin.register(ProjectApiKey)
class ProjectApiKeyAdmin(KeyAdmin):
    type_prefix = PROJECT_KEY_PREFIX
    list_display = ["masked", "name", "project", "scope", "last_used_at", "revoked_at"]
    list_select_related = ["project"]
    list_filter = ["scope", "revoked_at"]
    autocomplete_fields = ["project"]
    add_fields = ["project", "name", "scope"]
    change_fields = ["id", "masked", "project", "name", "scope", "created_at", "last_used_at", "revoked_at"]

    def create_key(self, obj):
        return project_api_key_create(project=obj.project, name=obj.name, scope=obj.scope)


@admin.register(DeveloperToken)
class DeveloperTokenAdmin(KeyAdmin):
    type_prefix = DEVELOPER_TOKEN_PREFIX
    list_display = ["masked", "name", "user", "last_used_at", "revoked_at"]
    list_select_related = ["user"]
    autocomplete_fields = ["user"]
    add_fields = ["user", "name"]
    change_fields = ["id", "masked", "user", "name", "created_at", "last_used_at", "revoked_at"]

    def create_key(self, obj):
        return developer_token_create(user=obj.user, name=obj.name)


@admin.register(KnowledgeDocument)
class KnowledgeDocumentAdmin(admin.ModelAdmin):
    """Read-only: documents come in through the API (their bytes are validated and stored there); the admin shows
    how processing went and can process a document again (after an embedding outage, a model change). Deleting
    goes through the service, so that the stored bytes go too."""

    list_display = ["name", "project", "type", "status", "chunk_count", "error_short", "created_at"]
    list_select_related = ["project"]
    list_filter = ["status", "type"]
    search_fields = ["id", "name", "project__name"]
    fields = ["id", "project", "name", "type", "status", "error", "chunk_count", "metadata_json", "source_url",
              "stored_path", "size_bytes", "sha256", "embedding_model", "embedding_dimensions", "attempts",
              "lease_until", "created_at", "updated_at"]
    readonly_fields = fields
    actions = ["process_again"]

    @admin.display(description="error")
    def error_short(self, document):
        return document.error[:120]

    @admin.display(description="metadata")
    def metadata_json(self, document):
        return pretty_json(document.metadata)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def delete_model(self, request, obj):
        document_delete(document=obj)

    def delete_queryset(self, request, queryset):
        for document in queryset:
            document_delete(document=document)

    @admin.action(description="Process the selected documents again")
    def process_again(self, request, queryset):
        for document in queryset:
            document_reprocess(document=document)
        self.message_user(request, f"{queryset.count()} document(s) queued for processing.", messages.SUCCESS)


# --- The login, throttled per client address and per username (DESIGN.md: django-ratelimit guards the sync views).
# Every POST counts, a successful one too: counting before the password is checked keeps the limit exact under
# concurrent attempts (counting failures after the check would let a burst through), and a refused attempt costs no
# password hash. The site is Django's default one, so its bound login view is wrapped here, where the admin is set
# up; `admin.site.urls` reads `site.login` after the admin modules are loaded.

logger = logging.getLogger(__name__)
LOGIN_PERIOD_SECONDS = 60
CACHE_FAULT_LOG_SECONDS = 60
_cache_fault_logged_at: float | None = None


def _log_cache_fault() -> None:
    """Counted each time, logged once per interval: a cache that is down would otherwise log every attempt."""
    global _cache_fault_logged_at
    RATE_LIMIT_FAIL_OPEN.inc()
    now = time.monotonic()
    if _cache_fault_logged_at is None or now - _cache_fault_logged_at >= CACHE_FAULT_LOG_SECONDS:
        _cache_fault_logged_at = now
        logger.warning("The admin login throttle cannot reach the cache; letting login attempts through",
                       exc_info=True)


def _login_attempt_count(request, *, group: str, value: str, limit: int) -> int | None:
    """Counts one attempt against `value`; the seconds to wait when it is over the limit, else None. The cache
    failing lets the attempt through (fails open), so a Redis outage never locks everyone out of the admin."""
    try:
        usage = get_usage(request, group=group, key=lambda _group, _request: value,
                          rate=(limit, LOGIN_PERIOD_SECONDS), increment=True)
    except Exception:
        _log_cache_fault()
        return None
    if usage is None or usage["limit"] == 0:  # django-ratelimit's answer when the cache did not count
        _log_cache_fault()
        return None
    # The window still counts at its last second (`time_left` 0), so the wait is one more than what is left.
    return max(int(usage["time_left"]) + 1, 1) if usage["should_limit"] else None


def login_throttle_hit(request) -> int | None:
    """Counts a login POST per client address and per username; the seconds to wait if either is over its limit.
    Behind a proxy the address is the proxy's (`X-Forwarded-For` is not trusted), so the username limit remains."""
    address = request.META.get("REMOTE_ADDR") or "unknown"
    waits = [_login_attempt_count(request, group="admin-login-address", value=address,
                                  limit=settings.CONDUET_ADMIN_LOGIN_RATE_PER_ADDRESS)]
    username = str(request.POST.get("username", "")).strip().casefold()
    if username:
        waits.append(_login_attempt_count(request, group="admin-login-username", value=username,
                                          limit=settings.CONDUET_ADMIN_LOGIN_RATE_PER_USERNAME))
    return max((wait for wait in waits if wait is not None), default=None)


class ThrottledAuthenticationForm(AdminAuthenticationForm):
    """Refuses before checking the password when the view found the attempt over its limit."""

    def clean(self):
        retry_after = getattr(self.request, "conduet_login_retry_after", None)
        if retry_after is not None:
            raise ValidationError("Too many login attempts. Retry in %(seconds)s s.", code="throttled",
                                  params={"seconds": retry_after})
        return super().clean()


_default_site_login = admin.site.login


def throttled_login(request, extra_context=None):
    """The admin's login view; an attempt over the limit gets the login page with the error, status 429 and
    `Retry-After`."""
    retry_after = login_throttle_hit(request) if request.method == "POST" else None
    if retry_after is not None:
        request.conduet_login_retry_after = retry_after
        logger.warning("Admin login throttled for %s (username %r)", request.META.get("REMOTE_ADDR"),
                       request.POST.get("username", ""))
    response = _default_site_login(request, extra_context)
    if retry_after is not None:
        response.status_code = 429
        response["Retry-After"] = str(retry_after)
    return response


admin.site.login_form = ThrottledAuthenticationForm
admin.site.login = throttled_login
