"""A conversation's uploaded files and the data frames (tables) made from them or from SQL over other frames.

Bytes live in Django's storage (`stored_name`), never in the database: a file as uploaded, a frame as Parquet. A row's
id is what the API shows (`file_ref`, `data_frame_id`): opaque, it reveals no storage path."""
from functools import partial

from django.db import models

from agents.ids import new_id
from conversations.models import Conversation


class StoredFile(models.Model):
    id = models.CharField(primary_key=True, max_length=32, default=partial(new_id, "file"), editable=False)
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="files")
    name = models.CharField(max_length=255, help_text="the uploaded name, sanitized")
    mime_type = models.CharField(max_length=255)
    size = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    stored_name = models.CharField(max_length=500, help_text="the bytes' name in Django's storage")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["conversation", "created_at", "id"], name="file_page")]

    def __str__(self) -> str:
        return f"{self.name} ({self.id})"


class DataFrame(models.Model):
    class Status(models.TextChoices):
        READY = "ready"
        FAILED = "failed"

    id = models.CharField(primary_key=True, max_length=32, default=partial(new_id, "df"), editable=False)
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="data_frames")
    name = models.CharField(max_length=255, help_text="unique in its conversation; the table's name in SQL")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.READY)
    error = models.TextField(blank=True, default="", help_text="why the file could not be read as a table")
    file = models.ForeignKey(StoredFile, null=True, blank=True, on_delete=models.CASCADE, related_name="data_frames")
    sheet_name = models.CharField(max_length=255, blank=True, default="", help_text="the XLSX sheet it came from")
    num_rows = models.PositiveBigIntegerField(default=0)
    num_columns = models.PositiveIntegerField(default=0)
    columns = models.JSONField(default=list, blank=True, help_text='[{"name", "dtype"}]')
    parent_data_frame_ids = models.JSONField(default=list, blank=True, help_text="the frames its SQL read")
    sql_query = models.TextField(blank=True, default="")
    stored_name = models.CharField(max_length=500, blank=True, default="", help_text="its Parquet in Django's storage")
    size = models.PositiveBigIntegerField(default=0, help_text="bytes of its Parquet")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["conversation", "name"], name="data_frame_name_unique")]
        indexes = [models.Index(fields=["conversation", "created_at", "id"], name="data_frame_page")]

    def __str__(self) -> str:
        return f"{self.name} ({self.id})"
