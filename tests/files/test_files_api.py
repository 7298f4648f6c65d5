"""The v2 files endpoints (files/api/files.py): upload (multipart, repeated `files`), list, download by file_ref; the
limits refuse the whole request with nothing stored; another agent's or tenant's conversation is a 404."""
import hashlib
from pathlib import Path
from urllib.parse import quote

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from agents.services import developer_token_create, project_api_key_create
from conversations.services import conversation_v2_create
from files.models import DataFrame, StoredFile
from tests.factories import MembershipFactory, ProjectFactory

pytestmark = pytest.mark.django_db

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
       b"\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82")


def base(project, conversation) -> str:
    return f"/tenants/{project.workspace.slug}/api/v2/agents/{project.id}/conversations/{conversation.id}"


@pytest.fixture
def conversation(demo_project):
    return conversation_v2_create(agent=demo_project, name="Q3 reconciliation")


@pytest.fixture
def url(demo_project, conversation):
    return base(demo_project, conversation)


def upload(client, url, *files):
    return client.post(f"{url}/files", {"files": [SimpleUploadedFile(name, data) for name, data in files]},
                       format="multipart")


def stored_bytes(settings) -> list[Path]:
    root = Path(settings.MEDIA_ROOT)
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_the_seed_example_upload_invoice_and_receipt_then_download_each(developer, url, settings):
    response = upload(developer, url, ("invoice.pdf", PDF), ("receipt.png", PNG))
    assert response.status_code == 201, response.json()
    body = response.json()
    assert [f["name"] for f in body] == ["invoice.pdf", "receipt.png"]
    assert [f["mime_type"] for f in body] == ["application/pdf", "image/png"]
    assert [f["size"] for f in body] == [len(PDF), len(PNG)]
    assert [f["sha256"] for f in body] == [hashlib.sha256(PDF).hexdigest(), hashlib.sha256(PNG).hexdigest()]
    assert all(f["file_ref"].startswith("file_") and f["created_at"] for f in body)
    assert set(body[0]) == {"file_ref", "name", "mime_type", "size", "sha256", "created_at"}

    for file, data in zip(body, (PDF, PNG), strict=True):
        response = developer.get(f"{url}/files/download/", {"file_ref": file["file_ref"]})
        assert response.status_code == 200
        assert b"".join(response.streaming_content) == data
        assert response["Content-Type"] == file["mime_type"]
        assert response["Content-Disposition"] == f'attachment; filename="{file["name"]}"'
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["Content-Length"] == str(len(data))
    # the stored names reveal nothing of the upload's name
    assert sorted(p.name for p in stored_bytes(settings)) == sorted(f"{f['file_ref']}{Path(f['name']).suffix}"
                                                                    for f in body)


def test_a_server_key_of_the_agent_may_upload_too(server_client, url):
    assert upload(server_client, url, ("notes.txt", b"hello")).status_code == 201


def test_the_list_is_paginated_oldest_first(developer, url):
    refs = []
    for n in range(5):
        refs.append(upload(developer, url, (f"n{n}.txt", b"x" * n)).json()[0]["file_ref"])
    first = developer.get(f"{url}/files", {"limit": 3}).json()
    assert [f["file_ref"] for f in first["data"]] == refs[:3] and first["has_more"] is True
    second = developer.get(f"{url}/files", {"limit": 3, "next": first["next"]}).json()
    assert [f["file_ref"] for f in second["data"]] == refs[3:] and second == {**second, "has_more": False,
                                                                               "next": None}
    assert developer.get(f"{url}/files", {"limit": 0}).status_code == 400


