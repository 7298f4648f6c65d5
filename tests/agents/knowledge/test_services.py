"""The knowledge base's writes: creation stores and enqueues, the worker processes under a lease into one
transaction, failures leave a clear `failed` and no chunks, recovery and deletion."""
import hashlib
import io
from datetime import timedelta

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from agents.knowledge import services
from agents.knowledge.models import KnowledgeChunk, KnowledgeDocument
from agents.knowledge.services import (
    document_create_text,
    document_create_upload,
    document_delete,
    document_process,
    document_reprocess,
    documents_recover,
)
from config.api.errors import ApiError, ErrorCode
from tests.admin_urls import admin_url
from tests.fakes.embeddings_server import EmbeddingsServer, Failure

REFUNDS = """# Refunds

You can ask for a refund within 30 days of delivery. The money is back on your card within five working days.

## Exceptions

Gift cards and opened software cannot be refunded.
"""


@pytest.fixture
def run_worker(monkeypatch):
    """Runs the queued tasks in this process, as `manage.py worker --batch` does. The worker closes stale
    connections between tasks, which inside a test's transaction would close the test's own: not here."""
    monkeypatch.setattr("django_tasks_db.management.commands.db_worker.close_old_connections", lambda: None)

    def run() -> None:
        call_command("worker", "--batch", "--no-startup-delay", "--no-reload", verbosity=0)

    return run


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """`with committed():` runs what a request enqueues on commit (the test's transaction never commits)."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


def text_document(project, committed, content=REFUNDS, **metadata) -> KnowledgeDocument:
    with committed():
        return document_create_text(project=project, name="Refund policy", content=content, metadata=metadata)


def stored(document: KnowledgeDocument) -> bytes:
    with default_storage.open(document.stored_path, "rb") as handle:
        return handle.read()


def test_a_text_document_is_stored_and_queued_then_processed_into_chunks(demo_project, committed, run_worker):
    document = text_document(demo_project, committed, lang="en")

    assert document.status == "processing"
    assert document.stored_path.startswith(f"knowledge/{demo_project.id}/{document.id}/")
    assert stored(document) == REFUNDS.encode()
    assert DBTaskResult.objects.filter(status="READY", args_kwargs__kwargs={"document_id": document.id}).exists()

    run_worker()

    document.refresh_from_db()
    assert (document.status, document.error, document.lease_until) == ("ready", "", None)
    chunks = list(KnowledgeChunk.objects.filter(document=document).order_by("position"))
    assert document.chunk_count == len(chunks) >= 1
    assert any("30 days" in chunk.content for chunk in chunks)
    assert chunks[-1].heading_path == ["Refunds", "Exceptions"]
    assert chunks[0].metadata == {"lang": "en", "source": "Refund policy"}
    assert stored(document) == REFUNDS.encode()  # kept: processing again needs it


def test_processing_a_ready_document_again_changes_nothing(demo_project, committed, run_worker):
    document = text_document(demo_project, committed)
    run_worker()
    ids = set(KnowledgeChunk.objects.values_list("id", flat=True))

    document_process(document_id=document.id)

    assert set(KnowledgeChunk.objects.values_list("id", flat=True)) == ids


def test_process_again_replaces_the_chunks(demo_project, committed, run_worker):
    document = text_document(demo_project, committed)
    run_worker()
    old = set(KnowledgeChunk.objects.values_list("id", flat=True))

    with committed():
        document_reprocess(document=document)
    run_worker()

    document.refresh_from_db()
    assert document.status == "ready"
    new = set(KnowledgeChunk.objects.filter(document=document).values_list("id", flat=True))
    assert new and not new & old


@pytest.mark.parametrize("metadata, problem", [
    ({"tags": ["a"]}, "values must be text, numbers"),
    ({"nested": {"a": 1}}, "values must be text, numbers"),
    ({f"k{i}": i for i in range(33)}, "At most 32 keys"),
    ({"": 1}, "not a valid key"),
    ({"x" * 65: 1}, "not a valid key"),
    ({"note": "x" * 501}, "at most 500 characters"),
    (["not", "an", "object"], "Must be a JSON object"),
])
def test_metadata_is_a_small_flat_object(demo_project, metadata, problem):
    with pytest.raises(ApiError, match=problem) as raised:
        document_create_text(project=demo_project, name="Doc", content="Some text.", metadata=metadata)
    assert raised.value.code == ErrorCode.BAD_REQUEST
    assert not KnowledgeDocument.objects.exists()


@pytest.mark.parametrize("name, content, field", [
    ("", "text", "name"), ("   ", "text", "name"), ("x" * 301, "text", "name"), ("Doc", "", "content"),
    ("Doc", "  \n ", "content"),
])
def test_a_text_document_needs_a_name_and_content(demo_project, name, content, field):
    with pytest.raises(ApiError) as raised:
        document_create_text(project=demo_project, name=name, content=content, metadata=None)
    assert raised.value.details == {field: [pytest.approx(raised.value.details[field][0])]}


def test_an_oversized_document_is_413_and_nothing_is_stored(demo_project, settings):
    settings.CONDUET_KB_MAX_DOCUMENT_BYTES = 2048
    with pytest.raises(ApiError) as raised:
        document_create_text(project=demo_project, name="Big", content="word " * 1000)
    assert raised.value.code == ErrorCode.PAYLOAD_TOO_LARGE

    upload = SimpleUploadedFile("big.txt", b"word " * 1000, content_type="text/plain")
    with pytest.raises(ApiError) as raised:
        document_create_upload(project=demo_project, upload=upload)
    assert raised.value.code == ErrorCode.PAYLOAD_TOO_LARGE
    assert not KnowledgeDocument.objects.exists()
    assert not (settings.MEDIA_ROOT / "knowledge").exists()


def test_an_upload_is_hashed_and_kept_under_a_safe_name(demo_project, committed):
    data = b"Opening hours: 9 to 5.\n"
    upload = SimpleUploadedFile("../../etc/hours?.txt", data, content_type="text/plain")
    with committed():
        document = document_create_upload(project=demo_project, upload=upload, metadata={"team": "support"})

    assert (document.type, document.name, document.size_bytes) == ("txt", "hours?.txt", len(data))
    assert document.sha256 == hashlib.sha256(data).hexdigest()
    assert document.stored_path == f"knowledge/{demo_project.id}/{document.id}/hours.txt"
    assert stored(document) == data


def test_an_unsupported_upload_is_415(demo_project, settings):
    upload = SimpleUploadedFile("photo.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 64, content_type="image/png")
    with pytest.raises(ApiError) as raised:
        document_create_upload(project=demo_project, upload=upload)
    assert raised.value.code == ErrorCode.UNSUPPORTED_MEDIA_TYPE
    assert "photo.png" in raised.value.message
    assert not KnowledgeDocument.objects.exists()


def test_a_row_that_cannot_be_written_takes_its_bytes_with_it(demo_project, settings, monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("database down")

    monkeypatch.setattr(KnowledgeDocument, "save", fail)
    with pytest.raises(RuntimeError):
        document_create_upload(project=demo_project, upload=SimpleUploadedFile("a.txt", b"hello", "text/plain"))
    assert not list((settings.MEDIA_ROOT / "knowledge").rglob("*.txt"))


# --- processing failures: a clear reason, never a chunk

def test_a_corrupt_pdf_fails_with_a_clear_reason(demo_project, committed, run_worker):
    with committed():
        document = document_create_upload(project=demo_project, upload=SimpleUploadedFile(
            "manual.pdf", b"%PDF-1.7\nthis is not really a pdf", content_type="application/pdf"))
    run_worker()

    document.refresh_from_db()
    assert document.status == "failed"
    assert "PDF" in document.error and "Traceback" not in document.error
    assert not KnowledgeChunk.objects.exists()


def test_an_empty_file_fails_with_a_clear_reason(demo_project, committed, run_worker):
    with committed():
        document = document_create_upload(project=demo_project, upload=SimpleUploadedFile(
            "empty.txt", b"", content_type="text/plain"))
    run_worker()

    document.refresh_from_db()
    assert (document.status, document.error) == ("failed", "The document is empty.")


def test_an_unexpected_fault_fails_the_document_by_its_class_and_logs_it(demo_project, committed, monkeypatch,
                                                                         caplog):
    document = text_document(demo_project, committed)
    monkeypatch.setattr("agents.knowledge.chunking.chunk_document", lambda *a, **k: 1 / 0)

    document_process(document_id=document.id)

    document.refresh_from_db()
    assert (document.status, document.error) == ("failed", "Processing failed: ZeroDivisionError")
    assert "processing failed" in caplog.text


def test_a_fault_while_writing_the_chunks_leaves_none(demo_project, committed, monkeypatch):
    """Chunks appear only in the final transaction: a fault in it rolls every one of them back."""
    from agents.knowledge import index

    real = index.chunks_replace

    def half(**kwargs):
        real(**kwargs)
        assert KnowledgeChunk.objects.exists()
        raise RuntimeError("disk full")

    document = text_document(demo_project, committed)
    monkeypatch.setattr(index, "chunks_replace", half)
    document_process(document_id=document.id)

    document.refresh_from_db()
    assert (document.status, document.error, document.chunk_count) == ("failed", "Processing failed: RuntimeError", 0)
    assert not KnowledgeChunk.objects.exists()


# --- the lease

def test_a_document_leased_by_a_live_worker_is_left_to_it(demo_project, committed):
    document = text_document(demo_project, committed)
    until = timezone.now() + timedelta(seconds=60)
    KnowledgeDocument.objects.filter(pk=document.pk).update(lease_until=until, attempts=1)

    document_process(document_id=document.id)

    document.refresh_from_db()
    assert (document.status, document.lease_until, document.attempts) == ("processing", until, 1)
    assert not KnowledgeChunk.objects.exists()


def test_a_document_whose_lease_ran_out_is_taken_and_finished(demo_project, committed):
    document = text_document(demo_project, committed)
    KnowledgeDocument.objects.filter(pk=document.pk).update(lease_until=timezone.now() - timedelta(seconds=1),
                                                            attempts=1)
    document_process(document_id=document.id)

    document.refresh_from_db()
    assert (document.status, document.attempts) == ("ready", 2)


def test_a_worker_that_lost_its_lease_writes_nothing(demo_project, committed, monkeypatch):
    """Its lease ran out mid-document and another worker took it: the first one's chunks are never written."""
    from agents.knowledge import chunking

    real = chunking.chunk_document

    def stolen(*args, **kwargs):
        KnowledgeDocument.objects.filter(pk=document.pk).update(lease_until=timezone.now() + timedelta(minutes=5))
        return real(*args, **kwargs)

    document = text_document(demo_project, committed)
    monkeypatch.setattr(chunking, "chunk_document", stolen)
    document_process(document_id=document.id)

    document.refresh_from_db()
    assert document.status == "processing"
    assert not KnowledgeChunk.objects.exists()


