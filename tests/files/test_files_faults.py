"""Uploads an attacker or an unlucky client sends, through a real daphne process: tables that expand far past their
size (a spreadsheet naming a far-off cell, a zipped cell of a gigabyte, a CSV line of two million commas) fail their
frame with a reason while the server lives on; multipart bodies with too many parts are a 400, not a 500."""
import io
import zipfile

import httpx
import pytest

from conversations.services import conversation_v2_create
from files import frames
from files.models import DataFrame, StoredFile

pytestmark = [pytest.mark.django_db(transaction=True)]

MIB = 1024 * 1024
_TYPES = ('<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
          '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
          '<Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" '
          'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
          '<Override PartName="/xl/worksheets/sheet1.xml" '
          'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>')
_RELS = ('<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
         '<Relationship Id="rId1" Target="{target}" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
         'relationships/{kind}"/></Relationships>')
_WORKBOOK = ('<?xml version="1.0"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
             'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets>'
             '<sheet name="S" sheetId="1" r:id="rId1"/></sheets></workbook>')


def xlsx_bomb(*, far_cell: bool = False, cell_mib: int = 0) -> bytes:
    """A minimal workbook whose one sheet names cells A1 and XFD1048576 (calamine's dense grid: 512 GiB), or holds
    one inline string of `cell_mib` MiB (deflated ~1,000 to 1)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as book:
        book.writestr("[Content_Types].xml", _TYPES)
        book.writestr("_rels/.rels", _RELS.format(target="xl/workbook.xml", kind="officeDocument"))
        book.writestr("xl/workbook.xml", _WORKBOOK)
        book.writestr("xl/_rels/workbook.xml.rels", _RELS.format(target="worksheets/sheet1.xml", kind="worksheet"))
        with book.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as sheet:
            sheet.write(b'<?xml version="1.0"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/'
                        b'2006/main"><sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>')
            for _ in range(cell_mib):
                sheet.write(b"A" * MIB)
            sheet.write(b"x</t></is></c></row>")
            if far_cell:
                sheet.write(b'<row r="1048576"><c r="XFD1048576"><v>1</v></c></row>')
            sheet.write(b"</sheetData></worksheet>")
    return buffer.getvalue()


def multipart(parts: list[tuple[str, str | None, bytes]]) -> bytes:
    body = b""
    for field, filename, data in parts:
        name = f'; filename="{filename}"' if filename is not None else ""
        body += (f'--x\r\nContent-Disposition: form-data; name="{field}"{name}\r\n'
                 "Content-Type: application/octet-stream\r\n\r\n").encode() + data + b"\r\n"
    return body + b"--x--\r\n"


@pytest.fixture
def url(daphne_url, demo_project):
    conversation = conversation_v2_create(agent=demo_project, name="faults")
    return (f"{daphne_url}/tenants/{demo_project.workspace.slug}/api/v2/agents/{demo_project.id}/conversations/"
            f"{conversation.id}")


def post(url: str, key: str, body: bytes, path: str = "/files") -> httpx.Response:
    return httpx.post(f"{url}{path}", content=body, timeout=120,
                      headers={"Authorization": f"Bearer {key}", "Content-Type": "multipart/form-data; boundary=x"})


@pytest.mark.server
def test_spreadsheet_bombs_fail_their_frame_and_the_server_lives(url, daphne_url, project_key):
    """The far-off cell aborted the whole process (a Rust allocation failure); the gigabyte cell took 20 GB."""
    body = multipart([("files", "far.xlsx", xlsx_bomb(far_cell=True)),
                      ("files", "huge.xlsx", xlsx_bomb(cell_mib=3 * 1024)),
                      ("files", "fine.csv", b"a,b\n1,2\n")])
    assert len(body) < 4 * MIB

    response = post(url, project_key, body)

    assert response.status_code == 201, response.text
    assert httpx.get(f"{daphne_url}/healthz").status_code == 200
    made = {frame.name: frame for frame in DataFrame.objects.all()}
    assert made["fine"].status == "ready"
    for name in ("far", "huge"):
        assert made[name].status == "failed"
        assert "needs more than" in made[name].error and "of memory to read" in made[name].error
    assert StoredFile.objects.count() == 3  # the files are kept, as for any table that cannot be read


@pytest.mark.server
def test_a_csv_of_two_million_columns_is_refused_before_it_is_read(url, project_key):
    """Read, it took 25 s and 3.8 GB (a 25 MiB line would exhaust the host)."""
    response = post(url, project_key, multipart([("files", "commas.csv", b"," * (2 * MIB) + b"\n1\n")]))

    assert response.status_code == 201, response.text
    frame = DataFrame.objects.get()
    assert frame.status == "failed" and "2,097,153 columns, more than the 16,384" in frame.error


@pytest.mark.server
@pytest.mark.parametrize("parts", [[("files", f"a{i}.txt", b"x") for i in range(101)],
                                   [(f"f{i}", None, b"x") for i in range(1001)]], ids=["101 files", "1001 fields"])
def test_a_knowledge_upload_with_too_many_parts_is_400(daphne_url, project_key, parts):
    """Django's multipart parser raises TooManyFilesSent / TooManyFieldsSent: they were 500s."""
    response = post(daphne_url, project_key, multipart([*parts, ("file", "a.txt", b"hello")]),
                    path="/api/v1/knowledge-base/upload")

    assert response.status_code == 400, response.text
    assert response.json() == {"error": "Too many parts in the multipart body.", "code": "BAD_REQUEST"}


