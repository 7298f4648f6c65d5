"""The model port against a real OpenAI-compatible server on loopback (tests/fakes/llm_server.py): streaming, tool
calls, usage, the project's model settings, retries, timeouts, failures and closing the stream early."""
import asyncio
import json
import math
import socket
import time

import pytest

from agents.llm import llm_missing, llm_port
from agents.runtime import AgentSpec
from agents.runtime.ports import LlmResult, ToolCall, UpstreamError
from tests.fakes.llm_server import Call, Drop, Failure, Malformed, Reply, Stall

API_KEY = "sk-test-0123456789abcdef"
HELLO = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello?"}]
LOOKUP = {"type": "function", "function": {
    "name": "lookup", "description": "Find an account.",
    "parameters": {"type": "object", "properties": {"email": {"type": "string"}}}}}


def spec(**model) -> AgentSpec:
    return AgentSpec.from_document({"model": model} if model else {}, project_id="p", version_id="v")


@pytest.fixture
def model(settings, llm_server):
    """The settings of a model served by the fake server; `model.port()` is the port of a project."""
    settings.CONDUET_LLM_BASE_URL = llm_server.url
    settings.CONDUET_LLM_API_KEY = API_KEY
    settings.CONDUET_LLM_MODEL = "fake-model"
    settings.CONDUET_LLM_TIMEOUT_SECONDS = 5.0
    settings.CONDUET_LLM_MAX_RETRIES = 2
    return llm_server


async def collect(port, messages=HELLO, **options) -> tuple[list[str], LlmResult, list[float]]:
    """The text chunks, the result, and when (time.time()) each chunk arrived."""
    chunks, arrivals, results = [], [], []
    async for item in port(messages, **options):
        if isinstance(item, str):
            chunks.append(item)
            arrivals.append(time.time())
        else:
            results.append(item)
    assert len(results) == 1 and results[0] is not None
    return chunks, results[0], arrivals


# --- streaming

async def test_text_streams_chunk_by_chunk_before_the_reply_is_complete(model):
    model.script(Reply(text="Hello there, friend!", chunk_size=3, pace=0.05))

    chunks, result, arrivals = await collect(llm_port(spec()))

    assert chunks == ["Hel", "lo ", "the", "re,", " fr", "ien", "d!"]
    assert result.text == "Hello there, friend!" and result.tool_calls == ()
    assert result.finish_reason == "stop" and result.model == "fake-model"
    written = model.requests[0].chunk_times
    assert arrivals[0] < written[-1] - 0.2  # the first chunk was read while the server still had 6 to write
    assert all(arrived >= sent for arrived, sent in zip(arrivals, written, strict=True))
    assert arrivals[-1] - arrivals[0] >= 6 * 0.05 * 0.8


async def test_the_request_streams_with_usage_and_the_conversation(model):
    await collect(llm_port(spec()))

    body = model.requests[0].body
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["messages"] == HELLO and body["model"] == "fake-model"
    assert not {"tools", "temperature", "max_tokens", "response_format"} & set(body)
    assert model.requests[0].headers["authorization"] == f"Bearer {API_KEY}"


async def test_a_tool_call_split_across_chunks_is_assembled(model):
    model.script(Reply(tool_calls=[Call("lookup", {"email": "a@b.co"}, id="call_abc")], chunk_size=3))

    chunks, result, _ = await collect(llm_port(spec()), tools=[LOOKUP])

    assert chunks == [] and result.text == ""
    assert result.tool_calls == (ToolCall(id="call_abc", name="lookup", arguments='{"email": "a@b.co"}'),)
    assert result.finish_reason == "tool_calls"
    assert len(model.requests[0].chunk_times) == math.ceil(len('{"email": "a@b.co"}') / 3)
    assert model.requests[0].body["tools"] == [LOOKUP]


async def test_parallel_tool_calls_interleaved_are_assembled_in_order(model):
    calls = [Call("lookup", {"email": "a@b.co"}), Call("weather", {"city": "Lisbon", "days": 3})]
    model.script(Reply(text="Checking both.", tool_calls=calls, chunk_size=2))

    chunks, result, _ = await collect(llm_port(spec()), tools=[LOOKUP])

    assert "".join(chunks) == result.text == "Checking both."
    assert result.tool_calls == (ToolCall("call_1", "lookup", '{"email": "a@b.co"}'),
                                 ToolCall("call_2", "weather", '{"city": "Lisbon", "days": 3}'))


async def test_the_non_json_arguments_a_model_wrote_are_kept_as_they_are(model):
    model.script(Reply(tool_calls=[Call("lookup", '{"email": "a@b.co"')]))

    _chunks, result, _ = await collect(llm_port(spec()))

    assert result.tool_calls[0].arguments == '{"email": "a@b.co"'


