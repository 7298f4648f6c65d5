"""Reading uploaded tables into frames and pages back out of them (files/frames.py). Every page is checked against
plain Python over the rows the test generated: a stable sort, nulls last in either direction, ties in file order."""
import datetime
import io
import random

import openpyxl
import polars as pl
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from conversations.services import conversation_v2_create
from files import frame_cache, frames
from files.models import DataFrame
from files.services import files_upload
from files.store import frame_create
from tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def conversation():
    return conversation_v2_create(agent=ProjectFactory(), name="tables")


def upload(conversation, name: str, data: bytes):
    return files_upload(conversation=conversation, uploads=[SimpleUploadedFile(name, data)])[0]


def xlsx(sheets: dict[str, list[list]]) -> bytes:
    book = openpyxl.Workbook()
    book.remove(book.active)
    for title, rows in sheets.items():
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


# --- reading

def test_a_csv_becomes_a_typed_frame_named_after_the_file(conversation):
    stored = upload(conversation, "Q3 Sales.csv", b"id,amount,day,ok,who\n1,2.5,2024-01-02,true,ann\n2,,2024-02-03,"
                                                  b"false,\n")
    frame = DataFrame.objects.get(file=stored)
    assert (frame.name, frame.status, frame.num_rows, frame.num_columns) == ("q3_sales", "ready", 2, 5)
    assert [c["dtype"] for c in frame.columns] == ["Int64", "Float64", "Date", "Boolean", "String"]
    page = frames.frame_slice(frame)
    assert frames.json_rows(page) == [[1, 2.5, "2024-01-02", True, "ann"], [2, None, "2024-02-03", False, None]]


@pytest.mark.parametrize(("encoding", "text"), [("latin-1", "ville,prix\nMontréal,3\nQuébec,4\n"),
                                                ("cp1252", "name,note\nCafé,“quoted”\nNaïve,€5\n"),
                                                ("utf-16", "name,n\nÅse,1\nØrjan,2\n"),
                                                ("utf-8-sig", "name,n\nZoë,1\n")])
def test_csv_encodings_are_detected(conversation, encoding, text):
    stored = upload(conversation, "t.csv", text.encode(encoding))
    frame = DataFrame.objects.get(file=stored)
    assert frame.status == "ready", frame.error
    expected = [line.split(",") for line in text.strip().splitlines()]
    assert [c["name"] for c in frame.columns] == expected[0]
    assert frames.frame_slice(frame)[expected[0][0]].to_list() == [row[0] for row in expected[1:]]


def test_tsv_semicolons_and_jsonl_and_parquet(conversation):
    tsv = DataFrame.objects.get(file=upload(conversation, "a.tsv", b"x\ty\n1\thello, world\n"))
    semi = DataFrame.objects.get(file=upload(conversation, "b.csv", b"x;y\n1;2,5\n"))
    jsonl = DataFrame.objects.get(file=upload(conversation, "c.jsonl", b'{"x": 1, "y": "a"}\n{"x": 2, "y": null}\n'))
    buffer = io.BytesIO()
    pl.DataFrame({"x": [1, 2, 3]}).write_parquet(buffer)
    parquet = DataFrame.objects.get(file=upload(conversation, "d.parquet", buffer.getvalue()))
    assert frames.frame_slice(tsv).rows() == [(1, "hello, world")]
    assert frames.frame_slice(semi).rows() == [(1, "2,5")]
    assert frames.frame_slice(jsonl).rows() == [(1, "a"), (2, None)]
    assert frames.frame_slice(parquet).rows() == [(1,), (2,), (3,)]


def test_a_late_row_that_breaks_the_guessed_type_is_read_as_text(conversation, monkeypatch):
    monkeypatch.setattr(frames, "INFER_ROWS", 2)
    frame = DataFrame.objects.get(file=upload(conversation, "late.csv", b"v,w,d\n1,2,2024-01-01\n2,3,2024-01-02\n"
                                                                        b"3,x,2024-01-03\nabc,4,2024-01-04\n"))
    assert frame.status == "ready", frame.error
    assert [c["dtype"] for c in frame.columns] == ["String", "String", "Date"]
    assert frames.frame_slice(frame)["v"].to_list() == ["1", "2", "3", "abc"]


