"""Knowledge Base API (API.md §4): six operations on four paths under /api/v1/knowledge-base, for a server project
key or a developer token with `X-Project-Id`. DRF views (documents are REST resources; nothing here awaits a model):
one class per path because the contract puts two operations on two of them; each method is one operation with its
own nested serializers, and calls one service or selector."""
from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import ParseError
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from agents.authentication import project_for_credential
from agents.knowledge import selectors, services
from agents.knowledge.models import KnowledgeDocument
from config.api.errors import ApiError, ErrorCode, Forbidden
from config.api.middleware import _body_size
from config.api.pagination import paginate, parse_limit
from config.api.parsers import StrictJSONParser, check_json, loads
from config.api.schema import ERROR, PAGE_PARAMS, error_responses
from config.api.validation import closed_object
from conversations.api.serializers import StrictCharField

PROJECT_HEADER = OpenApiParameter("X-Project-Id", str, OpenApiParameter.HEADER, required=False,
                                  description="The project, when authenticating with a developer token")
DOC_ID_PARAM = OpenApiParameter("doc_id", str, OpenApiParameter.PATH, description="The document (`doc_…`)")
SEARCH_MODES = ("hybrid", "lexical", "semantic")
MAX_QUERY = 1000
MAX_FILTERS = 32
# Multipart framing and the `metadata` field on top of the file itself.
MULTIPART_OVERHEAD_BYTES = 1024 * 1024


def _project(request):
    """The project the request acts on; a widget key (public, in web pages) may not read or change documents."""
    credential = request.auth
    if credential.is_widget:
        raise Forbidden("A widget key may not use the knowledge base; use a server key.")
    return project_for_credential(credential, request.headers.get("X-Project-Id"))


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer only: DRF's IntegerField would take "5" or 5.0."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class MetadataField(serializers.DictField):
    """A flat JSON object of scalars (services.document_metadata_clean checks it)."""

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            self.fail("not_a_dict", input_type=type(data).__name__)
        return data