async def test_a_slow_first_token_is_measured(model):
    model.script(Reply(text="Finally.", first_token_delay=0.3))

    _chunks, result, _ = await collect(llm_port(spec()))

    assert 300 <= result.first_token_ms < 1500
    assert result.total_ms >= result.first_token_ms


async def test_json_output_asks_for_a_json_object(model):
    model.script(Reply(text='{"email": "a@b.co"}'))

    _chunks, result, _ = await collect(llm_port(spec()), json_output=True)

    assert json.loads(result.text) == {"email": "a@b.co"}
    assert model.requests[0].body["response_format"] == {"type": "json_object"}


# --- usage

async def test_the_usage_the_provider_reports_is_recorded(model):
    model.script(Reply(text="Hi!", prompt_tokens=11, completion_tokens=7))

    _chunks, result, _ = await collect(llm_port(spec()))

    assert (result.prompt_tokens, result.completion_tokens, result.estimated) == (11, 7, False)
    assert result.record()["promptTokens"] == 11


async def test_without_reported_usage_the_tokens_are_estimated_and_marked(model):
    model.script(Reply(text="A reply of some forty characters, or so.", usage=False))

    _chunks, result, _ = await collect(llm_port(spec()), tools=[LOOKUP])

    assert result.estimated is True
    assert result.completion_tokens == math.ceil(len("A reply of some forty characters, or so.") / 4)
    assert result.prompt_tokens == math.ceil(len(json.dumps([HELLO, [LOOKUP]], ensure_ascii=False)) / 4)


# --- the project's model

async def test_the_projects_model_name_temperature_and_max_tokens_are_sent(model):
    port = llm_port(spec(name="project-model", temperature=0.2, maxTokens=64))

    _chunks, result, _ = await collect(port)

    body = model.requests[0].body
    assert (body["model"], body["temperature"], body["max_tokens"]) == ("project-model", 0.2, 64)
    assert result.model == "project-model"


@pytest.mark.parametrize("unset", ["CONDUET_LLM_BASE_URL", "CONDUET_LLM_MODEL"])
def test_no_model_without_an_endpoint_or_a_model_name(settings, unset):
    settings.CONDUET_LLM_BASE_URL = "http://127.0.0.1:9/v1"
    settings.CONDUET_LLM_MODEL = "fake-model"
    setattr(settings, unset, "")

    assert llm_port(spec()) is None
    assert unset in llm_missing(spec()) and "model.name" in llm_missing(spec())


def test_a_project_model_name_is_enough_with_an_endpoint(settings):
    settings.CONDUET_LLM_BASE_URL = "http://127.0.0.1:9/v1"
    settings.CONDUET_LLM_MODEL = ""

    assert llm_missing(spec(name="project-model")) is None
    assert llm_port(spec(name="project-model")).model == "project-model"
    settings.CONDUET_LLM_BASE_URL = ""
    assert llm_port(spec(name="project-model")) is None
    assert "CONDUET_LLM_BASE_URL" in llm_missing(spec(name="project-model"))


def test_the_port_never_shows_the_key(settings):
    settings.CONDUET_LLM_BASE_URL, settings.CONDUET_LLM_MODEL = "http://127.0.0.1:9/v1", "m"
    settings.CONDUET_LLM_API_KEY = API_KEY

    assert API_KEY not in repr(llm_port(spec()))


# --- retries and failures

async def test_a_429_is_retried_after_the_providers_retry_after(model):
    # 0.8 s: longer than the SDK's own first backoff (at most 0.5 s), so the wait measured is the header's.
    model.script(Failure(429, "Rate limit reached.", retry_after=0.8), Reply(text="Made it."))

    chunks, result, _ = await collect(llm_port(spec()))

    assert "".join(chunks) == result.text == "Made it."
    first, second = model.requests
    assert 0.8 <= second.received_at - first.received_at < 2.0


async def test_two_500s_then_a_reply(model):
    model.script(Failure(500, retry_after_ms=20), Failure(503, retry_after_ms=20), Reply(text="Back."))

    _chunks, result, _ = await collect(llm_port(spec()))

    assert result.text == "Back." and len(model.requests) == 3


@pytest.mark.parametrize("retries", [0, 2])
async def test_a_500_on_every_attempt_is_an_upstream_error(model, settings, retries):
    settings.CONDUET_LLM_MAX_RETRIES = retries
    model.script(*[Failure(500, "The engine is overloaded.", retry_after_ms=20)] * 4)

    with pytest.raises(UpstreamError) as caught:
        await collect(llm_port(spec()))

    assert caught.value.status == 500
    assert caught.value.message == "The language model answered HTTP 500: The engine is overloaded."
    assert len(model.requests) == 1 + retries


async def test_a_client_error_is_not_retried_and_its_message_is_kept_short(model):
    model.script(Failure(400, "The model `nope` does not exist. " + "x" * 1000), Reply(text="unused"))

    with pytest.raises(UpstreamError) as caught:
        await collect(llm_port(spec()))

    assert caught.value.status == 400 and "The model `nope` does not exist." in caught.value.message
    assert len(caught.value.message) < 400 and len(model.requests) == 1