def test_an_xlsx_with_two_sheets_makes_two_frames(conversation):
    stored = upload(conversation, "book.xlsx", xlsx({"Q1": [["a", "b"], [1, "x"], [2, "y"]],
                                                     "Q2": [["c"], [datetime.date(2024, 5, 1)]]}))
    made = list(DataFrame.objects.filter(file=stored).order_by("created_at", "id"))
    assert [(f.name, f.sheet_name, f.num_rows, f.status) for f in made] == [("book_q1", "Q1", 2, "ready"),
                                                                           ("book_q2", "Q2", 1, "ready")]
    assert frames.frame_slice(made[0]).rows() == [(1, "x"), (2, "y")]
    assert stored.mime_type == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def test_a_single_sheet_workbook_is_named_after_the_file(conversation):
    stored = upload(conversation, "prices.xlsx", xlsx({"Sheet1": [["p"], [1.5]]}))
    assert DataFrame.objects.get(file=stored).name == "prices"


@pytest.mark.parametrize(("name", "data", "fragment"), [
    ("broken.csv", b"a,b\n1,2\n3,4,5,6\n", "could not be read as CSV"),
    ("binary.csv", bytes(range(256)) * 64, "could not be read as CSV"),
    ("empty.csv", b"", "could not be read as CSV"),
    ("broken.xlsx", b"PK\x03\x04 this is not a workbook", "could not be read as a spreadsheet"),
    ("broken.parquet", b"PAR1 nope", "could not be read as Parquet"),
    ("broken.jsonl", b'{"a": 1}\n{not json\n', "could not be read as JSON lines"),
])
def test_a_malformed_table_is_stored_with_a_failed_frame_saying_why(conversation, name, data, fragment):
    stored = upload(conversation, name, data)
    assert stored.size == len(data)
    frame = DataFrame.objects.get(file=stored)
    assert frame.status == "failed" and frame.error.startswith(f"{name} {fragment}")
    assert frame.stored_name == "" and frame.num_rows == 0


def test_name_collisions_get_a_suffix(conversation):
    names = [DataFrame.objects.get(file=upload(conversation, "sales.csv", b"a\n1\n")).name for _ in range(3)]
    assert names == ["sales", "sales_2", "sales_3"]


# --- pages, against plain Python

def generated_rows(n: int, seed: int = 3) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        rows.append({
            "id": i,
            "qty": rng.randint(0, 9),  # many ties
            "price": None if rng.random() < 0.1 else round(rng.uniform(-50, 50), 2),
            "name": None if rng.random() < 0.1 else rng.choice(["ann", "bob", "Zoë", "émile", "李"]),
            "day": datetime.date(2024, 1, 1) + datetime.timedelta(days=rng.randint(0, 30)),
            "ok": rng.random() < 0.5,
        })
    return rows


def python_page(rows: list[dict], *, offset=0, limit=100, columns=None, order_by=()) -> list[list]:
    """Stable passes from the last key to the first; nulls after the values in either direction."""
    ordered = list(rows)
    for name, descending in reversed(list(order_by)):
        present = [r for r in ordered if r[name] is not None]
        absent = [r for r in ordered if r[name] is None]
        ordered = sorted(present, key=lambda r: r[name], reverse=descending) + absent
    columns = columns or list(rows[0])
    return [[r[c] for c in columns] for r in ordered[offset: offset + limit]]


def frame_of(conversation, rows: list[dict]) -> DataFrame:
    return frame_create(conversation_id=conversation.id, name="gen", table=pl.DataFrame(rows))


ORDERINGS = [(), (("price", False),), (("price", True),), (("qty", False), ("id", True)),
             (("name", True), ("price", False)), (("qty", True), ("name", False), ("day", True)), (("ok", False),),
             (("day", False), ("qty", True))]


@pytest.fixture(autouse=True)
def _frame_cache(settings, tmp_path):
    settings.CONDUET_FRAME_CACHE_DIR = str(tmp_path / "frame-cache")


def use_paths(monkeypatch, *, selection: bool, mapped: bool) -> None:
    if selection:  # the selection path on a small frame, with a tiny sample so that brackets miss and widen
        monkeypatch.setattr(frames, "SELECTION_MIN_ROWS", 0)
        monkeypatch.setattr(frames, "SAMPLE_SIZE", 16)
        monkeypatch.setattr(frames, "SAMPLE_MARGIN", 0.5)
    if mapped:  # the memory-mapped Arrow copy rather than the Parquet
        monkeypatch.setattr(frame_cache, "MIN_ROWS", 0)


