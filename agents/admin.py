"""Admin for workspaces, agents, versions and keys. Keys are made by the service and shown once; versions are
read-only, as they are immutable."""
import json

from django.contrib import admin, messages
from django.utils.html import format_html

from agents.ids import DEVELOPER_TOKEN_PREFIX, PROJECT_KEY_PREFIX
from agents.models import DeveloperToken, Membership, Project, ProjectApiKey, ProjectVersion, Workspace
from agents.services import developer_token_create, key_revoke, project_api_key_create, version_publish


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


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "workspace", "role", "created_at"]
    list_filter = ["role"]
    list_select_related = ["user", "workspace"]
    search_fields = ["user__username", "workspace__slug"]
    autocomplete_fields = ["user", "workspace"]


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "workspace", "framework", "production_version", "updated_at"]
    list_filter = ["framework"]
    list_select_related = ["workspace", "production_version"]
    search_fields = ["name", "slug", "id"]
    readonly_fields = ["id", "production_version", "created_at", "updated_at"]
    autocomplete_fields = ["workspace"]
    actions = ["publish"]

    @admin.action(description="Publish a new version of the selected projects")
    def publish(self, request, queryset):
        for project in queryset:
            version = version_publish(project=project, name="published from the admin", user=request.user)
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
        return pretty_json(version.snapshot)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class KeyAdmin(admin.ModelAdmin):
    """Shared by both key kinds: the service makes the key (`create_key`, per kind), the admin shows it once and
    stores only its digest."""

    type_prefix = ""
    search_fields = ["name", "prefix", "id"]
    list_filter = ["revoked_at"]
    actions = ["revoke"]

    @admin.display(description="key")
    def masked(self, key):
        return f"{self.type_prefix}{key.prefix}…"

    def get_readonly_fields(self, request, obj=None):
        return ["id", "masked", "created_at", "last_used_at"] if obj else []

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
    fields = ["project", "name", "scope", "revoked_at"]

    def create_key(self, obj):
        return project_api_key_create(project=obj.project, name=obj.name, scope=obj.scope)


@admin.register(DeveloperToken)
class DeveloperTokenAdmin(KeyAdmin):
    type_prefix = DEVELOPER_TOKEN_PREFIX
    list_display = ["masked", "name", "user", "last_used_at", "revoked_at"]
    list_select_related = ["user"]
    autocomplete_fields = ["user"]
    fields = ["user", "name", "revoked_at"]

    def create_key(self, obj):
        return developer_token_create(user=obj.user, name=obj.name)
