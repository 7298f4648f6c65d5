"""The embeddings port: any OpenAI-compatible `/embeddings` endpoint (`CONDUET_EMBEDDINGS_BASE_URL`, `…_API_KEY`,
`…_MODEL`). Without a base URL the knowledge base is lexical only (`embeddings_configured()`).

Documents are embedded in the worker, synchronously, `CONDUET_EMBEDDINGS_BATCH_SIZE` texts a request; a question is
embedded on the turn's event loop (`aembed_query`). Retries are the `openai` SDK's (`CONDUET_EMBEDDINGS_MAX_RETRIES`:
408, 409, 429, 5xx and connection failures, with its backoff or the provider's Retry-After);
`CONDUET_EMBEDDINGS_TIMEOUT_SECONDS` bounds each attempt. The dimension is the model's: read from the first
response, never configured. A failure for good is an `EmbeddingError` whose message can be shown to an API client
(the status and the provider's short message; never the key). Like the model's, the endpoint is the operator's
configuration, not user input: it does not pass the outbound guard."""
import asyncio
import functools
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import openai
from django.conf import settings

from agents.llm import CONNECT_TIMEOUT_SECONDS, NO_API_KEY, Endpoint, _provider_message


class EmbeddingError(Exception):
    """The endpoint failed for good (after the SDK's retries) or answered something unusable."""


@dataclass(frozen=True)
class Embedded:
    model: str  # as the endpoint named it
    dimensions: int
    vectors: list[list[float]]  # one per text, in order
    prompt_tokens: int = 0  # as reported (0 when the endpoint reports no usage)


def embeddings_configured() -> bool:
    return bool(settings.CONDUET_EMBEDDINGS_BASE_URL and settings.CONDUET_EMBEDDINGS_MODEL)


def embeddings_model() -> str | None:
    """The configured model's name, or None without an endpoint (what /readyz reports)."""
    return settings.CONDUET_EMBEDDINGS_MODEL if embeddings_configured() else None


def _endpoint() -> Endpoint:
    if not embeddings_configured():
        raise EmbeddingError("No embeddings endpoint is configured: set CONDUET_EMBEDDINGS_BASE_URL (an "
                             "OpenAI-compatible endpoint) and CONDUET_EMBEDDINGS_MODEL.")
    return Endpoint(settings.CONDUET_EMBEDDINGS_BASE_URL, settings.CONDUET_EMBEDDINGS_API_KEY or NO_API_KEY,
                    settings.CONDUET_EMBEDDINGS_TIMEOUT_SECONDS, settings.CONDUET_EMBEDDINGS_MAX_RETRIES)


def _timeout(endpoint: Endpoint) -> openai.Timeout:
    return openai.Timeout(endpoint.timeout, connect=min(endpoint.timeout, CONNECT_TIMEOUT_SECONDS))


@functools.lru_cache(maxsize=8)
def _client(endpoint: Endpoint) -> openai.OpenAI:
    return openai.OpenAI(base_url=endpoint.base_url, api_key=endpoint.api_key, max_retries=endpoint.max_retries,
                         timeout=_timeout(endpoint))


_async_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Endpoint, openai.AsyncOpenAI]]" = (
    weakref.WeakKeyDictionary())


def _async_client(endpoint: Endpoint) -> openai.AsyncOpenAI:
    """This loop's client: its connections belong to the loop that opened them."""
    clients = _async_clients.setdefault(asyncio.get_running_loop(), {})
    if endpoint not in clients:
        clients[endpoint] = openai.AsyncOpenAI(base_url=endpoint.base_url, api_key=endpoint.api_key,
                                               max_retries=endpoint.max_retries, timeout=_timeout(endpoint))
    return clients[endpoint]


def embed_texts(texts: Sequence[str]) -> Embedded:
    """Embeds `texts` in batches; raises EmbeddingError."""
    endpoint = _endpoint()
    model, dimensions, vectors, tokens = settings.CONDUET_EMBEDDINGS_MODEL, 0, [], 0
    size = settings.CONDUET_EMBEDDINGS_BATCH_SIZE
    for start in range(0, len(texts), size):
        batch = [_input(text) for text in texts[start:start + size]]
        try:
            response = _client(endpoint).embeddings.create(model=settings.CONDUET_EMBEDDINGS_MODEL, input=batch)
        except openai.APIError as exc:
            raise _failure(exc, endpoint) from exc
        got = _vectors(response, len(batch), dimensions)
        dimensions = dimensions or len(got[0])
        model = getattr(response, "model", None) or model
        tokens += _prompt_tokens(response)
        vectors.extend(got)
    return Embedded(model=model, dimensions=dimensions, vectors=vectors, prompt_tokens=tokens)


async def aembed_query(text: str) -> list[float]:
    """The vector of one question, on the running event loop; raises EmbeddingError."""
    endpoint = _endpoint()
    try:
        response = await _async_client(endpoint).embeddings.create(model=settings.CONDUET_EMBEDDINGS_MODEL,
                                                                   input=[_input(text)])
    except openai.APIError as exc:
        raise _failure(exc, endpoint) from exc
    return _vectors(response, 1, 0)[0]


def embed_query(text: str) -> list[float]:
    """The vector of one question, synchronously (the search API's thread)."""
    return embed_texts([text]).vectors[0]


def _input(text: str) -> str:
    # Endpoints refuse an empty string; a chunk or question of only spaces still gets a vector.
    return text if text.strip() else "."


def _vectors(response, expected: int, dimensions: int) -> list[list[float]]:
    """The response's vectors in input order, checked: one per input, all of one dimension."""
    data = getattr(response, "data", None)
    if not isinstance(data, list) or len(data) != expected:
        raise EmbeddingError(f"The embeddings endpoint sent {len(data) if isinstance(data, list) else 'no'} "
                             f"vectors for {expected} texts.")
    ordered = sorted(data, key=lambda item: getattr(item, "index", 0) or 0)
    vectors = [getattr(item, "embedding", None) for item in ordered]
    if not all(isinstance(vector, list) and vector for vector in vectors):
        raise EmbeddingError("The embeddings endpoint sent an empty or malformed vector.")
    dimensions = dimensions or len(vectors[0])
    if any(len(vector) != dimensions for vector in vectors):
        raise EmbeddingError(f"The embeddings endpoint sent vectors of different dimensions (expected {dimensions}).")
    return [[float(x) for x in vector] for vector in vectors]


def _prompt_tokens(response) -> int:
    usage = getattr(response, "usage", None)
    tokens = getattr(usage, "prompt_tokens", None)
    return tokens if isinstance(tokens, int) else 0


def _failure(exc: openai.APIError, endpoint: Endpoint) -> EmbeddingError:
    """What an API client may read of a failed call: no URL, header or key."""
    if isinstance(exc, openai.APITimeoutError):
        return EmbeddingError(f"The embeddings endpoint did not answer within {endpoint.timeout:g} s "
                              f"({endpoint.max_retries} retries).")
    if isinstance(exc, openai.APIConnectionError):
        return EmbeddingError("The embeddings endpoint could not be reached (connection failed).")
    detail = _provider_message(exc.body, endpoint)
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        if status in (401, 403):
            return EmbeddingError(f"The embeddings endpoint refused the credentials (HTTP {status}): check "
                                  "CONDUET_EMBEDDINGS_API_KEY.")
        return EmbeddingError(f"The embeddings endpoint answered HTTP {status}" + (f": {detail}" if detail else "."))
    return EmbeddingError("The embeddings endpoint reported an error" + (f": {detail}" if detail else "."))