@pytest.mark.parametrize("order_by", ORDERINGS)
@pytest.mark.parametrize("selection", [False, True])
@pytest.mark.parametrize("mapped", [False, True])
def test_every_page_matches_python(conversation, monkeypatch, order_by, selection, mapped, settings):
    use_paths(monkeypatch, selection=selection, mapped=mapped)
    rows = generated_rows(700)
    frame = frame_of(conversation, rows)
    for offset, limit in [(0, 10), (0, 700), (5, 1), (333, 50), (600, 100), (650, 100), (699, 5), (700, 5)]:
        for columns in (None, ["name", "id"]):
            page = frames.frame_slice(frame, offset=offset, limit=limit, columns=columns, order_by=list(order_by))
            expected = python_page(rows, offset=offset, limit=limit, columns=columns, order_by=order_by)
            assert page.rows() == [tuple(r) for r in expected], (offset, limit, columns, order_by)
    copies = list(frame_cache.cache_dir().glob("*.arrow")) if frame_cache.cache_dir().exists() else []
    assert len(copies) == (1 if mapped and order_by else 0)


def test_pages_tile_the_frame_in_the_order(conversation, monkeypatch):
    monkeypatch.setattr(frames, "SELECTION_MIN_ROWS", 0)
    rows = generated_rows(500, seed=9)
    frame = frame_of(conversation, rows)
    ids = []
    for offset in range(0, 500, 37):
        page = frames.frame_slice(frame, offset=offset, limit=37, columns=["id"], order_by=[("qty", True)])
        ids += page["id"].to_list()
    assert sorted(ids) == list(range(500))
    assert ids == [r[0] for r in python_page(rows, limit=500, columns=["id"], order_by=[("qty", True)])]


def test_nan_keys_fall_back_to_a_full_sort(conversation, monkeypatch):
    monkeypatch.setattr(frames, "SELECTION_MIN_ROWS", 0)
    frame = frame_create(conversation_id=conversation.id, name="nan",
                         table=pl.DataFrame({"v": [3.0, float("nan"), 1.0, None, 2.0]}))
    assert frames.json_rows(frames.frame_slice(frame, order_by=[("v", False)])) == [[1.0], [2.0], [3.0], [None],
                                                                                   [None]]


def test_json_values_are_safe():
    table = pl.DataFrame({"f": [1.5, float("nan"), float("inf")], "big": [2**62, -1, 0],
                          "ts": [datetime.datetime(2024, 1, 2, 3, 4, 5)] * 3,
                          "d": pl.Series([1, 2, 3]).cast(pl.Decimal(10, 2)),
                          "dur": [datetime.timedelta(seconds=90)] * 3, "l": [[1, 2], [], None]})
    assert frames.json_rows(table)[0] == [1.5, 2**62, "2024-01-02T03:04:05", "1.00", 90.0, [1, 2]]
    assert [row[0] for row in frames.json_rows(table)] == [1.5, None, None]


def test_the_arrow_copies_stay_within_the_budget_and_go_with_their_frames(conversation, monkeypatch, settings):
    monkeypatch.setattr(frame_cache, "MIN_ROWS", 0)
    made = [frame_of(conversation, generated_rows(2000, seed=n)) for n in range(3)]
    for frame in made:
        frames.frame_slice(frame, order_by=[("qty", False)])
    assert len(list(frame_cache.cache_dir().glob("*.arrow"))) == 3
    size = max(p.stat().st_size for p in frame_cache.cache_dir().glob("*.arrow"))
    settings.CONDUET_FRAME_CACHE_MB = 1
    monkeypatch.setattr(frame_cache, "MIN_ROWS", 0)
    budget_copies = (1024 * 1024) // size
    frame_cache._sweep(force=True)
    assert len(list(frame_cache.cache_dir().glob("*.arrow"))) == min(3, budget_copies)

    settings.CONDUET_FRAME_CACHE_MB = 100
    for frame in made:
        frames.frame_slice(frame, order_by=[("qty", False)])
    made[0].delete()
    frame_cache._sweep(force=True)
    assert sorted(p.name.split("-")[0] for p in frame_cache.cache_dir().glob("*.arrow")) == sorted(
        f.id for f in made[1:])
    frame_cache.frame_cache_forget([made[1].id])
    assert [p.name.split("-")[0] for p in frame_cache.cache_dir().glob("*.arrow")] == [made[2].id]


def test_without_a_usable_cache_pages_come_from_the_parquet(conversation, monkeypatch, settings, tmp_path):
    monkeypatch.setattr(frame_cache, "MIN_ROWS", 0)
    rows = generated_rows(300)
    frame = frame_of(conversation, rows)
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    settings.CONDUET_FRAME_CACHE_DIR = str(blocker)
    page = frames.frame_slice(frame, offset=10, limit=5, order_by=[("price", True)])
    assert page.rows() == [tuple(r) for r in python_page(rows, offset=10, limit=5, order_by=[("price", True)])]
    settings.CONDUET_FRAME_CACHE_MB = 0
    assert frame_cache.frame_mapped(frame) is None
