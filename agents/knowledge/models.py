"""A knowledge-base document and its chunks. Each database keeps its search indexes beside the chunk rows
(migration `0003_knowledge_base`, `index.py`): on PostgreSQL a `search` tsvector column with a GIN index and an
`embedding` pgvector column with HNSW indexes; on SQLite an FTS5 table and sqlite-vec tables kept in step by
triggers. Django does not know those columns, so a chunk's row is written here and its indexes by `index.py`."""
from functools import partial

from django.db import models

from agents.ids import new_id


class KnowledgeDocument(models.Model):
    class Type(models.TextChoices):
        TEXT = "text"
        PDF = "pdf"
        DOCX = "docx"
        HTML = "html"
        MD = "md"
        TXT = "txt"
        CSV = "csv"
        URL = "url"

    class Status(models.TextChoices):
        PROCESSING = "processing"
        READY = "ready"
        FAILED = "failed"

    id = models.CharField(primary_key=True, max_length=32, default=partial(new_id, "doc"), editable=False)
    project = models.ForeignKey("agents.Project", on_delete=models.CASCADE, related_name="documents")
    name = models.CharField(max_length=300)
    type = models.CharField(max_length=16, choices=Type.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PROCESSING)
    error = models.TextField(blank=True, default="")
    metadata = models.JSONField(default=dict, blank=True)
    source_url = models.URLField(max_length=2048, blank=True, default="")
    # The bytes as received (an upload, a text body), kept in Django's storage until the document is processed.
    stored_path = models.CharField(max_length=500, blank=True, default="")
    size_bytes = models.BigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True, default="")
    chunk_count = models.IntegerField(default=0)
    embedding_model = models.CharField(max_length=200, blank=True, default="")
    embedding_dimensions = models.IntegerField(null=True, blank=True)
    attempts = models.IntegerField(default=0)
    # While processing: the worker's lease; once it has run out the document is taken up again (services.py).
    lease_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "knowledge_document"
        indexes = [models.Index(fields=["project", "created_at", "id"], name="knowledge_doc_project_created"),
                   models.Index(fields=["status", "lease_until"], name="knowledge_doc_status_lease")]

    def __str__(self) -> str:
        return self.name


class KnowledgeChunk(models.Model):
    # An integer key: the FTS5 and sqlite-vec tables address chunks by rowid.
    id = models.BigAutoField(primary_key=True)
    # Indexed by the (document, position) constraint.
    document = models.ForeignKey(KnowledgeDocument, on_delete=models.CASCADE, related_name="chunks", db_index=False)
    project = models.ForeignKey("agents.Project", on_delete=models.CASCADE, related_name="+")
    position = models.IntegerField()
    content = models.TextField()
    heading_path = models.JSONField(default=list, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    word_count = models.IntegerField(default=0)

    class Meta:
        db_table = "knowledge_chunk"
        constraints = [models.UniqueConstraint(fields=["document", "position"], name="knowledge_chunk_position")]

    def __str__(self) -> str:
        return f"{self.document_id}#{self.position}"

    @property
    def public_id(self) -> str:
        return f"chk_{self.pk}"
