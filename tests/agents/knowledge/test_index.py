"""Chunks and their vectors as each database stores them: written together, replaced together, deleted together."""
import logging

import pytest
from django.db import connection

from agents.knowledge import index
from agents.knowledge.chunking import ChunkDraft
from agents.knowledge.embeddings import Embedded
from agents.knowledge.models import KnowledgeChunk, KnowledgeDocument
from agents.knowledge.search import knowledge_search
from config import db  # noqa: F401  (the skip conditions read it)
from tests.fakes.embeddings_server import embed

pytestmark = pytest.mark.django_db


def drafts(*texts: str) -> list[ChunkDraft]:
    return [ChunkDraft(position=i, content=text, heading_path=["Help"], metadata={"n": i},
                       word_count=len(text.split())) for i, text in enumerate(texts)]


def embedded(items: list[ChunkDraft], dimensions: int = 256) -> Embedded:
    return Embedded(model="fake-embedding", dimensions=dimensions,
                    vectors=[embed(d.content)[:dimensions] for d in items])


def vector_count(dimensions: int = 256) -> int:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT count(*) FROM knowledge_chunk WHERE vector_dims(embedding) = %s", [dimensions])
        else:
            if dimensions not in index.sqlite_vec_tables(cursor):
                return 0
            cursor.execute(f"SELECT count(*) FROM {index.sqlite_vec_table(dimensions)}")
        return cursor.fetchone()[0]


def lexical_count() -> int:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT count(*) FROM knowledge_chunk WHERE search IS NOT NULL")
        else:
            cursor.execute("SELECT count(*) FROM knowledge_chunk_fts")
        return cursor.fetchone()[0]


@pytest.fixture
def document(kb_project):
    return KnowledgeDocument.objects.create(project=kb_project, name="Refunds", type="text", status="ready")


def test_this_database_stores_vectors():
    assert index.vectors_available()


def test_chunks_are_written_with_their_lexical_entries_and_vectors(document):
    items = drafts("Refunds take ten days.", "Parcels ship in two days.")
    assert index.chunks_replace(document=document, drafts=items, embedded=embedded(items)) == 2
    rows = list(KnowledgeChunk.objects.filter(document=document).order_by("position"))
    assert [(r.position, r.content, r.heading_path, r.metadata, r.project_id) for r in rows] == [
        (0, "Refunds take ten days.", ["Help"], {"n": 0}, document.project_id),
        (1, "Parcels ship in two days.", ["Help"], {"n": 1}, document.project_id)]
    assert lexical_count() == 2 and vector_count() == 2


def test_replacing_a_documents_chunks_replaces_their_vectors(document, embeddings_server):
    first = drafts("Refunds take ten days.", "Parcels ship in two days.", "Invoices are PDF files.")
    index.chunks_replace(document=document, drafts=first, embedded=embedded(first))
    second = drafts("Refunds take three days now.")
    assert index.chunks_replace(document=document, drafts=second, embedded=embedded(second)) == 1
    assert list(KnowledgeChunk.objects.values_list("content", flat=True)) == ["Refunds take three days now."]
    assert lexical_count() == 1 and vector_count() == 1
    hits = knowledge_search(project=document.project, query="parcel", mode="semantic").hits
    assert [h.content for h in hits] == ["Refunds take three days now."]  # the only vector left


def test_lexical_only_chunks_have_no_vector(document):
    index.chunks_replace(document=document, drafts=drafts("Refunds take ten days."), embedded=None)
    assert lexical_count() == 1 and vector_count() == 0


def test_deleting_a_document_removes_its_chunks_and_vectors(document, kb_project):
    other = KnowledgeDocument.objects.create(project=kb_project, name="Shipping", type="text", status="ready")
    for doc, texts in ((document, ("Refunds take ten days.", "Refunds are paid by card.")),
                       (other, ("Parcels ship in two days.",))):
        items = drafts(*texts)
        index.chunks_replace(document=doc, drafts=items, embedded=embedded(items))
    assert vector_count() == 3
    document.delete()
    assert KnowledgeChunk.objects.count() == 1 and lexical_count() == 1 and vector_count() == 1
    kb_project.delete()  # the project's cascade reaches its chunks too
    assert KnowledgeChunk.objects.count() == 0 and lexical_count() == 0 and vector_count() == 0


def test_vectors_of_another_dimension_live_apart(document, kb_project, embeddings_server):
    small = KnowledgeDocument.objects.create(project=kb_project, name="Small model", type="text", status="ready")
    items = drafts("Refunds take ten days.")
    index.chunks_replace(document=document, drafts=items, embedded=embedded(items))
    index.chunks_replace(document=small, drafts=drafts("Refunds by a smaller model."),
                         embedded=embedded(drafts("Refunds by a smaller model."), dimensions=8))
    assert vector_count(256) == 1 and vector_count(8) == 1
    # A 256-dimension question only meets 256-dimension vectors.
    hits = knowledge_search(project=kb_project, query="refunds", mode="semantic").hits
    assert [h.document_id for h in hits] == [document.id]
    small.delete()
    assert vector_count(8) == 0 and vector_count(256) == 1