def test_a_boundary_less_multipart_is_not_called_json(developer, demo_project):
    conversation = conversation_v2_create(agent=demo_project, name="faults")
    response = developer.generic(
        "POST", f"/tenants/{demo_project.workspace.slug}/api/v2/agents/{demo_project.id}/conversations/"
                f"{conversation.id}/files", b"--x--\r\n", content_type="multipart/form-data")

    assert response.status_code == 400
    assert response.json()["error"].startswith("Malformed multipart body: Multipart form parse error")


@pytest.mark.parametrize(("data", "width"), [(b'"a,b",c\n1,2\n', 2), (b"a;b;c\n1;2;3\n", 3),
                                             (b'"' + b"," * 20_000 + b'",x\n1,2\n', 2)])
def test_a_csv_header_is_counted_outside_quotes(tmp_path, data, width):
    path = tmp_path / "t.csv"
    path.write_bytes(data)
    [table] = frames.tables_read(str(path), name="t.csv", kind="csv")
    assert table.error == "" and table.table.width == width


@pytest.mark.parametrize("kind", ["parquet", "jsonl"])
def test_wide_parquet_and_json_lines_are_refused(tmp_path, kind):
    import polars as pl

    wide = pl.DataFrame({f"c{i}": [1] for i in range(frames.MAX_COLUMNS + 1)})
    path = tmp_path / f"w.{kind}"
    wide.write_parquet(path) if kind == "parquet" else wide.write_ndjson(path)
    [table] = frames.tables_read(str(path), name=path.name, kind=kind)
    assert "16,385 columns, more than the 16,384" in table.error


def slice_url(base: str, demo_project, conversation, name: str) -> str:
    return (f"{base}/tenants/{demo_project.workspace.slug}/api/v2/agents/{demo_project.id}/conversations/"
            f"{conversation.id}/data-frames/{name}")


@pytest.mark.parametrize("raw", [" 5", "5 ", "+5", "5_0", "١٢", "0x10", "²"])
@pytest.mark.parametrize("param", ["offset", "limit"])
def test_slice_integers_are_plain_ascii_digits(developer, demo_project, param, raw):
    """int() took all of these (Arabic-Indic digits as 12)."""
    import polars as pl

    from files.store import frame_create

    conversation = conversation_v2_create(agent=demo_project, name="faults")
    frame_create(conversation_id=conversation.id, name="t", table=pl.DataFrame({"a": list(range(20))}))
    response = developer.get(slice_url("", demo_project, conversation, "t"), {param: raw})

    assert response.status_code == 400 and response.json()["details"] == {param: ["Not an integer."]}


@pytest.mark.server
def test_concurrent_first_ordered_pages_of_a_large_frame_agree(url, project_key):
    """Each request finds no Arrow copy and builds one (files/frame_cache.py): every page is still right."""
    import concurrent.futures

    from files import frame_cache

    rows = frame_cache.MIN_ROWS + 50_000
    values = [(i * 7919) % rows for i in range(rows)]
    csv = "id,v\n" + "".join(f"{i},{v}\n" for i, v in enumerate(values))
    assert post(url, project_key, multipart([("files", "big.csv", csv.encode())])).status_code == 201
    offsets = [0, 1, 2, 3, 1000, 50_000, rows - 3, rows - 1]

    def page(offset: int):
        response = httpx.get(f"{url}/data-frames/big", params={"order_by": "-v", "offset": offset, "limit": 3},
                             headers={"Authorization": f"Bearer {project_key}"}, timeout=60)
        assert response.status_code == 200, response.text
        return response.json()["rows"]

    with concurrent.futures.ThreadPoolExecutor(len(offsets)) as pool:
        pages = list(pool.map(page, offsets))

    ordered = sorted(range(rows), key=lambda i: -values[i])
    assert pages == [[[i, values[i]] for i in ordered[offset: offset + 3]] for offset in offsets]


@pytest.mark.parametrize("order_by", ["", "-a"])
def test_a_frame_whose_bytes_are_gone_is_404_not_500(developer, demo_project, order_by):
    """An operator restored the database without the media (or lost a file): as the file download says."""
    import polars as pl
    from django.core.files.storage import default_storage

    from files.store import frame_create

    conversation = conversation_v2_create(agent=demo_project, name="faults")
    frame = frame_create(conversation_id=conversation.id, name="t", table=pl.DataFrame({"a": [1, 2]}))
    default_storage.delete(frame.stored_name)
    response = developer.get(slice_url("", demo_project, conversation, "t"), {"order_by": order_by})

    assert response.status_code == 404
    assert response.json() == {"error": "The bytes of data frame t are missing from storage.", "code": "NOT_FOUND"}