def test_the_type_comes_from_the_bytes_not_the_name_or_the_client(developer, url):
    files = {"files": [SimpleUploadedFile("photo.pdf", PNG, content_type="application/pdf"),
                       SimpleUploadedFile("page.html", b"<script>alert(1)</script>", content_type="image/png"),
                       SimpleUploadedFile("data.bin", bytes(range(256)), content_type="text/html"),
                       SimpleUploadedFile("prog.txt", b"\x7fELF\x02\x01\x01" + bytes(100))]}
    body = developer.post(f"{url}/files", files, format="multipart").json()
    assert [f["mime_type"] for f in body] == ["image/png", "text/html", "application/octet-stream",
                                              "application/x-executable"]
    download = developer.get(f"{url}/files/download/", {"file_ref": body[1]["file_ref"]})
    assert download["Content-Disposition"].startswith("attachment;")  # never rendered inline
    assert download["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(("sent", "kept"), [
    ("../../etc/passwd", "passwd"),
    ("..\\..\\windows\\system.ini", "system.ini"),
    ("evil\x00name\x1b[31m.csv", "evilname[31m.csv"),
    ("report\u202egpj.exe", "reportgpj.exe"),  # a right-to-left override that would disguise the extension
    ("  ...hidden.txt  ", "hidden.txt"),
    ("Übersicht – März 2024.txt", "Übersicht – März 2024.txt"),
    ("a" * 400 + ".txt", "a" * 196 + ".txt"),
])
def test_hostile_names_are_sanitized(developer, url, sent, kept):
    from files.services import file_name_clean

    assert file_name_clean(sent) == kept
    body = upload(developer, url, (sent, b"text")).json()
    name = body[0]["name"]
    assert "/" not in name and "\\" not in name and "\x00" not in name and len(name) <= 200
    assert name == kept or sent.startswith(("../", "..\\"))  # Django's parser takes the basename first
    download = developer.get(f"{url}/files/download/", {"file_ref": body[0]["file_ref"]})
    disposition = download["Content-Disposition"]
    assert "\n" not in disposition and "\r" not in disposition
    if not name.isascii():
        assert f"filename*=utf-8''{quote(name)}" in disposition


def test_an_oversized_file_is_413_and_nothing_of_the_request_is_stored(developer, url, settings, conversation):
    settings.CONDUET_FILE_MAX_BYTES = 2048
    response = upload(developer, url, ("small.csv", b"a,b\n1,2\n"), ("big.bin", b"x" * 2049))
    assert response.status_code == 413
    assert response.json()["code"] == "PAYLOAD_TOO_LARGE" and "big.bin" in response.json()["error"]
    assert not StoredFile.objects.exists() and not DataFrame.objects.exists()
    assert stored_bytes(settings) == []
    assert upload(developer, url, ("exact.bin", b"x" * 2048)).status_code == 201  # the limit itself is allowed


def test_too_many_files_is_413_and_nothing_is_stored(developer, url, settings):
    settings.CONDUET_FILE_MAX_COUNT = 3
    response = upload(developer, url, *[(f"f{n}.txt", b"x") for n in range(4)])
    assert response.status_code == 413 and response.json()["details"] == {"files": ["At most 3 files."]}
    assert not StoredFile.objects.exists() and stored_bytes(settings) == []
    assert upload(developer, url, *[(f"f{n}.txt", b"x") for n in range(3)]).status_code == 201


def test_a_failure_while_storing_leaves_no_row_and_no_bytes(developer, url, settings, monkeypatch):
    import files.services

    def broken(**kwargs):
        raise RuntimeError("the disk is full")

    monkeypatch.setattr(files.services, "frame_create", broken)
    response = upload(developer, url, ("a.txt", b"x"), ("sales.csv", b"a,b\n1,2\n"))
    assert response.status_code == 500 and "disk" not in response.json()["error"]
    assert not StoredFile.objects.exists() and stored_bytes(settings) == []


@pytest.mark.parametrize(("body", "content_type", "status", "fragment"), [
    ({}, "multipart", 400, "files"),
    ({"other": "x"}, "multipart", 400, "other"),
    ({"name": "x"}, "json", 415, "multipart"),
])
def test_bad_uploads_are_clear_errors(developer, url, body, content_type, status, fragment):
    response = developer.post(f"{url}/files", body, format=content_type)
    assert response.status_code == status
    assert fragment in response.json()["error"]


