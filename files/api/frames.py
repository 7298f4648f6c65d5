"""A v2 conversation's data frames (API.md §7): the list (with sample rows) and a slice of one frame, ordered and
projected, as JSON, records, CSV or Parquet. The slice is computed from the frame's Parquet without loading it whole
(files/frames.py)."""
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api.errors import ApiError, ErrorCode
from config.api.schema import ERROR, error_responses
from files import frames, selectors
from files.api.files import PATH_PARAMS, conversation_for

MAX_SAMPLES = 100
DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
MAX_OFFSET = 2**53
UNORDERED_TYPES = ("List", "Array", "Struct", "Object", "Binary")  # polars types a page cannot be sorted by
FORMATS = ("json", "records", "csv", "parquet")
PARQUET_TYPE = "application/vnd.apache.parquet"


def _int_param(request, name: str, *, default: int, low: int, high: int | None) -> int:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return default
    bounds = f"from {low} to {high:,}" if high is not None else f"≥ {low}"
    if not raw.isascii() or not raw.isdigit():  # int() also takes " 5", "+5", "5_0" and "١٢" (Arabic digits)
        raise ApiError(f"{name} must be an integer {bounds}.", details={name: ["Not an integer."]})
    value = int(raw)
    if value < low or (high is not None and value > high):
        raise ApiError(f"{name} must be an integer {bounds}.", details={name: [f"Out of range ({bounds})."]})
    return value


class ColumnSerializer(serializers.Serializer):
    name = serializers.CharField()
    dtype = serializers.CharField(help_text="The polars type: Int64, Float64, String, Date, Boolean, …")


class DataFrameOutputSerializer(serializers.Serializer):
    data_frame_id = serializers.CharField(source="id", help_text="`df_…`")
    name = serializers.CharField(help_text="Unique in the conversation; the table's name in SQL")
    sheet_name = serializers.CharField(allow_null=True, help_text="The spreadsheet sheet it came from, else null")
    num_rows = serializers.IntegerField()
    num_columns = serializers.IntegerField()
    columns = ColumnSerializer(many=True)
    sample_rows = serializers.ListField(child=serializers.DictField(), help_text="The first `num_samples` rows, "
                                        "as objects keyed by column name (JSON-safe values, see the slice)")
    file_ref = serializers.CharField(source="file_id", allow_null=True, help_text="The uploaded file, else null")
    parent_data_frame_ids = serializers.ListField(child=serializers.CharField(),
                                                  help_text="The frames its SQL read (a query result)")
    sql_query = serializers.CharField(allow_null=True, help_text="The SQL that made it, else null")
    status = serializers.ChoiceField(choices=["ready", "failed"],
                                     help_text="Addition to the contract: `failed` when its file could not be read "
                                               "as a table")
    error = serializers.CharField(allow_null=True, help_text="Addition to the contract: why it failed, else null")
    created_at = serializers.DateTimeField()

    def to_representation(self, frame):
        body = super().to_representation(frame)
        for field in ("sheet_name", "sql_query", "error"):
            body[field] = body[field] or None
        return body


class DataFrameListApi(APIView):
    @extend_schema(
        operation_id="v2_data_frame_list", summary="The conversation's data frames, oldest first",
        description="Not paginated (the contract's `[DataFrame]`): a conversation's frames are its uploads' tables "
                    "and its queries' results. A failed frame has `status` failed, its `error`, no columns.",
        parameters=[*PATH_PARAMS, OpenApiParameter("num_samples", int, description=f"0–{MAX_SAMPLES}, default 0: "
                                                   "the first rows of each ready frame in `sample_rows`")],
        responses={200: DataFrameOutputSerializer(many=True), **error_responses(400, 401, 403, 404, 429)})
    def get(self, request, tenant: str, aid: str, cid: str):
        conversation = conversation_for(request, tenant, aid, cid)
        samples = _int_param(request, "num_samples", default=0, low=0, high=MAX_SAMPLES)
        items = selectors.frames_list(conversation_id=conversation.id)
        for frame in items:
            ready = samples and frame.status == frame.Status.READY
            frame.sample_rows = frames.json_records(frames.frame_sample(frame, samples)) if ready else []
        return Response(DataFrameOutputSerializer(items, many=True).data)


SLICE_JSON = inline_serializer("DataFrameSlice", {
    "columns": ColumnSerializer(many=True),
    "rows": serializers.ListField(child=serializers.ListField(), help_text="Values in `columns` order"),
    "offset": serializers.IntegerField(),
    "limit": serializers.IntegerField(),
    "total_rows": serializers.IntegerField(help_text="Rows of the whole frame"),
})


