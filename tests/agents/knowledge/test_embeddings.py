"""The embeddings port against a real OpenAI-compatible HTTP server on loopback (tests/fakes/embeddings_server.py)."""
import math

import pytest
from asgiref.sync import async_to_sync

from agents.knowledge.embeddings import (
    EmbeddingError,
    aembed_query,
    embed_texts,
    embeddings_configured,
    embeddings_model,
)
from tests.fakes.embeddings_server import DIMENSIONS, MODEL, Failure, Stall, Wrong, embed


def test_texts_are_embedded_in_batches_in_order(embeddings_server, settings):
    settings.CONDUET_EMBEDDINGS_BATCH_SIZE = 2
    texts = ["refunds", "parcel tracking", "opening hours", "password reset", "invoices"]
    embedded = embed_texts(texts)
    assert [request.inputs for request in embeddings_server.requests] == [texts[0:2], texts[2:4], texts[4:]]
    assert embedded.model == MODEL and embedded.dimensions == DIMENSIONS
    assert all(math.isclose(a, b, abs_tol=1e-6) for v, t in zip(embedded.vectors, texts, strict=True)
               for a, b in zip(v, embed(t), strict=True))
    assert embedded.prompt_tokens == 8  # the words, as the server counted them
    assert embeddings_server.requests[0].headers["authorization"] == "Bearer sk-fake-embeddings"


def test_the_fake_vectors_carry_meaning():
    def cosine(a, b):
        return sum(x * y for x, y in zip(embed(a), embed(b), strict=True))

    assert cosine("I want a reimbursement", "our refund policy") >= 0.5
    assert cosine("where is my parcel", "track your package") >= 0.5
    assert abs(cosine("where is my parcel", "our refund policy")) < 0.2
    assert math.isclose(sum(x * x for x in embed("anything at all")), 1.0, rel_tol=1e-9)


def test_failures_are_retried_by_the_sdk(embeddings_server):
    embeddings_server.script(Failure(500, retry_after_ms=1), Failure(503, retry_after_ms=1))
    assert len(embed_texts(["refunds"]).vectors) == 1
    assert len(embeddings_server.requests) == 3


def test_a_failure_for_good_is_a_clear_embedding_error(embeddings_server, settings):
    settings.CONDUET_EMBEDDINGS_MAX_RETRIES = 1
    embeddings_server.script(Failure(500, retry_after_ms=1), Failure(500, "model overloaded", retry_after_ms=1))
    with pytest.raises(EmbeddingError, match="answered HTTP 500: model overloaded"):
        embed_texts(["refunds"])
    embeddings_server.script(Failure(401, "Incorrect API key provided: sk-fake-e****ings"))
    with pytest.raises(EmbeddingError, match="refused the credentials .* CONDUET_EMBEDDINGS_API_KEY") as caught:
        embed_texts(["refunds"])
    assert "sk-fake" not in str(caught.value)


def test_a_stalled_endpoint_times_out(embeddings_server, settings):
    settings.CONDUET_EMBEDDINGS_MAX_RETRIES = 0
    settings.CONDUET_EMBEDDINGS_TIMEOUT_SECONDS = 1.0
    embeddings_server.script(Stall())
    with pytest.raises(EmbeddingError, match="did not answer within 1 s"):
        embed_texts(["refunds"])


@pytest.mark.parametrize("wrong", [Wrong(count=1), Wrong(ragged=True)], ids=["too-few", "ragged"])
def test_unusable_vectors_are_refused(embeddings_server, wrong):
    embeddings_server.script(wrong)
    with pytest.raises(EmbeddingError, match="vectors"):
        embed_texts(["refunds", "parcels"])


def test_an_unreachable_endpoint(settings):
    settings.CONDUET_EMBEDDINGS_BASE_URL = "http://127.0.0.1:9/v1"
    settings.CONDUET_EMBEDDINGS_MAX_RETRIES = 0
    with pytest.raises(EmbeddingError, match="could not be reached"):
        embed_texts(["refunds"])


def test_without_an_endpoint_nothing_is_embedded(settings):
    settings.CONDUET_EMBEDDINGS_BASE_URL = ""
    assert not embeddings_configured() and embeddings_model() is None
    with pytest.raises(EmbeddingError, match="CONDUET_EMBEDDINGS_BASE_URL"):
        embed_texts(["refunds"])


def test_the_query_is_embedded_asynchronously(embeddings_server):
    assert embeddings_configured() and embeddings_model() == MODEL
    vector = async_to_sync(aembed_query)("where is my parcel")
    assert len(vector) == DIMENSIONS and embeddings_server.inputs == ["where is my parcel"]
    embeddings_server.script(Failure(400, "bad input"))
    with pytest.raises(EmbeddingError, match="HTTP 400: bad input"):
        async_to_sync(aembed_query)("x")


def test_an_empty_text_still_gets_a_vector(embeddings_server):
    assert embed_texts(["", "  "]).dimensions == DIMENSIONS
