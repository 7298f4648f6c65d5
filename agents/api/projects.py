"""Project Management API (API.md §3): projects (list, create blank, get, PATCH, DELETE, persist), their workflows
(list, upsert one, delete one), tools (upsert, delete) and variables (replace), for a developer token; a project key
is a 403, a project outside the token user's workspaces a 404.

Every write goes through `agents.services` (`project_update` and friends): the document is merged onto the row as
it is under a row lock, validated as a whole by the engine (a 400 whose `details` name each fault's location,
nothing stored) and its secrets sealed. GET and every write answer with the project's `ETag`; a write that sends
`If-Match` is applied only when it still matches (else `412 PRECONDITION_FAILED`), so a client that edits what it
read never overwrites a change it did not see. One class per path, each method one operation."""
import base64

from django.http import HttpResponse
from django.urls import path
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from agents import selectors, services
from agents.api.project_serializers import (
    READ_ONLY,
    ProjectCreateInputSerializer,
    ProjectDocumentSerializer,
    ProjectPartsInputSerializer,
    ProjectSummarySerializer,
    ToolInputSerializer,
    ToolSerializer,
    VariableSerializer,
    WorkflowInputSerializer,
    WorkflowPageSerializer,
    WorkflowSerializer,
)
from agents.models import Project
from agents.runtime import DocumentError
from config.api.errors import ApiError, Forbidden
from config.api.pagination import page_body, paginate, parse_limit
from config.api.schema import ERROR, PAGE_PARAMS, error_responses
from config.api.validation import closed_object

PROJECT_ID = OpenApiParameter("project_id", str, OpenApiParameter.PATH, description="The project (`proj_…`)")
WORKFLOW_ID = OpenApiParameter("workflow_id", str, OpenApiParameter.PATH, description="The workflow's id")
TOOL_ID = OpenApiParameter("tool_id", str, OpenApiParameter.PATH, description="The tool's id")
IF_MATCH = OpenApiParameter("If-Match", str, OpenApiParameter.HEADER, required=False,
                            description="An ETag of the project (or `*`): the write is applied only if it still "
                                        "matches, else 412")
ETAG = OpenApiParameter("ETag", str, OpenApiParameter.HEADER, response=True,
                        description="The project's entity tag, for If-Match")
PRECONDITION = {412: OpenApiResponse(ERROR, description="PRECONDITION_FAILED: If-Match does not match the "
                                                        "project's current ETag; nothing was stored")}
INVALID = "BAD_REQUEST: the body's shape, or the document (details name each fault: `workflows[0].steps[3]`)"
WRITE_ERRORS = {**error_responses(401, 403, 404, 413, 415, 429), **PRECONDITION,
                400: OpenApiResponse(ERROR, description=INVALID)}


def _user(request):
    """The developer token's user; a project key may not manage projects."""
    if request.auth.kind != "developer":
        raise Forbidden("The Project Management API needs a developer token (cdt_acc_…), not a project key.")
    return request.auth.user


def _project(request, project_id: str, *, document: bool = True) -> Project:
    return selectors.project_of_user(user=_user(request), project_id=project_id, document=document)


def _if_match(request) -> str | None:
    return request.headers.get("If-Match") or None


def _write(call, **kwargs):
    """A service write; an invalid document is a 400 whose details name each fault where it is."""
    try:
        return call(**kwargs)
    except DocumentError as exc:
        raise ApiError(exc.message, details=exc.details) from None


def _document(project: Project, status: int = 200) -> HttpResponse:
    """The project document, redacted, with its ETag. Its JSON is assembled from the parts' texts that the write
    (or an earlier read) made (`selectors.project_document_json`), not serialized again by DRF: a large project's
    workflows are megabytes."""
    return HttpResponse(selectors.project_document_json(project), status=status, content_type="application/json",
                        headers={"ETag": selectors.project_etag(project)})


class ProjectListCreateApi(APIView):
    @extend_schema(operation_id="project_list", summary="The projects of your workspaces, newest first",
                   parameters=PAGE_PARAMS,
                   responses={200: inline_serializer("ProjectPage", {
                       "data": ProjectSummarySerializer(many=True), "next": serializers.CharField(allow_null=True),
                       "has_more": serializers.BooleanField()}), **error_responses(400, 401, 403, 429)})
    def get(self, request):
        projects = selectors.projects_of_user(user=_user(request))
        page = paginate(projects, limit=parse_limit(request.query_params.get("limit")),
                        cursor=request.query_params.get("next"), newest_first=True)
        return Response(page_body(page, ProjectSummarySerializer(page.items, many=True).data))

    @extend_schema(operation_id="project_create", summary="Create a blank project",
                   request=ProjectCreateInputSerializer,
                   responses={201: ProjectDocumentSerializer, **error_responses(400, 401, 403, 404, 413, 415, 429)})
    def post(self, request):
        user = _user(request)
        data = closed_object(ProjectCreateInputSerializer, request.data)
        project = _write(services.project_create_for_user, user=user, name=data["name"],
                         workspace_id=data.get("workspaceId"), framework=data.get("framework"),
                         description=data.get("description"),
                         document={"language": data["language"]} if "language" in data else None)
        return _document(project, status=201)


