"""An operator's deletes in the admin — a conversation, a project, a workspace — leave no stored bytes behind: the
conversations' files and data frames and the knowledge base's documents go with their rows, once the delete has
committed."""
import pytest
from django.core.files.storage import default_storage

from agents.knowledge.services import document_create_upload
from agents.models import Project, Workspace
from conversations.models import Conversation
from files.models import DataFrame, StoredFile
from tests.admin_urls import admin_url
from tests.conversations.test_admin_files import v2_conversation  # noqa: F401 (the fixture)

pytestmark = pytest.mark.django_db(transaction=True)


def stored(conversation: Conversation) -> list[str]:
    names = [*StoredFile.objects.filter(conversation=conversation).values_list("stored_name", flat=True),
             *DataFrame.objects.filter(conversation=conversation).exclude(stored_name="")
             .values_list("stored_name", flat=True)]
    assert names and all(default_storage.exists(name) for name in names)
    return names


def confirm_delete(client, model: str, pk: str, app: str) -> None:
    response = client.post(admin_url(model, pk, view="delete", app=app), {"post": "yes"})
    assert response.status_code == 302, response.content[:500]


def test_deleting_a_conversation_in_the_admin_removes_its_files_and_frames_bytes(admin_client, v2_conversation):  # noqa: F811
    names = stored(v2_conversation)

    confirm_delete(admin_client, "conversation", v2_conversation.pk, "conversations")

    assert not Conversation.objects.filter(pk=v2_conversation.pk).exists()
    assert not any(default_storage.exists(name) for name in names)


def test_the_bulk_delete_action_removes_them_too(admin_client, v2_conversation):  # noqa: F811
    names = stored(v2_conversation)

    response = admin_client.post("/admin/conversations/conversation/", {
        "action": "delete_selected", "_selected_action": [v2_conversation.pk], "post": "yes"})

    assert response.status_code == 302
    assert not any(default_storage.exists(name) for name in names)


def test_deleting_a_project_or_a_workspace_removes_every_byte_of_theirs(admin_client, v2_conversation):  # noqa: F811
    from django.core.files.uploadedfile import SimpleUploadedFile

    project = v2_conversation.project
    names = stored(v2_conversation)
    document = document_create_upload(project=project, metadata={}, upload=SimpleUploadedFile(
        "faq.md", b"# FAQ\n\nGift cards never expire.", content_type="text/markdown"))
    names.append(document.stored_path)
    assert default_storage.exists(document.stored_path)

    confirm_delete(admin_client, "project", project.pk, "agents")

    assert not Project.objects.filter(pk=project.pk).exists()
    assert not any(default_storage.exists(name) for name in names)

    workspace = project.workspace
    other = Project.objects.create(workspace=workspace, name="Other", slug="other")
    from conversations.services import conversation_v2_create
    from tests.conversations.test_admin_files import stored_file

    kept = stored_file(conversation_v2_create(agent=other, name="x"), "a.txt", b"a", "text/plain").stored_name
    confirm_delete(admin_client, "workspace", workspace.pk, "agents")

    assert not Workspace.objects.filter(pk=workspace.pk).exists()
    assert not default_storage.exists(kept)
