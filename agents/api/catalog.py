"""The project catalogue (API.md §3, endpoints 3–6): the built-in templates (list, create from one), generate (a
brief → the configured model → a validated document) and import (a Conduet-native document or a Voiceflow export).
Each makes a new project for a developer token's user and answers `201` with its document (`Project.as_document`).

Which workspace: the body's (or, for import, the query's) optional `workspaceId`, which must be one of the user's
workspaces (404 otherwise); without it, the user's first workspace — the oldest membership
(`agents.services.project_create_for_user`). Templates and import are DRF views; generate awaits a model for
seconds, so it is an async view (`api_endpoint`) that does not hold the one thread DRF's sync views share."""
from asgiref.sync import sync_to_async
from django.db import IntegrityError, transaction
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

from agents import project_templates
from agents.api.project_serializers import ProjectDocumentSerializer
from agents.generate import MAX_BRIEF, GenerateRefused, document_generate
from agents.importing import ImportRefused, document_import
from agents.models import Project
from agents.runtime import DocumentError
from agents.runtime.ports import UpstreamError
from agents.services import project_create_for_user
from config import db
from config.api.endpoints import api_endpoint, json_body, json_response
from config.api.errors import ApiError, Conflict, ErrorCode, Forbidden
from config.api.schema import ERROR, error_responses
from config.api.validation import closed_object
from conversations.api.serializers import StrictCharField

PROJECT_DOCUMENT = ProjectDocumentSerializer
WORKSPACE_HELP = "The workspace of the new project (one of yours); default: your first workspace"
MAX_WORKSPACE_ID = 32
SLUG_ATTEMPTS = 3


def developer_user(credential):
    """The user of a developer token; the catalogue is not a project key's (403)."""
    if getattr(credential, "kind", None) != "developer":
        raise Forbidden("Creating projects needs a developer token (cdt_acc_…), not a project key.")
    return credential.user


def create(*, user, name: str, document: dict, workspace_id: str | None) -> Project:
    """The project, or the 400 naming what is wrong with the document (nothing stored)."""
    for attempt in range(SLUG_ATTEMPTS):
        try:
            with transaction.atomic():
                return project_create_for_user(user=user, name=name, document=document, workspace_id=workspace_id)
        except DocumentError as exc:
            raise ApiError(exc.message, details=exc.details) from None
        except IntegrityError:  # a concurrent create took the same free slug: look for the next one
            if attempt == SLUG_ATTEMPTS - 1:
                raise Conflict("Another project with this name was being created at the same time; try again.") \
                    from None
    raise AssertionError("unreachable")


class TemplateListCreateApi(APIView):
    @extend_schema_serializer(component_name="Template")
    class OutputSerializer(serializers.Serializer):
        id = serializers.CharField()
        name = serializers.CharField()
        description = serializers.CharField()
        framework = serializers.ChoiceField(choices=["conversation-flow", "agentic"])

    @extend_schema_serializer(component_name="TemplateCreate")
    class CreateInputSerializer(serializers.Serializer):
        templateId = StrictCharField(max_length=64, help_text="An id from GET /projects/templates")
        name = StrictCharField(max_length=200, required=False, help_text="Default: the template's name")
        workspaceId = StrictCharField(max_length=MAX_WORKSPACE_ID, required=False, help_text=WORKSPACE_HELP)

    @extend_schema(operation_id="project_template_list", summary="The built-in project templates",
                   responses={200: OutputSerializer(many=True), **error_responses(401, 403, 429)})
    def get(self, request):
        developer_user(request.auth)
        return Response(self.OutputSerializer(project_templates.TEMPLATES.values(), many=True).data)

    @extend_schema(operation_id="project_template_create", summary="Create a project from a template",
                   request=CreateInputSerializer,
                   responses={201: PROJECT_DOCUMENT, **error_responses(400, 401, 403, 404, 409, 413, 415, 429)})
    def post(self, request):
        user = developer_user(request.auth)
        data = closed_object(self.CreateInputSerializer, request.data)
        template = project_templates.TEMPLATES.get(data["templateId"])
        if template is None:
            raise ApiError(f"There is no template {data['templateId']!r}; GET /api/v1/projects/templates lists them.",
                           details={"templateId": ["Unknown template."]})
        project = create(user=user, name=data.get("name") or template.name,
                         document=project_templates.template_document(template.id),
                         workspace_id=data.get("workspaceId"))
        return Response(project.as_document(), status=201)