def test_a_vector_count_that_does_not_match_is_refused_and_nothing_is_written(document):
    items = drafts("Refunds take ten days.", "Parcels ship in two days.")
    with pytest.raises(ValueError, match="1 vectors for 2 chunks"):
        index.chunks_replace(document=document, drafts=items, embedded=embedded(items[:1]))
    assert KnowledgeChunk.objects.count() == 0


@pytest.mark.skipif("db.is_postgres()", reason="sqlite-vec: SQLite only")
def test_each_dimension_has_a_vec0_table_whose_vectors_go_with_their_chunks(document):
    items = drafts("Refunds take ten days.")
    index.chunks_replace(document=document, drafts=items, embedded=embedded(items))
    with connection.cursor() as cursor:
        cursor.execute("SELECT sql FROM sqlite_master WHERE name IN ('knowledge_vec_256', 'knowledge_vec_256_delete')")
        ddl = " ".join(sql for (sql,) in cursor.fetchall())
    assert "vec0" in ddl and "distance_metric=cosine" in ddl and "partition key" in ddl
    assert "AFTER DELETE ON knowledge_chunk" in ddl


@pytest.mark.skipif("not db.is_postgres()", reason="pgvector: PostgreSQL only")
def test_each_dimension_has_a_partial_hnsw_index_that_semantic_search_uses(document):
    items = drafts("Refunds take ten days.")
    index.chunks_replace(document=document, drafts=items, embedded=embedded(items))
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'knowledge_chunk_embedding_256'")
        (definition,) = cursor.fetchone()
    assert "USING hnsw" in definition and "vector_cosine_ops" in definition
    assert "vector_dims(embedding) = 256" in definition
    from agents.knowledge.search import _Plan

    plan = _Plan.make(project=document.project, query="refunds", top_k=5, mode="semantic", filters=None)
    *settings, (sql, params) = plan.statements(embed("refunds"))["semantic"]
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a table this small would be scanned otherwise
        for statement, _params in settings:
            cursor.execute(statement)
        cursor.execute("EXPLAIN " + sql, params)
        explained = "\n".join(row for (row,) in cursor.fetchall())
    assert "knowledge_chunk_embedding_256" in explained, explained


def test_a_sqlite_vec_that_cannot_load_makes_search_lexical_never_a_crash(caplog, monkeypatch):
    class Raw:
        def enable_load_extension(self, on):
            raise AttributeError("no extension loading in this build")

    class Wrapper:
        vendor = "sqlite"
        connection = Raw()

    monkeypatch.setattr(index, "_sqlite_vec_failure", None)
    with caplog.at_level(logging.WARNING, logger="agents.knowledge.index"):
        first, second = Wrapper(), Wrapper()
        index.sqlite_vec_load(None, first)
        index.sqlite_vec_load(None, second)
    assert first.conduet_sqlite_vec is False and second.conduet_sqlite_vec is False
    assert "no extension loading" in index.sqlite_vec_failure()
    assert [r.getMessage() for r in caplog.records].count(
        "sqlite-vec could not be loaded (AttributeError: no extension loading in this build): the knowledge base's "
        "search is lexical only.") == 1



@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="the tsvector column: PostgreSQL only")
def test_the_entry_an_insert_brings_is_the_one_the_trigger_makes(document):
    """chunks_replace makes each row's entry in its INSERT (the title and configuration looked up once); the
    trigger keeps it, and makes the same one for any other write (here: an UPDATE of the content)."""
    index.chunks_replace(document=document, drafts=drafts("Parcels ship in two days.", "Refunds take ten days."))
    KnowledgeChunk.objects.create(document=document, project=document.project, position=9, content="Refunds again.",
                                  heading_path=["Help"])  # the ORM's INSERT brings no entry: the trigger's
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, search::text FROM knowledge_chunk WHERE document_id = %s ORDER BY position",
                       [document.pk])
        inserted = dict(cursor.fetchall())
        cursor.execute("UPDATE knowledge_chunk SET content = content WHERE document_id = %s", [document.pk])
        cursor.execute("SELECT id, search::text FROM knowledge_chunk WHERE document_id = %s", [document.pk])
        assert dict(cursor.fetchall()) == inserted
    assert "'refund':1A" in inserted[min(inserted)] and "'parcel'" in inserted[min(inserted)]  # title, weight A
