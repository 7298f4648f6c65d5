"""A v2 conversation's files (API.md §7): list, upload (multipart, a repeated `files` field) and download by the
opaque `file_ref`. DRF views: one class per path, each method one operation calling one service or selector."""
from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.core.files.storage import default_storage
from django.http import FileResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api.errors import ApiError, ErrorCode
from config.api.middleware import _body_size
from config.api.pagination import page_body, paginate, parse_limit
from config.api.schema import ERROR, PAGE_PARAMS, error_responses
from files import selectors, services
from files.api.uploads import FILES_FIELD, LimitedUploadHandler, too_many_files

TENANT = OpenApiParameter("tenant", str, OpenApiParameter.PATH, description="The workspace's slug")
AGENT = OpenApiParameter("aid", str, OpenApiParameter.PATH, description="The agent (project) id")
CONVERSATION = OpenApiParameter("cid", str, OpenApiParameter.PATH, description="The v2 conversation (`conv_…`)")
PATH_PARAMS = [TENANT, AGENT, CONVERSATION]


class FileOutputSerializer(serializers.Serializer):
    file_ref = serializers.CharField(source="id", help_text="Opaque (`file_…`); use it to download or attach")
    name = serializers.CharField(help_text="The uploaded name, sanitized (no path, no control characters)")
    mime_type = serializers.CharField(help_text="Found from the bytes and the name, not the client's header")
    size = serializers.IntegerField(help_text="Bytes")
    sha256 = serializers.CharField()
    created_at = serializers.DateTimeField()


def conversation_for(request, tenant: str, aid: str, cid: str):
    return selectors.files_conversation_get(credential=request.auth, tenant=tenant, agent_id=aid, conversation_id=cid)


class FileListUploadApi(APIView):
    parser_classes = [MultiPartParser]

    class FilesUploadInputSerializer(serializers.Serializer):
        files = serializers.ListField(child=serializers.FileField(), help_text="One part per file (repeat the field)")

    @extend_schema(operation_id="v2_file_list", summary="The conversation's files, oldest first",
                   parameters=[*PATH_PARAMS, *PAGE_PARAMS],
                   responses={200: inline_serializer("FilePage", {
                       "data": FileOutputSerializer(many=True), "next": serializers.CharField(allow_null=True),
                       "has_more": serializers.BooleanField()}), **error_responses(400, 401, 403, 404, 429)})
    def get(self, request, tenant: str, aid: str, cid: str):
        conversation = conversation_for(request, tenant, aid, cid)
        page = paginate(selectors.files_list(conversation_id=conversation.id),
                        limit=parse_limit(request.query_params.get("limit")), cursor=request.query_params.get("next"))
        return Response(page_body(page, FileOutputSerializer(page.items, many=True).data))

    @extend_schema(
        operation_id="v2_file_upload", summary="Upload files; every table among them becomes a data frame",
        description="multipart/form-data with one `files` part per file. Limits: CONDUET_FILE_MAX_BYTES a file "
                    "(25 MiB) and CONDUET_FILE_MAX_COUNT files a request (10); past either the whole request is "
                    "413 PAYLOAD_TOO_LARGE and nothing is stored. Each CSV, TSV, XLSX/XLS/ODS (one frame per "
                    "sheet), Parquet or JSON-lines file becomes a data frame named after it (made unique: `sales`, "
                    "`sales_2`); a file that cannot be read as a table is still stored, its frame `failed` with the "
                    "reason (see the data-frames list).",
        parameters=PATH_PARAMS, request={"multipart/form-data": FilesUploadInputSerializer},
        responses={201: FileOutputSerializer(many=True), **error_responses(400, 401, 403, 404, 429),
                   413: OpenApiResponse(ERROR, description="PAYLOAD_TOO_LARGE: a file over CONDUET_FILE_MAX_BYTES "
                                                           "or more than CONDUET_FILE_MAX_COUNT files; nothing is "
                                                           "stored"),
                   415: OpenApiResponse(ERROR, description="UNSUPPORTED_MEDIA_TYPE: the body is not "
                                                           "multipart/form-data")})
    def post(self, request, tenant: str, aid: str, cid: str):
        conversation = conversation_for(request, tenant, aid, cid)
        uploads = _uploads(request)
        stored = services.files_upload(conversation=conversation, uploads=uploads)
        return Response(FileOutputSerializer(stored, many=True).data, status=201)


def _uploads(request) -> list:
    """The `files` parts, parsed by LimitedUploadHandler (size, count and hash checked as they stream in)."""
    django_request = request._request
    if not request.content_type.startswith("multipart/form-data"):
        raise ApiError("Send the files as multipart/form-data (one `files` part per file).",
                       code=ErrorCode.UNSUPPORTED_MEDIA_TYPE)
    meta = django_request.META
    if not meta.get("CONTENT_LENGTH") and "chunked" in meta.get("HTTP_TRANSFER_ENCODING", "").lower():
        size = _body_size(django_request)  # the ASGI handler spooled it: the multipart parser needs its length
        if size is not None:
            meta["CONTENT_LENGTH"] = str(size)
    django_request.upload_handlers = [LimitedUploadHandler(django_request)]
    try:
        files, fields = request.FILES, request.data
    except TooManyFilesSent:
        raise too_many_files() from None
    except (TooManyFieldsSent, RequestDataTooBig):
        raise ApiError("Too many or too large form fields: send only `files` parts.") from None
    unknown = sorted(set(fields) - {FILES_FIELD})
    if unknown:
        raise ApiError(f"Unknown multipart field {unknown[0]!r}: send files in the field `files`.",
                       details={key: ["Unknown field."] for key in unknown})
    uploads = files.getlist(FILES_FIELD)
    if not uploads:
        raise ApiError("No files: send one multipart part named `files` per file (with a filename).",
                       details={FILES_FIELD: ["At least one file is required."]})
    if len(uploads) > settings.CONDUET_FILE_MAX_COUNT:
        raise too_many_files()
    return uploads


class FileDownloadApi(APIView):
    @extend_schema(
        operation_id="v2_file_download", summary="A file's bytes",
        description="Streamed, with the stored `Content-Type`, `Content-Disposition: attachment` (RFC 6266, "
                    "`filename*` for non-ASCII names) and `X-Content-Type-Options: nosniff`.",
        parameters=[*PATH_PARAMS, OpenApiParameter("file_ref", str, required=True, description="`file_…`")],
        responses={(200, "application/octet-stream"): OpenApiResponse(description="The file's bytes"),
                   **error_responses(400, 401, 403, 404, 429)})
    def get(self, request, tenant: str, aid: str, cid: str):
        conversation = conversation_for(request, tenant, aid, cid)
        file_ref = request.query_params.get("file_ref", "")
        if not file_ref:
            raise ApiError("file_ref is required.", details={"file_ref": ["Required."]})
        stored = selectors.file_get(conversation_id=conversation.id, file_ref=file_ref)
        try:
            handle = default_storage.open(stored.stored_name, "rb")
        except FileNotFoundError:
            raise ApiError(f"The bytes of file {file_ref} are missing from storage.",
                           code=ErrorCode.NOT_FOUND) from None
        response = FileResponse(handle, as_attachment=True, filename=stored.name, content_type=stored.mime_type)
        response["Content-Length"] = str(stored.size)
        response["X-Content-Type-Options"] = "nosniff"
        return response
