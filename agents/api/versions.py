"""Project Management API (API.md §3, endpoints 19–24): a project's published versions (list, publish, promote) and
its project keys (list, create, revoke), for a developer token of a member of the project's workspace (another
project is a 404; a project key is a 403, `agents/authentication.py`). DRF views, one class per path, each method
one operation with its own nested serializers, calling one service."""
from django.db import transaction
from django.urls import path
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_serializer,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from agents.authentication import developer_project_get
from agents.ids import PROJECT_KEY_PREFIX
from agents.models import ProjectApiKey, ProjectVersion, default_document
from agents.runtime import DocumentError, validate_document
from agents.services import key_revoke, project_api_key_create, version_promote, version_publish
from config.api.errors import Conflict, NotFound
from config.api.pagination import page_body, paginate, parse_limit
from config.api.schema import ERROR, PAGE_PARAMS, error_responses
from config.api.validation import closed_object
from conversations.api.serializers import StrictCharField

PROJECT_ID_PARAM = OpenApiParameter("project_id", str, OpenApiParameter.PATH, description="The project (`proj_…`)")
VERSION_ID_PARAM = OpenApiParameter("version_id", str, OpenApiParameter.PATH, description="The version (`ver_…`)")
KEY_ID_PARAM = OpenApiParameter("key_id", str, OpenApiParameter.PATH, description="The key (`key_…`)")
NAME_MAX = 200


def _page(request, queryset, serializer_class, context=None) -> Response:
    page = paginate(queryset, limit=parse_limit(request.query_params.get("limit")),
                    cursor=request.query_params.get("next"), newest_first=True)
    return Response(page_body(page, serializer_class(page.items, many=True, context=context or {}).data))


def _paged(name: str, item) -> object:
    return inline_serializer(name, {"data": item(many=True), "next": serializers.CharField(allow_null=True),
                                    "has_more": serializers.BooleanField()})


# --- versions

class VersionOutputSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="ver_…")
    name = serializers.CharField(allow_blank=True)
    digest = serializers.CharField(help_text="SHA-256 of the snapshot's canonical JSON")
    production = serializers.SerializerMethodField()
    createdAt = serializers.DateTimeField(source="created_at")

    def get_production(self, version) -> bool:
        return version.pk == self.context["production_id"]


def _version_body(version: ProjectVersion, production_id: str | None) -> dict:
    return VersionOutputSerializer(version, context={"production_id": production_id}).data


def _runnable(project) -> None:
    """A version must be able to run: the development document is checked as the runtime reads it (as the admin's
    publish does). It was checked when written, so this only refuses one an older release accepted: a 409."""
    parts = {part: project.document.get(part, default) for part, default in default_document().items()}
    try:
        validate_document({**parts, "framework": project.framework})
    except DocumentError as error:
        raise Conflict(f"The development document cannot be published: {error.message}",
                       details=error.details) from None


class ProjectVersionListPublishApi(APIView):
    @extend_schema_serializer(component_name="ProjectVersionPublish")
    class PublishInputSerializer(serializers.Serializer):
        name = StrictCharField(required=False, allow_blank=True, max_length=NAME_MAX, default="")

    @extend_schema(operation_id="project_version_list", summary="The project's published versions, newest first",
                   parameters=[PROJECT_ID_PARAM, *PAGE_PARAMS],
                   responses={200: _paged("ProjectVersionList", VersionOutputSerializer),
                              **error_responses(400, 401, 403, 404, 429)})
    def get(self, request, project_id: str):
        project = developer_project_get(request.auth, project_id)
        return _page(request, ProjectVersion.objects.filter(project=project).defer("snapshot"),
                     VersionOutputSerializer, {"production_id": project.production_version_id})

    @extend_schema(operation_id="project_version_publish",
                   summary="Publish development as a new immutable version; it becomes production",
                   description="Freezes the whole development document (workflows, tools, variables, settings, …) "
                               "into a snapshot with a content digest. Conversations pinned to an older version id "
                               "keep running it. 409 when the stored document cannot run (details name where).",
                   parameters=[PROJECT_ID_PARAM], request=PublishInputSerializer,
                   responses={201: VersionOutputSerializer, **error_responses(400, 401, 403, 404, 413, 415, 429),
                              409: OpenApiResponse(ERROR, description="CONFLICT: the development document cannot "
                                                                      "run (details name the fault)")})
    def post(self, request, project_id: str):
        data = closed_object(self.PublishInputSerializer, request.data, empty_is_object=True)
        with transaction.atomic():
            # The row lock: the snapshot is the document as committed, no PATCH half-way through it.
            project = developer_project_get(request.auth, project_id, lock=True)
            _runnable(project)
            try:
                version = version_publish(project=project, name=data["name"], user=request.auth.user)
            except DocumentError as error:  # a sealed secret no configured key opens
                raise Conflict(f"The development document cannot be published: {error.message}",
                               details=error.details) from None
        return Response(_version_body(version, version.pk), status=201)


