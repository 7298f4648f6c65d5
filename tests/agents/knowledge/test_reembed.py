"""`manage.py knowledge_reembed`: a project's ready documents embedded again with the model configured now."""
import pytest
from django.core.management import CommandError, call_command

from agents.knowledge.models import KnowledgeDocument
from agents.knowledge.search import knowledge_search
from tests.agents.knowledge.conftest import corpus_index, document_index
from tests.agents.knowledge.corpus import DOCUMENTS
from tests.agents.knowledge.test_index import vector_count
from tests.factories import ProjectFactory
from tests.fakes.embeddings_server import Failure

pytestmark = pytest.mark.django_db

SOME = {name: DOCUMENTS[name] for name in ("Refund policy", "Shipping and delivery", "Gift cards")}


def reembed(*args) -> str:
    from io import StringIO

    out = StringIO()
    call_command("knowledge_reembed", *args, stdout=out)
    return out.getvalue()


def test_documents_indexed_without_embeddings_become_searchable_semantically(kb_project, settings, embeddings_server):
    settings.CONDUET_EMBEDDINGS_BASE_URL = ""
    documents = corpus_index(kb_project, SOME)
    processing = document_index(project=kb_project, name="Draft", text="Reimbursement drafts.",
                                status=KnowledgeDocument.Status.PROCESSING)
    embeddings_server.configure(settings)
    assert knowledge_search(project=kb_project, query="reimbursement", mode="semantic").hits == []
    settings.CONDUET_EMBEDDINGS_BATCH_SIZE = 2
    embeddings_server.requests.clear()
    assert reembed("--project", kb_project.id) == "Re-embedded 3 documents (5 chunks).\n"
    assert [len(r.inputs) for r in embeddings_server.requests] == [2, 2, 1]  # per document, in batches of 2
    hits = knowledge_search(project=kb_project, query="reimbursement", mode="semantic").hits
    assert hits[0].document_name == "Refund policy"
    for document in documents.values():
        document.refresh_from_db()
        assert (document.embedding_model, document.embedding_dimensions) == ("fake-embedding", 256)
    processing.refresh_from_db()
    assert processing.embedding_model == ""  # not ready: left to its processing


def test_a_model_change_replaces_every_vector(kb_project, embeddings_server, settings):
    corpus_index(kb_project, SOME)
    other_project = ProjectFactory(language="en")
    other = document_index(project=other_project, name="Other", text="Refunds elsewhere.")
    assert vector_count(256) == 6
    settings.CONDUET_EMBEDDINGS_MODEL = "fake-embedding-small"
    embeddings_server.dimensions = 64
    assert reembed("--project", kb_project.id).startswith("Re-embedded 3 documents (5 chunks)")
    assert vector_count(64) == 5 and vector_count(256) == 1  # the other project's is untouched
    assert {(d.embedding_model, d.embedding_dimensions) for d in KnowledgeDocument.objects.filter(
        project=kb_project)} == {("fake-embedding-small", 64)}
    hits = knowledge_search(project=kb_project, query="reimbursement", mode="semantic").hits
    assert hits and hits[0].document_name == "Refund policy"  # a 64-dimension question meets 64-dimension vectors
    assert reembed("--all") == "Re-embedded 4 documents (6 chunks).\n"
    assert vector_count(64) == 6 and vector_count(256) == 0
    other.refresh_from_db()
    assert other.embedding_model == "fake-embedding-small"


def test_a_failing_endpoint_stops_with_a_clear_error_and_a_rerun_finishes(kb_project, embeddings_server, settings):
    corpus_index(kb_project, SOME)
    settings.CONDUET_EMBEDDINGS_MODEL = "fake-embedding-2"
    settings.CONDUET_EMBEDDINGS_MAX_RETRIES = 0
    embeddings_server.script(Failure(500, "overloaded"))
    with pytest.raises(CommandError, match=r"HTTP 500: overloaded \(0 documents were re-embedded"):
        reembed("--project", kb_project.id)
    assert reembed("--project", kb_project.id).startswith("Re-embedded 3 documents")
    assert set(KnowledgeDocument.objects.values_list("embedding_model", flat=True)) == {"fake-embedding-2"}


def test_bad_invocations_say_what_is_wrong(kb_project, settings, embeddings_server):
    with pytest.raises(CommandError, match="No project with the id 'proj_nope'"):
        reembed("--project", "proj_nope")
    with pytest.raises(CommandError, match="one of the arguments --project --all is required"):
        reembed()
    settings.CONDUET_EMBEDDINGS_BASE_URL = ""
    with pytest.raises(CommandError, match="No embeddings endpoint is configured"):
        reembed("--all")