class DocumentCreatedSerializer(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    type = serializers.CharField()
    status = serializers.CharField()


def _created(document: KnowledgeDocument) -> Response:
    return Response(DocumentCreatedSerializer(document).data, status=201)


class KnowledgeDocumentListCreateApi(APIView):
    class ListOutputSerializer(serializers.Serializer):
        id = serializers.CharField()
        name = serializers.CharField()
        type = serializers.CharField()
        status = serializers.CharField()
        chunkCount = serializers.IntegerField(source="chunk_count")
        createdAt = serializers.DateTimeField(source="created_at")

    class CreateInputSerializer(serializers.Serializer):
        name = StrictCharField(max_length=services.MAX_NAME)
        type = serializers.ChoiceField(choices=["text"], required=False, default="text")
        content = StrictCharField(trim_whitespace=False)
        metadata = MetadataField(required=False, default=dict, help_text="A flat object of scalar values")

    @extend_schema(
        operation_id="knowledge_document_list", summary="The project's documents, newest first",
        parameters=[PROJECT_HEADER,
                    OpenApiParameter("status", str, enum=list(KnowledgeDocument.Status.values), required=False),
                    *PAGE_PARAMS],
        responses={200: inline_serializer("KnowledgeDocumentList", {
            "documents": ListOutputSerializer(many=True),
            "total": serializers.IntegerField(help_text="Documents matching the filter, all pages"),
            "next": serializers.CharField(allow_null=True),
            "search": inline_serializer("KnowledgeSearchInfo", {
                "modes": serializers.ListField(child=serializers.CharField(),
                                               help_text='["lexical"] without an embedding provider'),
                "embeddingModel": serializers.CharField(allow_null=True),
            }),
        }), **error_responses(400, 401, 403, 404, 429)})
    def get(self, request):
        from agents.knowledge.embeddings import embeddings_model
        from agents.knowledge.search import search_modes

        project = _project(request)
        status = request.query_params.get("status")
        if status is not None and status not in KnowledgeDocument.Status.values:
            raise ApiError("status must be processing, ready or failed.", details={"status": ["Invalid status."]})
        documents = selectors.document_list(project=project, status=status)
        page = paginate(documents, limit=parse_limit(request.query_params.get("limit")),
                        cursor=request.query_params.get("next"), newest_first=True)
        return Response({"documents": self.ListOutputSerializer(page.items, many=True).data,
                         "total": documents.count(), "next": page.next,
                         "search": {"modes": search_modes(), "embeddingModel": embeddings_model()}})

    @extend_schema(
        operation_id="knowledge_document_create", summary="Add a text document; it is processed off the request",
        parameters=[PROJECT_HEADER], request=CreateInputSerializer,
        responses={201: DocumentCreatedSerializer, **error_responses(400, 401, 403, 404, 413, 415, 429)})
    def post(self, request):
        project = _project(request)
        data = closed_object(self.CreateInputSerializer, request.data)
        document = services.document_create_text(project=project, name=data["name"], content=data["content"],
                                                 metadata=data["metadata"])
        return _created(document)


class ChunkOutputSerializer(serializers.Serializer):
    id = serializers.CharField(source="public_id", help_text="chk_…")
    position = serializers.IntegerField()
    content = serializers.CharField()
    headingPath = serializers.ListField(child=serializers.CharField(), source="heading_path")
    metadata = serializers.DictField()


class DocumentOutputSerializer(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    type = serializers.CharField()
    status = serializers.CharField()
    error = serializers.CharField(allow_blank=True, help_text="Why it failed (empty unless failed)")
    chunkCount = serializers.IntegerField(source="chunk_count")
    metadata = serializers.DictField()
    embeddingModel = serializers.SerializerMethodField()
    embeddingDimensions = serializers.IntegerField(source="embedding_dimensions", allow_null=True)
    sourceUrl = serializers.SerializerMethodField()
    sizeBytes = serializers.IntegerField(source="size_bytes")
    createdAt = serializers.DateTimeField(source="created_at")
    updatedAt = serializers.DateTimeField(source="updated_at")
    chunks = ChunkOutputSerializer(many=True, required=False, read_only=True, source="chunks_ordered",
                                   help_text="Only with ?include=chunks")

    def get_embeddingModel(self, document) -> str | None:
        return document.embedding_model or None

    def get_sourceUrl(self, document) -> str | None:
        return document.source_url or None

    def to_representation(self, document):
        body = super().to_representation(document)
        if not self.context.get("chunks"):
            body.pop("chunks", None)
        return body


class KnowledgeDocumentDetailApi(APIView):
    @extend_schema(
        operation_id="knowledge_document_get", summary="One document: its status, error, chunk count, metadata",
        parameters=[DOC_ID_PARAM, PROJECT_HEADER,
                    OpenApiParameter("include", str, enum=["chunks"], required=False,
                                     description="`chunks`: add the document's chunks, in order")],
        responses={200: DocumentOutputSerializer, **error_responses(400, 401, 403, 404, 429)})
    def get(self, request, doc_id: str):
        project = _project(request)
        include = request.query_params.get("include", "")
        if include not in ("", "chunks"):
            raise ApiError("include may only be chunks.", details={"include": ["Unknown value."]})
        document = selectors.document_get(project=project, document_id=doc_id)
        if include == "chunks":
            document.chunks_ordered = selectors.document_chunks(document=document)
        return Response(DocumentOutputSerializer(document, context={"chunks": include == "chunks"}).data)

    @extend_schema(operation_id="knowledge_document_delete",
                   summary="Delete a document with its chunks, embeddings and stored file",
                   parameters=[DOC_ID_PARAM, PROJECT_HEADER], responses={204: None, **error_responses(401, 403, 404)})
    def delete(self, request, doc_id: str):
        project = _project(request)
        services.document_delete(document=selectors.document_get(project=project, document_id=doc_id))
        return Response(status=204)


class KnowledgeDocumentUploadApi(APIView):
    parser_classes = [MultiPartParser, StrictJSONParser]

    class UploadInputSerializer(serializers.Serializer):
        file = serializers.FileField(help_text="pdf, docx, html, md, txt or csv")
        metadata = serializers.CharField(required=False, help_text="A JSON object of scalar values, as a string")

    class UrlInputSerializer(serializers.Serializer):
        name = StrictCharField(max_length=services.MAX_NAME, required=False, help_text="Default: the URL")
        url = StrictCharField(max_length=services.MAX_URL, help_text="http(s); fetched by the worker")
        metadata = MetadataField(required=False, default=dict)

    @extend_schema(
        operation_id="knowledge_document_upload", summary="Upload a file, or name a URL to fetch",
        description="multipart/form-data with `file` and an optional `metadata` (a JSON object as a string), or "
                    'JSON `{"name", "url"}`: the page is fetched by the worker (public addresses only, every '
                    "redirect checked). Files over the upload limit are 413; types other than pdf, docx, html, md, "
                    "txt and csv are 415.",
        parameters=[PROJECT_HEADER],
        request={"multipart/form-data": UploadInputSerializer, "application/json": UrlInputSerializer},
        responses={201: DocumentCreatedSerializer, **error_responses(400, 401, 403, 404, 429),
                   413: OpenApiResponse(ERROR, description="PAYLOAD_TOO_LARGE: a file over the upload limit "
                                                           "(CONDUET_KB_MAX_DOCUMENT_BYTES); nothing is stored"),
                   415: OpenApiResponse(ERROR, description="UNSUPPORTED_MEDIA_TYPE: a file that is not pdf, docx, "
                                                           "html, md, txt or csv, or a body neither multipart nor "
                                                           "JSON")})
    def post(self, request, **kwargs):
        project = _project(request)
        if request.content_type.startswith("multipart/form-data"):
            return _created(_upload(request, project))
        data = closed_object(self.UrlInputSerializer, request.data)
        return _created(services.document_create_url(project=project, name=data.get("name"), url=data["url"],
                                                     metadata=data["metadata"]))


def _upload(request, project) -> KnowledgeDocument:
    """A multipart upload. A body declared larger than the limit is refused before it is parsed; the file itself
    goes to a temporary file past FILE_UPLOAD_MAX_MEMORY_SIZE (Django's upload handlers) and is measured again."""
    meta = request._request.META
    if not meta.get("CONTENT_LENGTH") and "chunked" in meta.get("HTTP_TRANSFER_ENCODING", "").lower():
        # As the API middleware does for JSON: a chunked body has no Content-Length, which the multipart parser
        # would read as "no body"; the ASGI handler has spooled it, so its length is known.
        size = _body_size(request._request)
        if size is not None:
            meta["CONTENT_LENGTH"] = str(size)
    try:
        declared = int(meta.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > settings.CONDUET_KB_MAX_DOCUMENT_BYTES + MULTIPART_OVERHEAD_BYTES:
        raise ApiError(f"The document is larger than the limit of {settings.CONDUET_KB_MAX_DOCUMENT_BYTES:,} bytes.",
                       code=ErrorCode.PAYLOAD_TOO_LARGE)
    upload = request.FILES.get("file")
    if upload is None:
        raise ApiError("Invalid request: file: A file is required (multipart field `file`).",
                       details={"file": ["A file is required."]})
    unknown = set(request.data) - {"file", "metadata"}
    if unknown:
        raise serializers.ValidationError({key: ["Unknown field."] for key in sorted(unknown)})
    metadata = None
    raw = request.data.get("metadata")
    if raw not in (None, ""):
        try:
            metadata = check_json(loads(raw))
        except ParseError as exc:
            raise ApiError(f"Invalid request: metadata: not valid JSON ({exc.detail}).",
                           details={"metadata": ["Must be a JSON object, as a string."]}) from None
    return services.document_create_upload(project=project, upload=upload, metadata=metadata)


class KnowledgeSearchApi(APIView):
    class InputSerializer(serializers.Serializer):
        query = StrictCharField(max_length=MAX_QUERY)
        topK = StrictIntegerField(min_value=1, max_value=50, required=False, default=5)
        mode = serializers.ChoiceField(choices=SEARCH_MODES, required=False, default="hybrid")
        filters = MetadataField(required=False, default=dict, help_text="metadata key: value, all must match")

        def validate_filters(self, filters: dict) -> dict:
            from agents.knowledge.search import filters_clean

            if len(filters) > MAX_FILTERS:
                raise serializers.ValidationError(f"At most {MAX_FILTERS} filters.")
            try:
                return filters_clean(filters)
            except ValueError as exc:
                raise serializers.ValidationError(str(exc)) from None

    class OutputSerializer(serializers.Serializer):
        content = serializers.CharField()
        score = serializers.FloatField()
        documentId = serializers.CharField()
        documentName = serializers.CharField()
        chunkId = serializers.CharField(help_text="chk_…")
        metadata = serializers.DictField()

    @extend_schema(
        operation_id="knowledge_search", summary="Search the project's ready documents",
        description="hybrid fuses lexical and semantic ranks (reciprocal-rank fusion); without an embedding "
                    "provider hybrid is lexical and semantic is 400. The `X-Search-Mode` header names the mode used.",
        parameters=[PROJECT_HEADER,
                    OpenApiParameter("X-Search-Mode", str, OpenApiParameter.HEADER, enum=list(SEARCH_MODES),
                                     response=[200], description="The mode actually used")],
        request=InputSerializer,
        responses={200: OutputSerializer(many=True), **error_responses(400, 401, 403, 404, 413, 415, 429),
                   502: OpenApiResponse(ERROR, description="UPSTREAM_ERROR: the embedding endpoint failed "
                                                           "(semantic mode; hybrid falls back to lexical)")})
    def post(self, request):
        from agents.knowledge.embeddings import EmbeddingError
        from agents.knowledge.search import SearchUnavailable, knowledge_search

        project = _project(request)
        data = closed_object(self.InputSerializer, request.data)
        try:
            outcome = knowledge_search(project=project, query=data["query"], top_k=data["topK"], mode=data["mode"],
                                       filters=data["filters"] or None)
        except SearchUnavailable as exc:
            raise ApiError(str(exc) or "Semantic search needs an embedding provider (CONDUET_EMBEDDINGS_BASE_URL).",
                           details={"mode": ["Unavailable without embeddings."]}) from None
        except EmbeddingError as exc:  # semantic only: hybrid falls back to lexical
            raise ApiError(f"The embedding endpoint failed: {exc}", code=ErrorCode.UPSTREAM_ERROR) from None
        except ValueError as exc:
            raise ApiError(f"Invalid request: {exc}") from None
        hits = [{"content": hit.content, "score": hit.score, "documentId": hit.document_id,
                 "documentName": hit.document_name, "chunkId": f"chk_{hit.chunk_id}", "metadata": hit.metadata}
                for hit in outcome.hits]
        return Response(self.OutputSerializer(hits, many=True).data, headers={"X-Search-Mode": outcome.mode})