class ProjectVersionPromoteApi(APIView):
    @extend_schema(operation_id="project_version_promote",
                   summary="Make a published version production again (rollback)",
                   description="Production (and widget keys, and interact with `versionId: production`) runs that "
                               "snapshot from the next turn; development is not changed.",
                   parameters=[PROJECT_ID_PARAM, VERSION_ID_PARAM], request=None,
                   responses={200: VersionOutputSerializer, **error_responses(401, 403, 404, 429)})
    def post(self, request, project_id: str, version_id: str):
        with transaction.atomic():
            project = developer_project_get(request.auth, project_id, lock=True)
            version = ProjectVersion.objects.filter(project=project, pk=version_id).defer("snapshot").first()
            if version is None:
                raise NotFound(f"Version {version_id} not found.")
            version_promote(project=project, version=version)
        return Response(_version_body(version, version.pk))


# --- project keys

class KeyOutputSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="key_…")
    prefix = serializers.SerializerMethodField(help_text="The key's first characters, `cdt_` and 8 more")
    name = serializers.CharField(allow_blank=True)
    scope = serializers.ChoiceField(choices=ProjectApiKey.Scope.values)
    lastUsedAt = serializers.DateTimeField(source="last_used_at", allow_null=True,
                                           help_text="To the minute: use is recorded at most once a minute")
    createdAt = serializers.DateTimeField(source="created_at")
    revokedAt = serializers.DateTimeField(source="revoked_at", allow_null=True)

    def get_prefix(self, key) -> str:
        return f"{PROJECT_KEY_PREFIX}{key.prefix}"


class KeyCreatedSerializer(KeyOutputSerializer):
    key = serializers.CharField(help_text="The key itself: shown this once, never stored")


class ProjectApiKeyListCreateApi(APIView):
    @extend_schema_serializer(component_name="ProjectApiKeyCreate")
    class CreateInputSerializer(serializers.Serializer):
        name = StrictCharField(max_length=NAME_MAX)
        scope = serializers.ChoiceField(choices=ProjectApiKey.Scope.values,
                                        help_text="`server` (back ends) or `widget` (public, in web pages: the "
                                                  "Project API and `anon_` users' interact on production only)")

    @extend_schema(operation_id="project_api_key_list", summary="The project's keys (revoked ones too), newest first",
                   parameters=[PROJECT_ID_PARAM, *PAGE_PARAMS],
                   responses={200: _paged("ProjectApiKeyList", KeyOutputSerializer),
                              **error_responses(400, 401, 403, 404, 429)})
    def get(self, request, project_id: str):
        project = developer_project_get(request.auth, project_id)
        return _page(request, ProjectApiKey.objects.filter(project=project), KeyOutputSerializer)

    @extend_schema(operation_id="project_api_key_create", summary="Create a project key; the key is shown once",
                   parameters=[PROJECT_ID_PARAM], request=CreateInputSerializer,
                   responses={201: KeyCreatedSerializer, **error_responses(400, 401, 403, 404, 413, 415, 429)})
    def post(self, request, project_id: str):
        project = developer_project_get(request.auth, project_id)
        data = closed_object(self.CreateInputSerializer, request.data, empty_is_object=True)
        row, key = project_api_key_create(project=project, name=data["name"], scope=data["scope"])
        row.key = key
        return Response(KeyCreatedSerializer(row).data, status=201)


class ProjectApiKeyRevokeApi(APIView):
    @extend_schema(operation_id="project_api_key_revoke",
                   summary="Revoke a key: from now on it is 401 (revoking a revoked key is a no-op)",
                   parameters=[PROJECT_ID_PARAM, KEY_ID_PARAM],
                   responses={204: None, **error_responses(401, 403, 404, 429)})
    def delete(self, request, project_id: str, key_id: str):
        project = developer_project_get(request.auth, project_id)
        key = ProjectApiKey.objects.filter(project=project, pk=key_id).first()
        if key is None:
            raise NotFound(f"Key {key_id} not found.")
        key_revoke(key=key)
        return Response(status=204)


urlpatterns = [
    path("v1/projects/<str:project_id>/versions", ProjectVersionListPublishApi.as_view()),
    path("v1/projects/<str:project_id>/versions/<str:version_id>/promote", ProjectVersionPromoteApi.as_view()),
    path("v1/projects/<str:project_id>/api-keys", ProjectApiKeyListCreateApi.as_view()),
    path("v1/projects/<str:project_id>/api-keys/<str:key_id>", ProjectApiKeyRevokeApi.as_view()),
]