async def test_a_refused_key_is_reported_without_the_key(model):
    model.script(Failure(401, f"Incorrect API key provided: {API_KEY}. Or sk-proj-****abcd."))

    with pytest.raises(UpstreamError) as caught:
        await collect(llm_port(spec()))

    assert caught.value.status == 401 and "CONDUET_LLM_API_KEY" in caught.value.message
    assert API_KEY not in caught.value.message and "abcd" not in caught.value.message


async def test_a_provider_message_with_a_key_in_it_is_blanked(model):
    model.script(Failure(400, f"Bad request from {API_KEY} (masked sk-proj-****abcd)."))

    with pytest.raises(UpstreamError) as caught:
        await collect(llm_port(spec()))

    assert API_KEY not in caught.value.message and "****" not in caught.value.message
    assert caught.value.message.startswith("The language model answered HTTP 400: Bad request from [key]")


async def test_a_stream_that_stalls_fails_after_the_timeout_and_is_closed(model, settings):
    settings.CONDUET_LLM_TIMEOUT_SECONDS = 0.3
    model.script(Stall(after_chunks=2))
    chunks = []
    started = time.monotonic()

    with pytest.raises(UpstreamError) as caught:
        async for item in llm_port(spec())(HELLO):
            chunks.append(item)

    assert 0.3 <= time.monotonic() - started < 2.0
    assert chunks == ["word0 ", "word1 "]
    assert "stopped in the middle of its reply" in caught.value.message and "0.3 s" in caught.value.message
    assert model.requests[0].wait_ended(2) and model.requests[0].disconnected
    assert len(model.requests) == 1  # a reply under way is not retried


async def test_a_stream_cut_mid_reply_is_an_upstream_error(model):
    model.script(Drop(after_chunks=2))

    with pytest.raises(UpstreamError, match="broke in the middle of its reply"):
        await collect(llm_port(spec()))


async def test_a_malformed_stream_is_an_upstream_error(model):
    model.script(Malformed(after_chunks=1))

    with pytest.raises(UpstreamError, match="malformed"):
        await collect(llm_port(spec()))


async def test_an_unreachable_endpoint_is_an_upstream_error(settings):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.CONDUET_LLM_BASE_URL = f"http://127.0.0.1:{port}/v1"
    settings.CONDUET_LLM_MODEL = "m"
    settings.CONDUET_LLM_MAX_RETRIES = 0

    with pytest.raises(UpstreamError, match="could not be reached"):
        await collect(llm_port(spec()))


# --- stopping

async def test_closing_the_stream_closes_the_upstream_connection(model):
    model.script(Reply.tokens(50, pace=0.05))
    stream = llm_port(spec())(HELLO)

    assert [await anext(stream), await anext(stream)] == ["tok ", "tok "]
    await stream.aclose()

    request = model.requests[0]
    assert request.wait_ended(1.0)
    assert request.disconnected and not request.completed
    assert len(request.chunk_times) < 5


async def test_cancelling_the_task_closes_the_upstream_connection(model):
    model.script(Reply.tokens(50, pace=0.05))
    received = []

    async def consume():
        async for item in llm_port(spec())(HELLO):
            received.append(item)

    task = asyncio.create_task(consume())
    while len(received) < 2:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert model.requests[0].wait_ended(1.0) and model.requests[0].disconnected


async def test_a_stop_while_waiting_for_the_first_token_closes_the_connection(model):
    model.script(Reply(text="Too late.", first_token_delay=5))
    task = asyncio.create_task(collect(llm_port(spec())))
    while not model.requests:  # the request is in; its first token is 5 s away
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert model.requests[0].wait_ended(1.0) and model.requests[0].disconnected
    assert model.requests[0].first_content_at is None


# --- connections

async def test_open_streams_are_bounded_by_the_connection_setting_not_the_sdks_1000(model, settings):
    """Each streamed reply holds a connection for its length; CONDUET_LLM_MAX_CONNECTIONS (default 10,000) is how
    many a process may hold. With 2, a third stream starts only once one of the first two has ended."""
    settings.CONDUET_LLM_MAX_CONNECTIONS = 2
    model.script(*[Reply.tokens(5, pace=0.1) for _ in range(3)])
    port = llm_port(spec())

    async def one():
        async for _item in port(HELLO):  # the whole reply: its connection is held until its end
            pass

    started = time.monotonic()
    await asyncio.gather(one(), one(), one())

    assert len(model.requests) == 3
    starts = sorted(request.received_at for request in model.requests)
    assert starts[2] - starts[0] >= 0.4  # the third waited for a whole 0.5 s reply to free its connection
    assert time.monotonic() - started < 5
