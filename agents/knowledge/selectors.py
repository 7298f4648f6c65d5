"""Knowledge-base reads for the API and the admin."""
from django.db.models import QuerySet

from agents.knowledge.models import KnowledgeChunk, KnowledgeDocument
from config.api.errors import NotFound


def document_list(*, project, status: str | None = None) -> QuerySet[KnowledgeDocument]:
    documents = KnowledgeDocument.objects.filter(project=project)
    if status:
        documents = documents.filter(status=status)
    return documents


def document_get(*, project, document_id: str) -> KnowledgeDocument:
    """The project's document; another project's is as unknown as a missing one (404)."""
    document = KnowledgeDocument.objects.filter(project=project, id=document_id).first()
    if document is None:
        raise NotFound(f"Document {document_id} not found.")
    return document


def document_chunks(*, document: KnowledgeDocument) -> QuerySet[KnowledgeChunk]:
    return KnowledgeChunk.objects.filter(document=document).order_by("position")