def test_a_document_taken_too_many_times_fails(demo_project, committed, settings):
    document = text_document(demo_project, committed)
    KnowledgeDocument.objects.filter(pk=document.pk).update(attempts=settings.CONDUET_KB_MAX_ATTEMPTS)

    document_process(document_id=document.id)

    document.refresh_from_db()
    assert document.status == "failed"
    assert document.error == f"Processing did not finish after {settings.CONDUET_KB_MAX_ATTEMPTS} attempts."


def test_recovery_enqueues_documents_whose_lease_ran_out_or_that_were_never_taken(demo_project, committed):
    def make(name: str, **fields) -> KnowledgeDocument:
        with committed():
            document = document_create_text(project=demo_project, name=name, content="Some text.")
        KnowledgeDocument.objects.filter(pk=document.pk).update(**fields)
        return document

    now = timezone.now()
    dead = make("dead worker", lease_until=now - timedelta(seconds=1))
    lost = make("never taken", updated_at=now - timedelta(minutes=2))
    make("just created")
    make("live worker", lease_until=now + timedelta(seconds=60))
    make("ready", status="ready", lease_until=now - timedelta(seconds=1))
    DBTaskResult.objects.all().delete()

    with committed():
        assert documents_recover() == 2

    queued = {r.args_kwargs["kwargs"]["document_id"] for r in DBTaskResult.objects.filter(status="READY")}
    assert queued == {dead.id, lost.id}
    dead.refresh_from_db()
    assert dead.lease_until is None
    with committed():
        assert documents_recover() == 0  # marked: not enqueued again at the next beat


