"""The v2 data-frame endpoints (files/api/frames.py): the list with sample rows, and slices of a frame uploaded as CSV
checked, parameter by parameter and in combination, against plain Python over the rows the test wrote."""
import csv
import io
import itertools

import polars as pl
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from conversations.services import conversation_v2_create
from files import frame_cache, frames
from tests.files.test_frames import generated_rows, python_page

pytestmark = pytest.mark.django_db

ROWS = generated_rows(250, seed=5)
COLUMNS = list(ROWS[0])


def csv_bytes(rows: list[dict]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(rows[0])
    for row in rows:
        writer.writerow(["" if v is None else str(v).lower() if isinstance(v, bool) else v for v in row.values()])
    return buffer.getvalue().encode()


def as_json(rows: list[list]) -> list[list]:
    return [[v.isoformat() if hasattr(v, "isoformat") else v for v in row] for row in rows]


@pytest.fixture
def conversation(demo_project):
    return conversation_v2_create(agent=demo_project, name="frames")


@pytest.fixture
def url(demo_project, conversation):
    return (f"/tenants/{demo_project.workspace.slug}/api/v2/agents/{demo_project.id}/conversations/"
            f"{conversation.id}")


@pytest.fixture
def sales(developer, url):
    response = developer.post(f"{url}/files", {"files": [SimpleUploadedFile("sales.csv", csv_bytes(ROWS))]},
                              format="multipart")
    assert response.status_code == 201
    return f"{url}/data-frames/sales"


def test_the_list_shows_each_frame_with_samples(developer, url, sales):
    listed = developer.get(f"{url}/data-frames").json()
    assert len(listed) == 1
    frame = listed[0]
    assert frame["name"] == "sales" and frame["num_rows"] == 250 and frame["num_columns"] == 6
    assert frame["columns"] == [{"name": "id", "dtype": "Int64"}, {"name": "qty", "dtype": "Int64"},
                                {"name": "price", "dtype": "Float64"}, {"name": "name", "dtype": "String"},
                                {"name": "day", "dtype": "Date"}, {"name": "ok", "dtype": "Boolean"}]
    assert frame["sample_rows"] == [] and frame["status"] == "ready" and frame["error"] is None
    assert frame["data_frame_id"].startswith("df_") and frame["file_ref"].startswith("file_")
    assert (frame["sheet_name"], frame["sql_query"], frame["parent_data_frame_ids"]) == (None, None, [])
    three = developer.get(f"{url}/data-frames", {"num_samples": 3}).json()[0]["sample_rows"]
    assert three == [dict(zip(COLUMNS, row, strict=True)) for row in as_json(python_page(ROWS, limit=3))]
    for bad in ("-1", "101", "x"):
        response = developer.get(f"{url}/data-frames", {"num_samples": bad})
        assert response.status_code == 400 and "num_samples" in response.json()["error"]


def test_the_default_slice_is_the_first_hundred_rows_as_json(developer, sales):
    body = developer.get(sales).json()
    assert body["columns"][0] == {"name": "id", "dtype": "Int64"} and len(body["columns"]) == 6
    assert (body["offset"], body["limit"], body["total_rows"]) == (0, 100, 250)
    assert body["rows"] == as_json(python_page(ROWS, limit=100))


ORDERS = ["", "price", "-price", "qty,-id", "-name,price", "-qty,name,-day", "ok", "day,-qty"]


@pytest.fixture(autouse=True)
def _frame_cache(settings, tmp_path):
    settings.CONDUET_FRAME_CACHE_DIR = str(tmp_path / "frame-cache")


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("mapped", [False, True])
def test_every_parameter_and_their_combinations_match_python(developer, sales, order, mapped, monkeypatch):
    monkeypatch.setattr(frames, "SELECTION_MIN_ROWS", 50)  # the selection path too, on a frame of 250 rows
    monkeypatch.setattr(frames, "SAMPLE_SIZE", 32)
    if mapped:
        monkeypatch.setattr(frame_cache, "MIN_ROWS", 0)  # the memory-mapped Arrow copy
    order_by = [(part.lstrip("-"), part.startswith("-")) for part in order.split(",") if part]
    for offset, limit, columns in itertools.product((0, 7, 200, 249, 250, 400), (1, 50, 100),
                                                    ("", "name,id", "price")):
        params = {"offset": offset, "limit": limit, "order_by": order, "column_names": columns}
        body = developer.get(sales, {k: v for k, v in params.items() if v != ""}).json()
        names = columns.split(",") if columns else None
        expected = as_json(python_page(ROWS, offset=offset, limit=limit, columns=names, order_by=order_by))
        assert body["rows"] == expected, params
        assert [c["name"] for c in body["columns"]] == (names or COLUMNS)


def test_output_formats(developer, sales):
    params = {"offset": 3, "limit": 4, "order_by": "-price", "column_names": "id,price,day,name"}
    expected = as_json(python_page(ROWS, offset=3, limit=4, columns=params["column_names"].split(","),
                                   order_by=[("price", True)]))
    records = developer.get(sales, {**params, "output_format": "records"}).json()
    assert records == [dict(zip(["id", "price", "day", "name"], row, strict=True)) for row in expected]

    response = developer.get(sales, {**params, "output_format": "csv"})
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    lines = list(csv.reader(io.StringIO(response.content.decode())))
    assert lines[0] == ["id", "price", "day", "name"]
    assert lines[1:] == [["" if v is None else str(v) for v in row] for row in expected]

    response = developer.get(sales, {**params, "output_format": "parquet"})
    assert response["Content-Type"] == "application/vnd.apache.parquet"
    table = pl.read_parquet(io.BytesIO(response.content))
    assert as_json([list(r) for r in table.rows()]) == expected


@pytest.mark.parametrize(("params", "field"), [
    ({"column_names": "id,nope"}, "column_names"),
    ({"column_names": "id,,qty"}, "column_names"),
    ({"column_names": "id,id"}, "column_names"),
    ({"order_by": "nope"}, "order_by"),
    ({"order_by": "-"}, "order_by"),
    ({"order_by": "price,"}, "order_by"),
    ({"order_by": "price,-price"}, "order_by"),
    ({"order_by": "--price"}, "order_by"),
    ({"offset": "-1"}, "offset"),
    ({"offset": "1.5"}, "offset"),
    ({"offset": str(2**80)}, "offset"),
    ({"limit": "0"}, "limit"),
    ({"limit": "10001"}, "limit"),
    ({"output_format": "xml"}, "output_format"),
])
def test_bad_parameters_are_400_naming_them(developer, sales, params, field):
    response = developer.get(sales, params)
    assert response.status_code == 400, response.json()
    body = response.json()
    assert body["code"] == "BAD_REQUEST" and field in body["details"]
    if field in ("column_names", "order_by") and "nope" in str(params):
        assert "'nope'" in body["error"]


def test_unknown_frames_and_other_conversations_are_404(developer, url, sales, demo_project):
    assert developer.get(f"{url}/data-frames/nope").status_code == 404
    other = conversation_v2_create(agent=demo_project, name="other")
    other_url = url.replace(url.rsplit("/", 1)[1], other.id)
    assert developer.get(f"{other_url}/data-frames/sales").status_code == 404
    assert developer.get(f"{other_url}/data-frames").json() == []


def test_a_failed_frame_is_listed_with_its_error_and_its_slice_is_409(developer, url):
    developer.post(f"{url}/files", {"files": [SimpleUploadedFile("broken.csv", b"a,b\n1,2\n3,4,5\n")]},
                   format="multipart")
    listed = developer.get(f"{url}/data-frames", {"num_samples": 5}).json()[0]
    assert listed["status"] == "failed" and listed["error"].startswith("broken.csv could not be read as CSV")
    assert listed["sample_rows"] == [] and listed["columns"] == []
    response = developer.get(f"{url}/data-frames/broken")
    assert response.status_code == 409 and response.json()["code"] == "CONFLICT"
    assert "could not be read as CSV" in response.json()["error"]


def test_an_offset_past_the_end_is_an_empty_page(developer, sales):
    for order in ("", "price"):
        body = developer.get(sales, {"offset": 10_000, "order_by": order}).json()
        assert body["rows"] == [] and body["total_rows"] == 250
