"""Fixtures of the knowledge-base tests: a project, documents indexed as the worker would (ready, chunked, embedded
when an embeddings endpoint is configured), and the fake embeddings endpoint."""
import pytest

from agents.knowledge.chunking import chunk_document
from agents.knowledge.embeddings import embed_texts, embeddings_configured
from agents.knowledge.index import chunks_replace
from agents.knowledge.models import KnowledgeDocument
from tests.factories import ProjectFactory


def document_index(*, project, name: str, text: str, metadata: dict | None = None,
                   status: str = KnowledgeDocument.Status.READY) -> KnowledgeDocument:
    """A document indexed as `document_process` leaves it: chunked, embedded if an endpoint is configured."""
    document = KnowledgeDocument.objects.create(project=project, name=name, type=KnowledgeDocument.Type.TEXT,
                                                status=status, metadata=metadata or {})
    drafts = chunk_document(text, size_words=180, overlap_words=30, metadata=metadata)
    embedded = embed_texts([draft.content for draft in drafts]) if embeddings_configured() else None
    document.chunk_count = chunks_replace(document=document, drafts=drafts, embedded=embedded)
    if embedded:
        document.embedding_model, document.embedding_dimensions = embedded.model, embedded.dimensions
    document.save()
    return document


def corpus_index(project, documents: dict[str, str]) -> dict[str, KnowledgeDocument]:
    return {name: document_index(project=project, name=name, text=text) for name, text in documents.items()}


@pytest.fixture
def kb_project(db):
    return ProjectFactory(language="en")


@pytest.fixture
def no_embeddings(settings):
    settings.CONDUET_EMBEDDINGS_BASE_URL = ""
