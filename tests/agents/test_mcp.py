"""MCP tool servers against a real one on loopback (tests/fakes/mcp_server.py): listing, the cache and its refresh,
calls and their results, errors, the outbound guard and the secret header."""
import asyncio
import logging

import pytest

from agents.mcp import McpEndpoint, mcp_cache_clear, mcp_tool_call, mcp_tools_list
from agents.outbound import ToolError, ToolErrorCode
from agents.tools import project_tools

LOOPBACK = ("127.0.0.1",)
SECRET = "mcp-secret-7f3a9c2e41b8"


@pytest.fixture(autouse=True)
def _no_cached_listings():
    mcp_cache_clear()
    yield
    mcp_cache_clear()


def server_tool(url: str, **more) -> dict:
    return {"id": "docs", "kind": "mcp", "description": "Product docs",
            "mcp": {"url": url, "headers": {"Authorization": f"Bearer {SECRET}"}, "timeoutMs": 5000}, **more}


def tools_of(server, *extra, allowlist=LOOPBACK, cache_seconds=300, **more):
    return project_tools([server_tool(server.url, **more), *extra], allowlist=allowlist,
                         mcp_cache_seconds=cache_seconds)


async def test_the_servers_tools_are_offered_by_prefixed_name(mcp_server):
    definitions = {d.name: d for d in await tools_of(mcp_server).definitions()}

    assert set(definitions) == {"docs__add", "docs__search_docs", "docs__fail", "docs__slow", "docs__big"}
    add = definitions["docs__add"]
    assert (add.description, add.source) == ("Adds two whole numbers.", "docs")
    assert add.parameters["required"] == ["a", "b"]
    assert add.parameters["properties"]["a"]["type"] == "integer"
    assert add.openai()["function"]["name"] == "docs__add"


async def test_a_prefix_names_the_tools_instead_of_the_id(mcp_server):
    names = [d.name for d in await tools_of(mcp_server, prefix="kb").definitions()]

    assert "kb__search_docs" in names and not any(name.startswith("docs__") for name in names)


async def test_the_listing_is_cached_and_refreshed_on_demand(mcp_server):
    tools = tools_of(mcp_server)
    await tools.definitions()
    await tools.definitions()
    await tools_of(mcp_server).definitions()  # another turn of the same project: same URL and headers
    assert mcp_server.list_count == 1

    await tools.refresh()
    assert mcp_server.list_count == 2
    mcp_cache_clear(mcp_server.url)
    await tools.definitions()
    assert mcp_server.list_count == 3


async def test_without_a_cache_every_listing_asks_the_server(mcp_server):
    tools = tools_of(mcp_server, cache_seconds=0)
    await tools.definitions()
    await tools.definitions()

    assert mcp_server.list_count == 2


async def test_a_name_the_cache_does_not_know_refreshes_the_listing_once(mcp_server):
    tools = tools_of(mcp_server)
    await tools.definitions()

    with pytest.raises(ToolError) as raised:
        await tools.call("docs__new_tool", {})

    assert raised.value.code == ToolErrorCode.DEFINITION
    assert mcp_server.list_count == 2
    with pytest.raises(ToolError):
        await tools.call("other__add", {"a": 1, "b": 2})  # no server has that prefix: nothing to refresh
    assert mcp_server.list_count == 2


async def test_a_call_with_arguments_returns_the_structured_content(mcp_server):
    result = await tools_of(mcp_server).call("docs__add", {"a": 2, "b": 40})

    assert result == {"result": 42}
    assert mcp_server.calls == [("add", {"a": 2, "b": 40})]


async def test_text_contents_come_back_joined(mcp_server):
    result = await tools_of(mcp_server).call("docs__search_docs", {"query": "refunds"})

    assert result == {"text": "Result for refunds\n\nSee also: the FAQ"}


async def test_a_tool_error_carries_the_servers_text(mcp_server):
    with pytest.raises(ToolError) as raised:
        await tools_of(mcp_server).call("docs__fail", {"reason": "the index is rebuilding"})

    assert raised.value.code == ToolErrorCode.FAILED
    assert "cannot do it: the index is rebuilding" in raised.value.message
    assert raised.value.tool == "docs__fail"


