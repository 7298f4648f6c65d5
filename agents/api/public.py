"""The public Project API (API.md §6): what a project key — either scope, a widget's too — may read of its own
project: its public metadata and widget settings, and its published versions. A developer token is a 403
(`agents/authentication.py`); nothing here shows the document's workflows, tools or instructions."""
from django.urls import path
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from agents.models import Project, ProjectVersion, default_document
from config.api.errors import Forbidden
from config.api.pagination import paginate, parse_limit
from config.api.schema import error_responses


def _own_project(request) -> Project:
    credential = request.auth
    if credential.kind != "project":  # also refused by the default permission; kept beside the read it guards
        raise Forbidden("The Project API takes a project key (cdt_…), not a developer token.")
    return credential.project  # the whole row: the key's lookup selected it


class PublicProjectApi(APIView):
    @extend_schema_serializer(component_name="PublicProject")
    class OutputSerializer(serializers.Serializer):
        id = serializers.CharField()
        name = serializers.CharField()
        description = serializers.CharField(allow_null=True)
        framework = serializers.CharField()
        language = serializers.CharField()
        slug = serializers.CharField()
        widget = serializers.DictField(help_text="title, color, welcomeMessage, starters")
        createdAt = serializers.DateTimeField(source="created_at")
        updatedAt = serializers.DateTimeField(source="updated_at")

    @extend_schema(operation_id="public_project_get", summary="The key's project: its public metadata and widget",
                   responses={200: OutputSerializer, **error_responses(401, 403, 429)})
    def get(self, request):
        project = _own_project(request)
        project.widget = project.document.get("widget", default_document()["widget"])
        return Response(self.OutputSerializer(project).data)


class PublicProjectVersionListApi(APIView):
    @extend_schema_serializer(component_name="PublicProjectVersion")
    class OutputSerializer(serializers.Serializer):
        id = serializers.CharField(help_text="ver_…")
        name = serializers.CharField(allow_blank=True)
        createdAt = serializers.DateTimeField(source="created_at")

    @extend_schema(
        operation_id="public_project_version_list", summary="The key's project's published versions, newest first",
        description="The body is an array (API.md §6); further pages are named by the `X-Next-Cursor` header "
                    "(and `Link: <…>; rel=\"next\"`), absent on the last page.",
        parameters=[OpenApiParameter("limit", int, description="1–100, default 20"),
                    OpenApiParameter("next", str, description="The cursor of the previous page (X-Next-Cursor)"),
                    OpenApiParameter("X-Next-Cursor", str, OpenApiParameter.HEADER, response=[200],
                                     description="The next page's cursor; absent on the last page")],
        responses={200: OutputSerializer(many=True), **error_responses(400, 401, 403, 429)})
    def get(self, request):
        project = _own_project(request)
        page = paginate(ProjectVersion.objects.filter(project=project).defer("snapshot"),
                        limit=parse_limit(request.query_params.get("limit")),
                        cursor=request.query_params.get("next"), newest_first=True)
        headers = {}
        if page.next:
            query = request.query_params.copy()
            query["next"] = page.next
            headers = {"X-Next-Cursor": page.next,
                       "Link": f'<{request.build_absolute_uri(request.path)}?{query.urlencode()}>; rel="next"'}
        return Response(self.OutputSerializer(page.items, many=True).data, headers=headers)


urlpatterns = [
    path("v1/project", PublicProjectApi.as_view()),
    path("v1/project/versions", PublicProjectVersionListApi.as_view()),
]