# --- embeddings

@pytest.fixture
def embeddings(settings):
    with EmbeddingsServer() as server:
        server.configure(settings, CONDUET_EMBEDDINGS_MAX_RETRIES=0, CONDUET_EMBEDDINGS_TIMEOUT_SECONDS=5.0)
        yield server


def test_with_embeddings_the_document_records_its_model_and_dimensions(demo_project, committed, embeddings):
    from agents.knowledge.index import vectors_available

    if not vectors_available():
        pytest.skip("this database stores no vectors")
    document = text_document(demo_project, committed)
    document_process(document_id=document.id)

    document.refresh_from_db()
    assert (document.status, document.embedding_model, document.embedding_dimensions) == (
        "ready", "fake-embedding", 256)
    assert embeddings.inputs == list(KnowledgeChunk.objects.order_by("position").values_list("content", flat=True))


def test_an_embedding_outage_is_retried_later_then_fails_after_the_attempts(demo_project, committed, embeddings,
                                                                           settings):
    from agents.knowledge.index import vectors_available

    if not vectors_available():
        pytest.skip("this database stores no vectors")
    settings.CONDUET_KB_MAX_ATTEMPTS = 2
    document = text_document(demo_project, committed)
    DBTaskResult.objects.all().delete()
    embeddings.script(Failure(500), Failure(500))

    with committed():
        document_process(document_id=document.id)
    document.refresh_from_db()
    assert document.status == "processing" and document.lease_until > timezone.now()
    assert "Embedding failed (attempt 1 of 2)" in document.error
    [retry] = DBTaskResult.objects.filter(status="READY")
    assert retry.run_after > timezone.now()  # later, not at once

    KnowledgeDocument.objects.filter(pk=document.pk).update(lease_until=timezone.now())  # the retry's time came
    document_process(document_id=document.id)
    document.refresh_from_db()
    assert document.status == "failed"
    assert document.error.startswith("Embedding failed after 2 attempts")
    assert not KnowledgeChunk.objects.exists()