async def test_arguments_are_checked_against_the_input_schema_before_calling(mcp_server):
    with pytest.raises(ToolError) as raised:
        await tools_of(mcp_server).call("docs__add", {"a": "two"})

    assert raised.value.code == ToolErrorCode.INVALID_ARGUMENTS
    assert mcp_server.calls == []


async def test_a_slow_tool_times_out(mcp_server):
    tool = server_tool(mcp_server.url)
    tool["mcp"]["timeoutMs"] = 300

    with pytest.raises(ToolError) as raised:
        await project_tools([tool], allowlist=LOOPBACK, mcp_cache_seconds=300).call("docs__slow", {"seconds": 3})

    assert raised.value.code == ToolErrorCode.TIMEOUT, raised.value.message


async def test_a_cancelled_call_is_cancelled(mcp_server):
    tools = tools_of(mcp_server)
    await tools.definitions()
    task = asyncio.create_task(tools.call("docs__slow", {"seconds": 3}))
    await asyncio.sleep(0.2)
    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task


async def test_an_oversized_result_is_refused(mcp_server):
    with pytest.raises(ToolError) as raised:
        await tools_of(mcp_server).call("docs__big", {"size": 1_200_000})

    assert raised.value.code == ToolErrorCode.TOO_LARGE


async def test_the_guard_refuses_the_server_when_loopback_is_not_allowlisted(mcp_server):
    endpoint = McpEndpoint.from_tool(server_tool(mcp_server.url))

    with pytest.raises(ToolError) as raised:
        await mcp_tools_list(endpoint, allowlist=())

    assert raised.value.code == ToolErrorCode.REFUSED
    assert mcp_server.requests == []
    assert await tools_of(mcp_server, allowlist=()).definitions() == []  # left out of the turn, not failing it


async def test_a_refused_listing_is_remembered_briefly_and_refresh_retries(mcp_server):
    endpoint = McpEndpoint.from_tool(server_tool(mcp_server.url))
    with pytest.raises(ToolError):
        await mcp_tools_list(endpoint, allowlist=())

    with pytest.raises(ToolError) as cached:
        await mcp_tools_list(endpoint, allowlist=LOOPBACK)  # the failure is cached for a few seconds
    assert cached.value.code == ToolErrorCode.REFUSED
    assert len(await mcp_tools_list(endpoint, allowlist=LOOPBACK, refresh=True)) == 5


async def test_the_secret_header_reaches_the_server_and_no_message_or_log(mcp_server, caplog):
    caplog.set_level(logging.DEBUG)
    tools = tools_of(mcp_server)
    await tools.call("docs__add", {"a": 1, "b": 1})
    with pytest.raises(ToolError) as failed:
        await tools.call("docs__fail", {"reason": "no reason"})

    assert {request.headers.get("authorization") for request in mcp_server.requests} == {f"Bearer {SECRET}"}
    assert SECRET not in repr(McpEndpoint.from_tool(server_tool(mcp_server.url)))
    assert SECRET not in str(failed.value)
    ours = [record for record in caplog.records  # the fake server runs in this process: its own logs are not ours
            if not record.name.startswith(("mcp.server", "uvicorn", "sse_starlette"))]
    assert ours and not [record for record in ours if SECRET in record.getMessage()]


async def test_a_server_that_is_gone_is_a_connection_error(mcp_server):
    endpoint = McpEndpoint.from_tool(server_tool(mcp_server.url))
    tools = await mcp_tools_list(endpoint, allowlist=LOOPBACK)
    mcp_server.stop()

    with pytest.raises(ToolError) as raised:
        await mcp_tool_call(endpoint, tools[0], {"a": 1, "b": 2}, allowlist=LOOPBACK)

    assert raised.value.code == ToolErrorCode.CONNECTION
    mcp_server.start()  # the fixture stops it again


async def test_a_host_name_is_resolved_checked_and_connected_to_by_address(mcp_server):
    url = mcp_server.url.replace("127.0.0.1", "localhost")
    tools = project_tools([server_tool(url)], allowlist=("127.0.0.0/8",), mcp_cache_seconds=300)

    assert await tools.call("docs__add", {"a": 1, "b": 2}) == {"result": 3}
    # only 127.0.0.1 passed the guard (not ::1), and the server still saw the name it was called by
    assert {request.headers["host"] for request in mcp_server.requests} == {f"localhost:{mcp_server.port}"}
