"""Knowledge Base API (API.md §4) as a client sees it: the six endpoints, their errors, and who may call them."""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django_tasks_db.models import DBTaskResult

from agents.knowledge.models import KnowledgeChunk, KnowledgeDocument
from agents.services import project_api_key_create
from tests.agents.knowledge.test_services import REFUNDS, committed, run_worker, sample_files  # noqa: F401

KB = "/api/v1/knowledge-base"


@pytest.fixture
def kb(server_client, committed):  # noqa: F811
    """The server client; its writes' on-commit work (enqueueing) runs as if the request had committed."""

    class Client:
        def post(self, path: str, data=None, **kwargs):
            with committed():
                return server_client.post(path, data, **kwargs)

        def __getattr__(self, name):
            return getattr(server_client, name)

    return Client()


def create(kb, name="Refund policy", content=REFUNDS, **extra) -> dict:
    response = kb.post(KB, {"name": name, "type": "text", "content": content, **extra}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def upload(kb, name: str, data: bytes, content_type: str = "text/plain", **fields):
    return kb.post(f"{KB}/upload", {"file": SimpleUploadedFile(name, data, content_type), **fields},
                   format="multipart")


def assert_error(response, status: int, code: str, *words: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["code"] == code
    for word in words:
        assert word in body["error"], body
    return body


# --- documents

def test_a_text_document_is_created_processed_and_read_back_with_its_chunks(kb, run_worker):  # noqa: F811
    created = create(kb, metadata={"team": "billing"})
    assert set(created) == {"id", "name", "type", "status"}
    assert (created["name"], created["type"], created["status"]) == ("Refund policy", "text", "processing")

    run_worker()
    response = kb.get(f"{KB}/{created['id']}")
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["error"], body["metadata"], body["embeddingModel"]) == (
        "ready", "", {"team": "billing"}, None)
    assert body["chunkCount"] >= 1 and "chunks" not in body

    chunks = kb.get(f"{KB}/{created['id']}?include=chunks").json()["chunks"]
    assert len(chunks) == body["chunkCount"]
    assert [c["position"] for c in chunks] == list(range(len(chunks)))
    assert chunks[0]["id"].startswith("chk_")
    assert set(chunks[0]) == {"id", "position", "content", "headingPath", "metadata"}
    assert chunks[0]["headingPath"][0] == "Refunds"
    assert chunks[0]["metadata"] == {"team": "billing", "source": "Refund policy"}


def test_the_list_filters_by_status_pages_and_says_how_search_works(kb, run_worker):  # noqa: F811
    first = create(kb, name="First")
    run_worker()
    second = create(kb, name="Second")

    body = kb.get(KB).json()
    assert [d["id"] for d in body["documents"]] == [second["id"], first["id"]]  # newest first
    assert body["total"] == 2 and body["next"] is None
    assert set(body["documents"][0]) == {"id", "name", "type", "status", "chunkCount", "createdAt"}
    assert body["search"] == {"modes": ["lexical"], "embeddingModel": None}

    ready = kb.get(f"{KB}?status=ready").json()
    assert [d["id"] for d in ready["documents"]] == [first["id"]] and ready["total"] == 1

    page = kb.get(f"{KB}?limit=1").json()
    assert [d["id"] for d in page["documents"]] == [second["id"]] and page["total"] == 2
    rest = kb.get(f"{KB}?limit=1&next={page['next']}").json()
    assert [d["id"] for d in rest["documents"]] == [first["id"]] and rest["next"] is None

    assert_error(kb.get(f"{KB}?status=done"), 400, "BAD_REQUEST", "status")
    assert_error(kb.get(f"{KB}?limit=0"), 400, "BAD_REQUEST", "limit")
    assert_error(kb.get(f"{KB}?next=garbage"), 400, "BAD_REQUEST", "cursor")


def test_the_search_metadata_names_the_embedding_model_when_there_is_one(kb, settings):
    settings.CONDUET_EMBEDDINGS_BASE_URL = "http://127.0.0.1:9/v1"
    settings.CONDUET_EMBEDDINGS_MODEL = "text-embedding-3-small"
    search = kb.get(KB).json()["search"]
    assert search["embeddingModel"] == "text-embedding-3-small"
    assert "lexical" in search["modes"]


@pytest.mark.parametrize("body, field", [
    ({"content": "text"}, "name"),
    ({"name": "Doc"}, "content"),
    ({"name": "Doc", "content": ""}, "content"),
    ({"name": 12, "content": "text"}, "name"),
    ({"name": "Doc", "content": ["a"]}, "content"),
    ({"name": "x" * 301, "content": "text"}, "name"),
    ({"name": "Doc", "content": "text", "type": "pdf"}, "type"),
    ({"name": "Doc", "content": "text", "metadata": {"a": {"b": 1}}}, "metadata"),
    ({"name": "Doc", "content": "text", "metadata": "x"}, "metadata"),
    ({"name": "Doc", "content": "text", "colour": "red"}, "colour"),
])
def test_a_bad_text_document_is_400_naming_the_field(kb, body, field):
    response = kb.post(KB, body, format="json")
    assert assert_error(response, 400, "BAD_REQUEST")["details"].keys() == {field}
    assert not KnowledgeDocument.objects.exists()


def test_malformed_or_non_object_json_is_400(kb):
    assert_error(kb.post(KB, "{bad", content_type="application/json"), 400, "BAD_REQUEST", "Malformed JSON")
    assert_error(kb.post(KB, [1, 2], format="json"), 400, "BAD_REQUEST", "JSON object")
    assert_error(kb.post(KB, "name=x", content_type="text/plain"), 415, "UNSUPPORTED_MEDIA_TYPE")


# --- uploads

def test_each_file_type_is_uploaded_and_processed(kb, run_worker):  # noqa: F811
    ids = {}
    for name, (data, content_type) in sample_files().items():
        response = upload(kb, name, data, content_type, metadata=json.dumps({"file": name}))
        assert response.status_code == 201, response.json()
        assert response.json()["status"] == "processing"
        ids[name] = response.json()["id"]
    run_worker()

    for name, document_id in ids.items():
        body = kb.get(f"{KB}/{document_id}?include=chunks").json()
        assert (body["status"], body["error"], body["type"]) == ("ready", "", name.rsplit(".", 1)[1]), body
        assert body["metadata"] == {"file": name}
        assert "refund" in " ".join(c["content"] for c in body["chunks"]).lower()


def test_a_corrupt_pdf_and_an_empty_file_fail_with_a_clear_error(kb, run_worker):  # noqa: F811
    corrupt = upload(kb, "manual.pdf", b"%PDF-1.4 garbage", "application/pdf").json()["id"]
    empty = upload(kb, "notes.txt", b"", "text/plain").json()["id"]
    run_worker()

    corrupt, empty = kb.get(f"{KB}/{corrupt}").json(), kb.get(f"{KB}/{empty}").json()
    assert corrupt["status"] == "failed" and "PDF" in corrupt["error"]
    assert (empty["status"], empty["error"]) == ("failed", "The document is empty.")
    assert corrupt["chunkCount"] == empty["chunkCount"] == 0
    assert not KnowledgeChunk.objects.exists()


def test_an_unsupported_type_is_415(kb):
    response = upload(kb, "logo.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 32, "image/png")
    assert_error(response, 415, "UNSUPPORTED_MEDIA_TYPE", "logo.png", "unsupported")
    assert not KnowledgeDocument.objects.exists()


def test_an_oversized_upload_is_413_with_no_row_and_no_bytes(kb, settings):
    settings.CONDUET_KB_MAX_DOCUMENT_BYTES = 4096
    assert_error(upload(kb, "big.txt", b"a " * 4000), 413, "PAYLOAD_TOO_LARGE", "4,096 bytes")
    # Far over the limit: refused on its declared length, before the body is parsed.
    assert_error(upload(kb, "huge.txt", b"a " * 700_000), 413, "PAYLOAD_TOO_LARGE")
    assert not KnowledgeDocument.objects.exists()
    assert not (settings.MEDIA_ROOT / "knowledge").exists()


def test_a_file_past_the_in_memory_size_streams_to_a_temporary_file(kb, settings, run_worker):  # noqa: F811
    """Past FILE_UPLOAD_MAX_MEMORY_SIZE Django spools the file to disk; the JSON body limit (1 MiB) is not applied."""
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 1024
    data = ("Refunds are paid within five working days. " * 40_000).encode()  # ~1.7 MiB
    response = upload(kb, "long.txt", data)
    assert response.status_code == 201, response.json()
    document = KnowledgeDocument.objects.get()
    assert document.size_bytes == len(data)
    assert (settings.MEDIA_ROOT / document.stored_path).read_bytes() == data


@pytest.mark.parametrize("fields, words", [
    ({"metadata": "{not json"}, ["metadata", "not valid JSON"]),
    ({"metadata": "[1, 2]"}, ["metadata", "JSON object"]),
    ({"metadata": '{"a": [1]}'}, ["metadata"]),
    ({"colour": "red"}, ["colour"]),
])
def test_bad_upload_fields_are_400(kb, fields, words):
    assert_error(upload(kb, "a.txt", b"hello", **fields), 400, "BAD_REQUEST", *words)
    assert not KnowledgeDocument.objects.exists()


def test_an_upload_without_a_file_is_400(kb):
    response = kb.post(f"{KB}/upload", {"metadata": "{}"}, format="multipart")
    assert_error(response, 400, "BAD_REQUEST", "file")


# --- URLs

class _Site(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path == "/help/refunds":
            body = (b"<html><head><title>Refunds</title></head><body><main><h1>Refunds</h1><p>You can ask for a "
                    b"refund within 30 days of delivery; the money is back on your card within five working days."
                    b"</p></main></body></html>")
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path == "/moved":
            self.send_response(302)
            self.send_header("Location", "http://10.0.0.1/latest/meta-data/")
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()


@pytest.fixture
def site(settings):
    """A web site on 127.0.0.1, which the outbound guard admits (10.0.0.1, where it redirects, it does not)."""
    settings.CONDUET_OUTBOUND_ALLOWLIST = ["127.0.0.1"]
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Site)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_url_is_fetched_by_the_worker(kb, site, run_worker):  # noqa: F811
    response = kb.post(f"{KB}/upload", {"name": "Refunds page", "url": f"{site}/help/refunds"}, format="json")
    assert response.status_code == 201, response.json()
    created = response.json()
    assert (created["type"], created["status"]) == ("url", "processing")
    run_worker()

    body = kb.get(f"{KB}/{created['id']}?include=chunks").json()
    assert body["status"] == "ready", body
    assert body["sourceUrl"] == f"{site}/help/refunds"
    assert "30 days" in body["chunks"][0]["content"]
    assert body["chunks"][0]["metadata"]["source"] == f"{site}/help/refunds"


@pytest.mark.parametrize("url", ["http://10.0.0.1/", "http://127.0.0.1:9/", "http://169.254.169.254/latest/",
                                 "ftp://example.com/file.txt", "not a url"])
def test_a_url_to_a_private_address_or_not_http_is_400(kb, url):
    response = kb.post(f"{KB}/upload", {"name": "Internal", "url": url}, format="json")
    assert assert_error(response, 400, "BAD_REQUEST")["details"].keys() == {"url"}
    assert not KnowledgeDocument.objects.exists()


def test_a_url_that_redirects_to_a_private_address_fails(kb, site, run_worker):  # noqa: F811
    created = kb.post(f"{KB}/upload", {"name": "Moved", "url": f"{site}/moved"}, format="json").json()
    run_worker()

    body = kb.get(f"{KB}/{created['id']}").json()
    assert body["status"] == "failed"
    assert "redirects to a refused address" in body["error"]
    assert body["chunkCount"] == 0


def test_a_url_body_is_checked(kb):
    assert_error(kb.post(f"{KB}/upload", {"name": "x"}, format="json"), 400, "BAD_REQUEST", "url")
    assert_error(kb.post(f"{KB}/upload", {"url": 5}, format="json"), 400, "BAD_REQUEST", "url")
    assert_error(kb.post(f"{KB}/upload", {"url": "https://example.com", "extra": 1}, format="json"), 400,
                 "BAD_REQUEST", "extra")


# --- search

def test_search_finds_the_document_and_says_which_mode_ran(kb, run_worker):  # noqa: F811
    refunds = create(kb, metadata={"team": "billing"})
    create(kb, name="Opening hours", content="# Opening hours\n\nThe shop is open from 9 to 5 on weekdays.",
           metadata={"team": "store"})
    run_worker()

    response = kb.post(f"{KB}/search", {"query": "how long does a refund take", "topK": 3}, format="json")
    assert response.status_code == 200, response.json()
    assert response["X-Search-Mode"] == "lexical"  # hybrid without embeddings
    hits = response.json()
    assert hits and hits[0]["documentId"] == refunds["id"]
    assert set(hits[0]) == {"content", "score", "documentId", "documentName", "chunkId", "metadata"}
    assert hits[0]["documentName"] == "Refund policy" and hits[0]["chunkId"].startswith("chk_")
    assert isinstance(hits[0]["score"], float)

    filtered = kb.post(f"{KB}/search", {"query": "refund", "filters": {"team": "store"}}, format="json").json()
    assert all(hit["metadata"]["team"] == "store" for hit in filtered)
    lexical = kb.post(f"{KB}/search", {"query": "opening hours", "mode": "lexical", "topK": 1}, format="json")
    assert lexical["X-Search-Mode"] == "lexical" and len(lexical.json()) == 1


def test_semantic_search_without_embeddings_is_400_saying_so(kb):
    response = kb.post(f"{KB}/search", {"query": "refund", "mode": "semantic"}, format="json")
    assert "embedding" in assert_error(response, 400, "BAD_REQUEST")["error"].lower()


@pytest.mark.parametrize("body, field", [
    ({}, "query"),
    ({"query": ""}, "query"),
    ({"query": "   "}, "query"),
    ({"query": "x" * 1001}, "query"),
    ({"query": 42}, "query"),
    ({"query": "refund", "topK": 0}, "topK"),
    ({"query": "refund", "topK": 51}, "topK"),
    ({"query": "refund", "topK": "5"}, "topK"),
    ({"query": "refund", "topK": 2.5}, "topK"),
    ({"query": "refund", "topK": True}, "topK"),
    ({"query": "refund", "mode": "fuzzy"}, "mode"),
    ({"query": "refund", "filters": ["team"]}, "filters"),
    ({"query": "refund", "filters": {"team": ["a", "b"]}}, "filters"),
    ({"query": "refund", "limit": 3}, "limit"),
])
def test_a_bad_search_is_400_naming_the_field(kb, body, field):
    response = kb.post(f"{KB}/search", body, format="json")
    assert assert_error(response, 400, "BAD_REQUEST")["details"].keys() == {field}


# --- deletion

def test_deleting_a_document_removes_its_chunks_and_stored_bytes(kb, run_worker, settings):  # noqa: F811
    created = create(kb)
    run_worker()
    document = KnowledgeDocument.objects.get(id=created["id"])
    stored = settings.MEDIA_ROOT / document.stored_path
    assert stored.exists() and KnowledgeChunk.objects.filter(document=document).exists()

    assert kb.delete(f"{KB}/{created['id']}").status_code == 204

    assert not KnowledgeChunk.objects.exists()
    assert_error(kb.get(f"{KB}/{created['id']}"), 404, "NOT_FOUND")
    assert_error(kb.delete(f"{KB}/{created['id']}"), 404, "NOT_FOUND")
    assert kb.post(f"{KB}/search", {"query": "refund"}, format="json").json() == []


def test_the_stored_bytes_go_once_the_delete_is_committed(kb, settings, committed):  # noqa: F811
    created = create(kb)
    stored = settings.MEDIA_ROOT / KnowledgeDocument.objects.get(id=created["id"]).stored_path
    with committed():
        assert kb.delete(f"{KB}/{created['id']}").status_code == 204
    assert not stored.exists()


# --- who may call

def test_another_projects_key_sees_none_of_the_documents(kb, other_project, client_for):
    created = create(kb)
    _row, key = project_api_key_create(project=other_project, name="other")
    other = client_for(key)

    assert_error(other.get(f"{KB}/{created['id']}"), 404, "NOT_FOUND")
    assert_error(other.delete(f"{KB}/{created['id']}"), 404, "NOT_FOUND")
    assert other.get(KB).json()["documents"] == []
    assert KnowledgeDocument.objects.filter(id=created["id"]).exists()


def test_a_widget_key_is_403(widget_key, client_for):
    widget = client_for(widget_key)
    assert_error(widget.get(KB), 403, "FORBIDDEN", "widget")
    assert_error(widget.post(KB, {"name": "x", "content": "y"}, format="json"), 403, "FORBIDDEN")
    assert_error(widget.post(f"{KB}/search", {"query": "x"}, format="json"), 403, "FORBIDDEN")
    assert not KnowledgeDocument.objects.exists()


def test_a_developer_token_names_its_project(developer_token, demo_project, client_for, other_project):
    token = client_for(developer_token)
    assert_error(token.get(KB), 400, "BAD_REQUEST", "X-Project-Id")
    assert_error(client_for(developer_token, HTTP_X_PROJECT_ID=other_project.id).get(KB), 404, "NOT_FOUND")

    member = client_for(developer_token, HTTP_X_PROJECT_ID=demo_project.id)
    response = member.post(KB, {"name": "Doc", "content": "Some text."}, format="json")
    assert response.status_code == 201
    assert member.get(KB).json()["total"] == 1


def test_no_key_is_401_and_every_answer_carries_the_rate_limit(api, kb):
    assert_error(api.get(KB), 401, "UNAUTHORIZED")
    assert kb.get(KB)["X-RateLimit-Limit"]


def test_the_schema_documents_the_six_operations(api, db):
    schema = api.get("/api/schema/?format=json").json()
    operations = {op["operationId"] for path, item in schema["paths"].items() if "knowledge-base" in path
                  for op in item.values()}
    assert operations == {"knowledge_document_list", "knowledge_document_create", "knowledge_document_get",
                          "knowledge_document_delete", "knowledge_document_upload", "knowledge_search"}


def test_nothing_is_queued_for_a_refused_request(kb):
    kb.post(KB, {"name": "Doc"}, format="json")
    upload(kb, "x.exe", b"MZ\x90\x00", "application/octet-stream")
    assert not DBTaskResult.objects.exists()