class ProjectImportedSerializer(ProjectDocumentSerializer):
    format = serializers.ChoiceField(choices=["conduet", "voiceflow"], help_text="What the body was taken for")
    warnings = serializers.ListField(child=serializers.CharField(),
                                     help_text="What could not be imported as it was, each naming where")


IMPORT_RESPONSE = ProjectImportedSerializer


class ProjectImportApi(APIView):
    @extend_schema(
        operation_id="project_import", summary="Import a Conduet project document or a Voiceflow .vf export",
        description="The body is the JSON of either, told apart by its shape: a Conduet document (as GET "
                    "/projects/{pid} returns it; a new id, the same parts; redacted header secrets are left out "
                    "and listed in `warnings`) or a Voiceflow export (`diagrams` and `version`: diagrams become "
                    "workflows, blocks their steps; what cannot be mapped is listed in `warnings`).",
        parameters=[OpenApiParameter("workspaceId", str, required=False, description=WORKSPACE_HELP),
                    OpenApiParameter("name", str, required=False, description="Default: the document's name")],
        request={"application/json": inline_serializer("ProjectImportBody", {
            "name": serializers.CharField(required=False, help_text="A Conduet document's name"),
            "workflows": serializers.ListField(child=serializers.DictField(), required=False),
            "diagrams": serializers.DictField(required=False, help_text="A Voiceflow export's diagrams"),
            "version": serializers.DictField(required=False, help_text="A Voiceflow export's version"),
        })},
        responses={201: IMPORT_RESPONSE, **error_responses(400, 401, 403, 404, 409, 413, 415, 429)})
    def post(self, request):
        user = developer_user(request.auth)
        workspace_id, name = request.query_params.get("workspaceId"), request.query_params.get("name")
        for field, value, most in (("workspaceId", workspace_id, MAX_WORKSPACE_ID), ("name", name, 200)):
            if value is not None and not 1 <= len(value) <= most:
                raise ApiError(f"Invalid request: {field}: 1 to {most} characters.", details={field: ["Invalid."]})
        try:
            document, warnings, kind = document_import(request.data)
        except ImportRefused as exc:
            raise ApiError(exc.message, details=exc.details or None) from None
        project = create(user=user, name=name or document.get("name") or "Imported project", document=document,
                         workspace_id=workspace_id)
        return Response({**project.as_document(), "format": kind, "warnings": warnings}, status=201)


class GenerateInputSerializer(serializers.Serializer):
    brief = StrictCharField(max_length=MAX_BRIEF, help_text="What the agent should do, in a few sentences")
    name = StrictCharField(max_length=200, required=False, help_text="Default: the name the model gives it")
    workspaceId = StrictCharField(max_length=MAX_WORKSPACE_ID, required=False, help_text=WORKSPACE_HELP)


class ProjectGenerateApi(APIView):
    @extend_schema(
        operation_id="project_generate", summary="Create a project from a brief, written by the configured model",
        description="The model writes a project document (JSON output); it is validated like every write, and "
                    "the model is asked once more naming the faults. Still invalid: 400 naming them, nothing "
                    "stored. No model configured: 400 saying what to set (CONDUET_LLM_BASE_URL, "
                    "CONDUET_LLM_MODEL).",
        request=GenerateInputSerializer,
        responses={201: PROJECT_DOCUMENT, **error_responses(400, 401, 403, 404, 409, 413, 415, 429),
                   502: OpenApiResponse(ERROR, description="UPSTREAM_ERROR: the model failed")})
    def post(self, request):
        """Documentation only (`generate_view` serves the path)."""


async def generate(request, credential):
    user = developer_user(credential)
    data = closed_object(GenerateInputSerializer, json_body(request))
    try:
        document = await document_generate(brief=data["brief"])
    except GenerateRefused as exc:
        raise ApiError(exc.message, details=exc.details) from None
    except UpstreamError as exc:
        raise ApiError(f"The language model failed: {exc.message}", code=ErrorCode.UPSTREAM_ERROR) from None
    name = data.get("name") or document.get("name") or "Generated project"
    project = await sync_to_async(db.released(create))(user=user, name=name, document=document,
                                                       workspace_id=data.get("workspaceId"))
    return json_response(project.as_document(), status=201)


generate_view = api_endpoint(POST=generate, doc=ProjectGenerateApi)

urlpatterns = [
    path("v1/projects/templates", TemplateListCreateApi.as_view()),
    path("v1/projects/generate", generate_view),
    path("v1/projects/import", ProjectImportApi.as_view()),
]