class ProjectDetailApi(APIView):
    @extend_schema(operation_id="project_get", summary="The full project document (secrets redacted)",
                   parameters=[PROJECT_ID, ETAG],
                   responses={200: ProjectDocumentSerializer, **error_responses(401, 403, 404, 429)})
    def get(self, request, project_id: str):
        return _document(_project(request, project_id, document=False))  # read only when not cached

    @extend_schema(operation_id="project_update", summary="Update any top-level part; the whole is validated",
                   description="The parts sent replace the stored ones; the merged document is validated as a "
                               "whole. A tool header value sent back redacted keeps the stored value.",
                   parameters=[PROJECT_ID, IF_MATCH, ETAG], request=ProjectPartsInputSerializer,
                   responses={200: ProjectDocumentSerializer, **WRITE_ERRORS})
    def patch(self, request, project_id: str):
        project = _project(request, project_id, document=False)
        data = closed_object(ProjectPartsInputSerializer, request.data, ignore=READ_ONLY)
        return _document(_write(services.project_update, project=project, document=data,
                                if_match=_if_match(request)))

    @extend_schema(operation_id="project_delete",
                   summary="Delete the project and all its data (versions, keys, conversations, knowledge)",
                   parameters=[PROJECT_ID], responses={204: None, **error_responses(401, 403, 404, 429)})
    def delete(self, request, project_id: str):
        services.project_delete(project=_project(request, project_id, document=False))
        return Response(status=204)


class ProjectPersistApi(APIView):
    @extend_schema(operation_id="project_persist", summary="Replace the whole development document",
                   description="A part the body lacks takes a blank project's value; validated as a whole.",
                   parameters=[PROJECT_ID, IF_MATCH, ETAG], request=ProjectPartsInputSerializer,
                   responses={200: ProjectDocumentSerializer, **WRITE_ERRORS})
    def post(self, request, project_id: str):
        project = _project(request, project_id, document=False)
        data = closed_object(ProjectPartsInputSerializer, request.data, ignore=READ_ONLY)
        return _document(_write(services.project_update, project=project, document=data, replace=True,
                                if_match=_if_match(request)))


def _cursor(workflow_id: str) -> str:
    return base64.urlsafe_b64encode(workflow_id.encode()).decode().rstrip("=")


def _after(cursor: str, workflows: list) -> int:
    """The position after the workflow a cursor names (the last one of the previous page)."""
    try:
        workflow_id = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        workflow_id = None
    for i, workflow in enumerate(workflows):
        if isinstance(workflow, dict) and workflow.get("id") == workflow_id:
            return i + 1
    raise ApiError("The next cursor is not valid (its workflow was deleted?): list from the start.",
                   details={"next": ["Invalid cursor."]})


class WorkflowListApi(APIView):
    @extend_schema(operation_id="project_workflow_list", summary="The project's workflows, in document order",
                   parameters=[PROJECT_ID, *PAGE_PARAMS],
                   responses={200: WorkflowPageSerializer, **error_responses(400, 401, 403, 404, 429)})
    def get(self, request, project_id: str):
        workflows = selectors.project_document(_project(request, project_id))["workflows"]
        limit = parse_limit(request.query_params.get("limit"))
        cursor = request.query_params.get("next")
        start = _after(cursor, workflows) if cursor else 0
        items = workflows[start:start + limit]
        more = start + limit < len(workflows)
        next_cursor = _cursor(items[-1].get("id", "")) if more and isinstance(items[-1], dict) else None
        return Response({"data": items, "next": next_cursor, "has_more": next_cursor is not None})


def _item(request, serializer_class, item_id: str, *, closed: bool) -> dict:
    """A workflow or tool body, its known members checked for their type (`closed`: no other member); its id is
    the path's."""
    data = request.data
    if closed:
        closed_object(serializer_class, data)
    else:  # a workflow may carry members of its own (an editor's layout): they are kept
        if not isinstance(data, dict):
            raise serializers.ValidationError({"non_field_errors": ["The body must be a JSON object."]})
        serializer_class(data=data).is_valid(raise_exception=True)
    if "id" in data and data["id"] != item_id:
        raise ApiError("The body's id differs from the path's.", details={"id": [f"Expected {item_id!r}."]})
    return {**data, "id": item_id}