# --- deletion

def test_deleting_removes_the_row_its_chunks_and_its_stored_bytes(demo_project, committed, run_worker, settings):
    document = text_document(demo_project, committed)
    run_worker()
    path = settings.MEDIA_ROOT / document.stored_path
    assert path.exists() and KnowledgeChunk.objects.exists()

    with committed():
        document_delete(document=document)

    assert not KnowledgeDocument.objects.exists() and not KnowledgeChunk.objects.exists()
    assert not path.exists()


def test_documents_are_processed_from_each_type(demo_project, committed, run_worker):
    """pdf, docx, html, md, txt and csv, each from a small fixture made here."""
    files = sample_files()
    with committed():
        documents = [document_create_upload(project=demo_project, upload=SimpleUploadedFile(name, data, kind))
                     for name, (data, kind) in files.items()]
    run_worker()

    for document in documents:
        document.refresh_from_db()
        assert (document.name, document.status, document.error) == (document.name, "ready", "")
        assert document.chunk_count >= 1
        text = " ".join(KnowledgeChunk.objects.filter(document=document).values_list("content", flat=True))
        assert "refund" in text.lower(), document.name
    assert [d.type for d in documents] == ["pdf", "docx", "html", "md", "txt", "csv"]


def sample_files() -> dict[str, tuple[bytes, str]]:
    from docx import Document
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    pdf.multi_cell(0, 8, "Refunds. You can ask for a refund within 30 days of delivery.")
    word = Document()
    word.add_heading("Refunds", level=1)
    word.add_paragraph("You can ask for a refund within 30 days of delivery.")
    docx = io.BytesIO()
    word.save(docx)
    html = ("<html><head><title>Refunds</title></head><body><nav>Home | Shop</nav><main><h1>Refunds</h1>"
            "<p>You can ask for a refund within 30 days of delivery. The money is back on your card within five "
            "working days, whatever the payment method was.</p></main></body></html>")
    return {
        "policy.pdf": (bytes(pdf.output()), "application/pdf"),
        "policy.docx": (docx.getvalue(),
                        "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
        "policy.html": (html.encode(), "text/html"),
        "policy.md": (REFUNDS.encode(), "text/markdown"),
        "policy.txt": (b"Refunds\n\nYou can ask for a refund within 30 days of delivery.\n", "text/plain"),
        "policy.csv": (b"question,answer\nHow do refunds work?,Ask for a refund within 30 days.\n", "text/csv"),
    }


def test_the_storage_path_keeps_only_a_safe_file_name(demo_project):
    document = KnowledgeDocument(project=demo_project, name="x", type="txt")
    assert services._storage_path(document, "..\\..\\windows\\evil name.txt").endswith("/evil_name.txt")
    assert services._storage_path(document, "..").endswith(f"/{document.id}/document")


# --- the admin: read-only, with "process again" and a delete that takes the stored bytes

def test_the_admin_shows_documents_and_processes_one_again(admin_client, demo_project, committed, run_worker,
                                                          monkeypatch, settings):
    document = text_document(demo_project, committed)
    monkeypatch.setattr("agents.knowledge.chunking.chunk_document", lambda *a, **k: 1 / 0)
    run_worker()
    monkeypatch.undo()
    monkeypatch.setattr("django_tasks_db.management.commands.db_worker.close_old_connections", lambda: None)

    listing = admin_client.get("/admin/agents/knowledgedocument/").content.decode()
    assert "Refund policy" in listing and "Processing failed: ZeroDivisionError" in listing
    page = admin_client.get(admin_url("knowledgedocument", document.pk))
    assert page.status_code == 200 and b"Processing failed" in page.content
    assert admin_client.get("/admin/agents/knowledgedocument/add/").status_code == 403

    with committed():
        admin_client.post("/admin/agents/knowledgedocument/",
                          {"action": "process_again", "_selected_action": [document.pk]})
    run_worker()
    document.refresh_from_db()
    assert (document.status, document.error) == ("ready", "")

    path = settings.MEDIA_ROOT / document.stored_path
    with committed():
        admin_client.post(admin_url("knowledgedocument", document.pk, "delete"), {"post": "yes"})
    assert not KnowledgeDocument.objects.exists() and not path.exists()