class DataFrameSliceApi(APIView):
    @extend_schema(
        operation_id="v2_data_frame_get", summary="A slice of a data frame",
        description="Rows [offset, offset + limit) in `order_by` order (the file's order without it). Ties keep the "
                    "file's order and nulls come last in either direction, so pages tile the frame. Values are "
                    "JSON-safe: dates and times ISO 8601, durations in seconds, NaN and infinities null, decimals "
                    "as strings, bytes as hex. `output_format`: json (default), records (a list of objects), csv "
                    "(text/csv with a header), parquet (application/vnd.apache.parquet). A frame whose file could "
                    "not be read is 409 CONFLICT with its error.",
        parameters=[*PATH_PARAMS,
                    OpenApiParameter("name", str, OpenApiParameter.PATH, description="The frame's name"),
                    OpenApiParameter("offset", int, description="0–2^53, default 0"),
                    OpenApiParameter("limit", int, description=f"1–{MAX_LIMIT:,}, default {DEFAULT_LIMIT}"),
                    OpenApiParameter("column_names", str, description="Comma-separated; default all"),
                    OpenApiParameter("order_by", str, description="Comma-separated columns, `-column` descending"),
                    OpenApiParameter("output_format", str, enum=list(FORMATS), description="Default json")],
        responses={(200, "application/json"): OpenApiResponse(SLICE_JSON, description="json: the slice; records: "
                                                              "a list of objects"),
                   (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="csv"),
                   (200, PARQUET_TYPE): OpenApiResponse(OpenApiTypes.BINARY, description="parquet"),
                   **error_responses(400, 401, 403, 404, 429),
                   409: OpenApiResponse(ERROR, description="CONFLICT: the frame failed (its error says why)")})
    def get(self, request, tenant: str, aid: str, cid: str, name: str):
        conversation = conversation_for(request, tenant, aid, cid)
        params = request.query_params
        output = params.get("output_format") or "json"
        if output not in FORMATS:
            raise ApiError(f"output_format must be one of {', '.join(FORMATS)}.",
                           details={"output_format": [f"Unknown format {output!r}."]})
        offset = _int_param(request, "offset", default=0, low=0, high=MAX_OFFSET)
        limit = _int_param(request, "limit", default=DEFAULT_LIMIT, low=1, high=MAX_LIMIT)
        frame = selectors.frame_ready_get(conversation_id=conversation.id, name=name)
        known = [column["name"] for column in frame.columns]
        columns = _column_names(params.get("column_names"), known)
        order_by = _order_by(params.get("order_by"), known)
        for key, _desc in order_by:
            dtype = next(column["dtype"] for column in frame.columns if column["name"] == key)
            if dtype.startswith(UNORDERED_TYPES):
                raise ApiError(f"Column {key!r} ({dtype}) cannot be ordered by.", details={"order_by": [key]})
        try:
            table = frames.frame_slice(frame, offset=offset, limit=limit, columns=columns, order_by=order_by)
        except FileNotFoundError:  # as the file download says: the row is there, its bytes are not (was a 500)
            raise ApiError(f"The bytes of data frame {frame.name} are missing from storage.",
                           code=ErrorCode.NOT_FOUND) from None
        if output == "csv":
            response = HttpResponse(frames.csv_text(table), content_type="text/csv; charset=utf-8")
        elif output == "parquet":
            response = HttpResponse(frames.parquet_bytes(table), content_type=PARQUET_TYPE)
            response["Content-Disposition"] = f'attachment; filename="{frame.name}.parquet"'
        elif output == "records":
            return Response(frames.json_records(table))
        else:
            dtypes = {column["name"]: column["dtype"] for column in frame.columns}
            return Response({"columns": [{"name": c, "dtype": dtypes[c]} for c in table.columns],
                             "rows": frames.json_rows(table), "offset": offset, "limit": limit,
                             "total_rows": frame.num_rows})
        response["X-Content-Type-Options"] = "nosniff"
        return response


def _names(raw: str, field: str) -> list[str]:
    names = [part.strip() for part in raw.split(",")]
    if any(not part for part in names):
        raise ApiError(f"{field} has an empty name: separate column names with single commas.",
                       details={field: ["Empty column name."]})
    return names


def _column_names(raw: str | None, known: list[str]) -> list[str] | None:
    if raw in (None, ""):
        return None
    names = _names(raw, "column_names")
    for name in names:
        if name not in known:
            raise ApiError(f"Unknown column {name!r} in column_names.", details={"column_names": [f"Unknown: {name}"]})
    if len(set(names)) != len(names):
        raise ApiError("column_names names a column twice.", details={"column_names": ["Duplicate column."]})
    return names


def _order_by(raw: str | None, known: list[str]) -> list[tuple[str, bool]]:
    if raw in (None, ""):
        return []
    keys = []
    for part in _names(raw, "order_by"):
        descending = part.startswith("-")
        name = part[1:].strip() if descending else part
        if name not in known:
            raise ApiError(f"Unknown column {name!r} in order_by (`column` or `-column`, comma-separated).",
                           details={"order_by": [f"Unknown: {name}"]})
        if any(name == other for other, _ in keys):
            raise ApiError(f"order_by names {name!r} twice.", details={"order_by": ["Duplicate column."]})
        keys.append((name, descending))
    return keys