class WorkflowDetailApi(APIView):
    @extend_schema(operation_id="project_workflow_upsert", summary="Create or replace one workflow",
                   description="Replaced in place, or added at the end; the whole document is validated.",
                   parameters=[PROJECT_ID, WORKFLOW_ID, IF_MATCH, ETAG], request=WorkflowInputSerializer,
                   responses={200: WorkflowSerializer, 201: WorkflowSerializer, **WRITE_ERRORS})
    def put(self, request, project_id: str, workflow_id: str):
        project = _project(request, project_id, document=False)
        workflow = _item(request, WorkflowInputSerializer, workflow_id, closed=False)
        project, added = _write(services.project_item_upsert, project=project, part="workflows", item=workflow,
                                if_match=_if_match(request))
        return _part_item(project, "workflows", workflow_id, 201 if added else 200)

    @extend_schema(operation_id="project_workflow_delete", summary="Delete one workflow",
                   description="The rest must still validate: a jump to it is a 400 naming the jump.",
                   parameters=[PROJECT_ID, WORKFLOW_ID, IF_MATCH], responses={204: None, **WRITE_ERRORS})
    def delete(self, request, project_id: str, workflow_id: str):
        project = _project(request, project_id, document=False)
        project = _write(services.project_item_delete, project=project, part="workflows", item_id=workflow_id,
                         if_match=_if_match(request))
        return Response(status=204, headers={"ETag": selectors.project_etag(project)})


def _part_item(project: Project, part: str, item_id: str, status: int) -> Response:
    items = selectors.project_document(project)[part]
    item = next(item for item in items if isinstance(item, dict) and item.get("id") == item_id)
    return Response(item, status=status, headers={"ETag": selectors.project_etag(project)})


class ToolDetailApi(APIView):
    @extend_schema(operation_id="project_tool_upsert", summary="Create or replace one tool",
                   description="Header values are stored encrypted and shown redacted; a redacted value sent back "
                               "keeps the stored one.",
                   parameters=[PROJECT_ID, TOOL_ID, IF_MATCH, ETAG], request=ToolInputSerializer,
                   responses={200: ToolSerializer, 201: ToolSerializer, **WRITE_ERRORS})
    def put(self, request, project_id: str, tool_id: str):
        project = _project(request, project_id, document=False)
        tool = _item(request, ToolInputSerializer, tool_id, closed=True)
        project, added = _write(services.project_item_upsert, project=project, part="tools", item=tool,
                                if_match=_if_match(request))
        return _part_item(project, "tools", tool_id, 201 if added else 200)

    @extend_schema(operation_id="project_tool_delete", summary="Delete one tool",
                   parameters=[PROJECT_ID, TOOL_ID, IF_MATCH], responses={204: None, **WRITE_ERRORS})
    def delete(self, request, project_id: str, tool_id: str):
        project = _project(request, project_id, document=False)
        project = _write(services.project_item_delete, project=project, part="tools", item_id=tool_id,
                         if_match=_if_match(request))
        return Response(status=204, headers={"ETag": selectors.project_etag(project)})


class VariablesApi(APIView):
    @extend_schema(operation_id="project_variables_replace", summary="Replace the variable declarations",
                   description="The body is the whole list; the document is validated as a whole.",
                   parameters=[PROJECT_ID, IF_MATCH, ETAG], request=VariableSerializer(many=True),
                   responses={200: VariableSerializer(many=True), **WRITE_ERRORS})
    def put(self, request, project_id: str):
        project = _project(request, project_id, document=False)
        variables = request.data
        if not isinstance(variables, list):
            raise serializers.ValidationError({"non_field_errors": ["The body must be a JSON list of variables."]})
        project = _write(services.project_update, project=project, document={"variables": variables},
                         if_match=_if_match(request))
        return Response(project.document["variables"], headers={"ETag": selectors.project_etag(project)})


urlpatterns = [
    path("v1/projects", ProjectListCreateApi.as_view()),
    path("v1/projects/<str:project_id>", ProjectDetailApi.as_view()),
    path("v1/projects/<str:project_id>/persist", ProjectPersistApi.as_view()),
    path("v1/projects/<str:project_id>/workflows", WorkflowListApi.as_view()),
    path("v1/projects/<str:project_id>/workflows/<str:workflow_id>", WorkflowDetailApi.as_view()),
    path("v1/projects/<str:project_id>/tools/<str:tool_id>", ToolDetailApi.as_view()),
    path("v1/projects/<str:project_id>/variables", VariablesApi.as_view()),
]
