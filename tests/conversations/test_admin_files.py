"""A conversation's admin page lists its files (downloadable by staff only) and its data frames (shape, status or
error, first rows), for v1 sessions and v2 conversations alike; the list shows each conversation's kind and name."""
import hashlib

import polars as pl
import pytest
from django.contrib.auth.models import Permission
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from agents.runtime import Action
from conversations.models import Conversation
from conversations.services import conversation_v2_create
from files.models import StoredFile
from files.store import conversation_dir, frame_create
from tests.admin_urls import admin_url
from tests.factories import UserFactory
from tests.turns import run_turn_now

pytestmark = pytest.mark.django_db

INVOICE = b"%PDF-1.4 an invoice"


def stored_file(conversation: Conversation, name: str, content: bytes, mime_type: str) -> StoredFile:
    """A file as the upload stores it (the upload itself is the files API's)."""
    stored_name = default_storage.save(f"{conversation_dir(conversation.id)}/files/{name}", ContentFile(content))
    return StoredFile.objects.create(conversation=conversation, name=name, mime_type=mime_type, size=len(content),
                                     sha256=hashlib.sha256(content).hexdigest(), stored_name=stored_name)


@pytest.fixture
def v2_conversation(demo_project):
    conversation = conversation_v2_create(agent=demo_project, name="Q3 reconciliation")
    invoice = stored_file(conversation, "invoice.pdf", INVOICE, "application/pdf")
    sheet = stored_file(conversation, "sales.csv", b"region,amount\nnorth,10.5\n", "text/csv")
    frame_create(conversation_id=conversation.id, name="sales.csv", file=sheet, table=pl.DataFrame(
        {"region": ["north", "<script>alert(1)</script>", None], "amount": [10.5, 20.0, 3.0]}))
    frame_create(conversation_id=conversation.id, name="broken.csv", file=sheet,
                 error="Row 3 has 4 fields, expected 2.")
    frame_create(conversation_id=conversation.id, name="totals", table=pl.DataFrame({"n": list(range(12))}),
                 sql_query="SELECT range AS n FROM range(12)")
    conversation.invoice = invoice
    return conversation


def page(client, conversation) -> str:
    response = client.get(admin_url("conversation", conversation.pk, app="conversations"))
    assert response.status_code == 200
    return response.content.decode()


def test_a_v2_conversations_page_lists_its_files_and_frames_with_their_first_rows(admin_client, v2_conversation):
    html = page(admin_client, v2_conversation)

    invoice = v2_conversation.invoice
    assert "Q3 reconciliation" in html
    assert f'<a href="/admin/conversations/conversation/files/{invoice.id}/download/">invoice.pdf</a>' in html
    assert "application/pdf" in html and f"<code>{hashlib.sha256(INVOICE).hexdigest()}</code>" in html
    assert "19\xa0bytes" in html  # the size, human-readable
    assert "<strong>sales</strong>" in html and "3 rows × 2 columns" in html and "from sales.csv" in html
    assert '<th title="String">region<br><span class="cdt-quiet">String</span></th>' in html
    assert "<td>north</td><td>10.5</td>" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert" not in html  # values are escaped
    assert '<span class="cdt-quiet">null</span>' in html
    assert "failed (sales.csv): Row 3 has 4 fields, expected 2." in html
    assert "SQL: <code>SELECT range AS n FROM range(12)</code>" in html
    assert "<td>4</td>" in html and "<td>5</td>" not in html  # the first five rows only


def test_a_v1_sessions_page_has_the_same_sections(admin_client, demo_project):
    run_turn_now(demo_project, Action("launch", None))
    conversation = Conversation.objects.get()
    html = page(admin_client, conversation)
    assert "No files." in html and "No data frames." in html

    frame_create(conversation_id=conversation.id, name="plans", table=pl.DataFrame({"plan": ["free", "premium"]}))
    html = page(admin_client, conversation)
    assert "<strong>plans</strong>" in html and "<td>premium</td>" in html


def test_a_frame_whose_parquet_is_gone_still_opens_the_page(admin_client, v2_conversation):
    frame = v2_conversation.data_frames.get(name="sales")
    default_storage.delete(frame.stored_name)
    html = page(admin_client, v2_conversation)
    assert "Its Parquet cannot be read:" in html and "<strong>totals</strong>" in html


def test_the_list_shows_kind_and_name(admin_client, v2_conversation):
    html = admin_client.get("/admin/conversations/conversation/").content.decode()
    assert '<td class="field-kind">v2 named conversation</td>' in html
    assert '<td class="field-name">Q3 reconciliation</td>' in html
    filtered = admin_client.get("/admin/conversations/conversation/?kind__exact=v1").content.decode()
    assert "Q3 reconciliation" not in filtered


def download_url(stored: StoredFile) -> str:
    return f"/admin/conversations/conversation/files/{stored.id}/download/"


def test_staff_download_a_file_as_an_attachment(admin_client, v2_conversation):
    response = admin_client.get(download_url(v2_conversation.invoice))

    assert response.status_code == 200
    assert b"".join(response.streaming_content) == INVOICE
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == 'attachment; filename="invoice.pdf"'
    assert admin_client.get("/admin/conversations/conversation/files/file_nope/download/").status_code == 404


def test_only_staff_who_may_view_conversations_download(client, v2_conversation):
    url = download_url(v2_conversation.invoice)
    response = client.get(url)
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")

    member = UserFactory(is_staff=False)
    client.force_login(member)
    assert client.get(url).status_code == 302  # not staff: the admin's login page

    staff = UserFactory(is_staff=True)
    client.force_login(staff)
    assert client.get(url).status_code == 403  # staff, but not allowed to view conversations
    staff.user_permissions.add(Permission.objects.get(codename="view_conversation"))
    client.force_login(staff)
    assert client.get(url).status_code == 200


def test_the_missing_bytes_of_a_file_are_a_404(admin_client, v2_conversation):
    default_storage.delete(v2_conversation.invoice.stored_name)
    assert admin_client.get(download_url(v2_conversation.invoice)).status_code == 404


def test_the_transcript_marks_a_data_frame_trace(admin_client, demo_project):
    run_turn_now(demo_project, Action("launch", None))
    conversation = Conversation.objects.get()
    conversation.messages.filter(role="assistant").update(traces=[
        {"type": "data_frame", "payload": {"name": "totals", "numRows": 3, "columns": ["region", "total"]}}])
    assert "— data frame: totals (3 rows) —" in page(admin_client, conversation)
