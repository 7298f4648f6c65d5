"""`manage.py knowledge_reembed --project <id>` (or `--all`): embeds every ready document's chunks again with the
model configured now — after a model change, or once pgvector was installed on a PostgreSQL that lacked it.

A document at a time: its chunks are embedded (in CONDUET_EMBEDDINGS_BATCH_SIZE batches) outside any transaction,
then, under a lock on the document, stored and the document's embedding_model/dimensions updated — unless the
document was processed again meanwhile (its chunks changed: the new ones already have the current model's vectors).
A failure stops the command; the documents done so far stay done, and running it again finishes the rest."""
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from agents.knowledge import index
from agents.knowledge.embeddings import EmbeddingError, embed_texts, embeddings_configured
from agents.knowledge.models import KnowledgeChunk, KnowledgeDocument
from agents.management.commands._lookup import project_with_id


class Command(BaseCommand):
    help = "Re-embeds the chunks of a project's ready documents (or every project's) with the current model."

    def add_arguments(self, parser):
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--project", help="project id")
        target.add_argument("--all", action="store_true", help="every project")

    def handle(self, *args, project=None, all=False, **options):
        if not embeddings_configured():
            raise CommandError("No embeddings endpoint is configured: set CONDUET_EMBEDDINGS_BASE_URL and "
                               "CONDUET_EMBEDDINGS_MODEL.")
        if not index.pg_vectors_enable():
            raise CommandError("This database cannot store vectors: install pgvector on PostgreSQL (see the "
                               "conduet.W010 check), or sqlite-vec for SQLite (conduet.W011).")
        documents = KnowledgeDocument.objects.filter(status=KnowledgeDocument.Status.READY).order_by("created_at",
                                                                                                      "id")
        if not all:
            documents = documents.filter(project=project_with_id(project))
        done = chunks = skipped = 0
        for document_id in documents.values_list("id", flat=True):
            try:
                count = document_reembed(document_id=document_id)
            except EmbeddingError as exc:
                raise CommandError(f"Document {document_id}: {exc} ({done} documents were re-embedded; run the "
                                   "command again to finish).") from exc
            if count is None:
                skipped += 1
            else:
                done, chunks = done + 1, chunks + count
        self.stdout.write(f"Re-embedded {done} documents ({chunks} chunks)"
                          + (f"; {skipped} changed meanwhile and were left as they are" if skipped else "") + ".")


def document_reembed(*, document_id: str) -> int | None:
    """Re-embeds one document's chunks; the number of chunks, or None when the document changed meanwhile."""
    rows = list(KnowledgeChunk.objects.filter(document_id=document_id).order_by("position").values_list("id",
                                                                                                       "content"))
    embedded = embed_texts([content for _id, content in rows]) if rows else None
    with transaction.atomic():
        document = KnowledgeDocument.objects.select_for_update().filter(
            id=document_id, status=KnowledgeDocument.Status.READY).first()
        now = list(KnowledgeChunk.objects.filter(document_id=document_id).order_by("position").values_list(
            "id", "content"))
        if document is None or now != rows:
            return None
        if embedded is not None:
            index.vectors_store(chunk_ids=[chunk_id for chunk_id, _c in rows], vectors=embedded.vectors,
                                project_id=document.project_id)
            document.embedding_model, document.embedding_dimensions = embedded.model, embedded.dimensions
            document.save(update_fields=["embedding_model", "embedding_dimensions", "updated_at"])
    return len(rows)