def test_an_empty_file_list_and_a_part_without_a_file_name_are_400(developer, url):
    response = developer.post(f"{url}/files", b"--B\r\nContent-Disposition: form-data; name=\"files\"; "
                              b"filename=\"\"\r\n\r\n\r\n--B--\r\n", content_type="multipart/form-data; boundary=B")
    assert response.status_code == 400 and "files" in response.json()["error"]


def test_a_file_of_another_field_name_is_400(developer, url):
    response = developer.post(f"{url}/files", {"file": SimpleUploadedFile("a.txt", b"x")}, format="multipart")
    assert response.status_code == 400 and "'file'" in response.json()["error"]


def test_download_needs_a_ref_of_this_conversation(developer, url, demo_project):
    ref = upload(developer, url, ("a.txt", b"x")).json()[0]["file_ref"]
    other = conversation_v2_create(agent=demo_project, name="other")
    other_url = base(demo_project, other)
    assert developer.get(f"{other_url}/files/download/", {"file_ref": ref}).status_code == 404
    assert developer.get(f"{url}/files/download/", {"file_ref": "file_nope"}).status_code == 404
    missing = developer.get(f"{url}/files/download/")
    assert missing.status_code == 400 and missing.json()["details"] == {"file_ref": ["Required."]}
    assert developer.get(f"{other_url}/files").json()["data"] == []


def test_another_agent_or_tenant_or_a_v1_session_is_404(developer, url, conversation, demo_project, client_for):
    other = ProjectFactory()
    assert developer.get(f"{base(other, conversation)}/files").status_code == 404  # not the developer's workspace
    wrong_tenant = url.replace(f"/tenants/{demo_project.workspace.slug}/", "/tenants/nope/")
    assert developer.get(f"{wrong_tenant}/files").status_code == 404
    _row, other_key = project_api_key_create(project=other, name="k")
    assert upload(client_for(other_key), url, ("a.txt", b"x")).status_code == 404
    member = MembershipFactory()
    _row, stranger_token = developer_token_create(user=member.user, name="t")
    assert client_for(stranger_token).get(f"{url}/files").status_code == 404
    from conversations.models import Conversation

    v1 = Conversation.objects.create(project=demo_project, user_id="jane")
    assert developer.get(f"{base(demo_project, v1)}/files").status_code == 404
    assert not StoredFile.objects.exists()


def test_a_widget_key_is_refused(widget_key, client_for, url):
    assert client_for(widget_key).get(f"{url}/files").status_code == 403


def test_table_files_become_frames_at_upload(developer, url, conversation):
    body = upload(developer, url, ("Sales 2024.csv", b"region,amount\nnorth,10\nsouth,20\n"),
                  ("notes.txt", b"not a table")).json()
    frame = DataFrame.objects.get(conversation=conversation)
    assert frame.name == "sales_2024" and frame.file_id == body[0]["file_ref"] and frame.num_rows == 2


def test_the_asgi_body_cap_covers_a_full_upload_on_the_files_path_only(settings, url):
    from config.api.body_limit import body_limit

    settings.CONDUET_FILE_MAX_BYTES, settings.CONDUET_FILE_MAX_COUNT = 25 * 1024 * 1024, 10
    assert body_limit(f"{url}/files") > 10 * 25 * 1024 * 1024
    assert body_limit(f"{url}/data-frames") == body_limit("/api/v1/knowledge-base/upload") < 25 * 1024 * 1024


def test_file_refs_check_keeps_the_order_and_names_a_ref_of_another_conversation(developer, url, demo_project,
                                                                                 conversation):
    from config.api.errors import NotFound
    from files.services import file_refs_check

    refs = [f["file_ref"] for f in upload(developer, url, ("a.txt", b"a"), ("b.txt", b"b")).json()]
    assert [f.id for f in file_refs_check(conversation_id=conversation.id, file_refs=refs[::-1])] == refs[::-1]
    other = conversation_v2_create(agent=demo_project, name="other")
    with pytest.raises(NotFound, match=refs[1]):
        file_refs_check(conversation_id=other.id, file_refs=refs[1:])
