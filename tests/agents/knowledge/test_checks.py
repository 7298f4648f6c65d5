"""The start-up check that says when semantic search is off, and what /readyz says of the knowledge base."""
import pytest
from django.core import checks
from django.db import connection

from agents.knowledge import index
from agents.knowledge.checks import check_vector_search
from agents.knowledge.search import SearchUnavailable, knowledge_search, search_modes
from config import db  # noqa: F401  (the skip conditions read it)

pytestmark = pytest.mark.django_db


@pytest.fixture
def forget_vectors():
    index.vectors_forget()
    yield
    index.vectors_forget()


def test_a_database_with_vectors_passes():
    assert check_vector_search() == []
    assert "conduet.W010" not in {message.id for message in checks.run_checks()}


@pytest.mark.skipif("not db.is_postgres()", reason="pgvector: PostgreSQL only")
def test_postgresql_without_pgvector_is_reported_clearly_and_runs_lexical(kb_project, embeddings_server,
                                                                          forget_vectors):
    with connection.cursor() as cursor:
        cursor.execute("DROP EXTENSION vector CASCADE")  # rolled back with the test's transaction
    (warning,) = check_vector_search()
    assert warning.id == "conduet.W010" and warning.level == checks.WARNING
    assert warning.msg == ("Semantic search is off: the `vector` extension (pgvector) is not created in this "
                           "database.")
    assert "install pgvector" in warning.hint.lower() and "knowledge_reembed --all" in warning.hint
    assert "conduet.W010" in {message.id for message in checks.run_checks()}  # registered: runs at start-up
    assert search_modes() == ["lexical"]
    from tests.agents.knowledge.conftest import document_index

    document_index(project=kb_project, name="Refunds", text="Refunds take ten days.")  # embedded, stored lexically
    with pytest.raises(SearchUnavailable, match="cannot store vectors"):
        knowledge_search(project=kb_project, query="refunds", mode="semantic")
    outcome = knowledge_search(project=kb_project, query="refunds", mode="hybrid")
    assert outcome.mode == "lexical" and outcome.hits[0].document_name == "Refunds"


@pytest.mark.skipif("db.is_postgres()", reason="sqlite-vec: SQLite only")
def test_sqlite_without_sqlite_vec_is_reported_clearly(monkeypatch, embeddings_server):
    from django.db import connections

    wrapper = connections["default"]
    wrapper.ensure_connection()
    monkeypatch.setattr(wrapper, "conduet_sqlite_vec", False)
    monkeypatch.setattr(index, "_sqlite_vec_failure", "OperationalError: not authorized")
    (warning,) = check_vector_search()
    assert warning.id == "conduet.W011"
    assert warning.msg == ("Semantic search is off: sqlite-vec could not be loaded into SQLite (OperationalError: "
                           "not authorized).")
    assert search_modes() == ["lexical"]


def test_readyz_says_which_modes_run_and_which_model_embeds(client, settings, embeddings_server, forget_vectors):
    body = client.get("/readyz").json()
    assert body["knowledge"] == {"modes": ["lexical", "semantic", "hybrid"], "embeddings": "fake-embedding"}
    settings.CONDUET_EMBEDDINGS_BASE_URL = ""
    body = client.get("/readyz").json()
    assert body["status"] == "ok" and body["knowledge"] == {"modes": ["lexical"], "embeddings": None}
