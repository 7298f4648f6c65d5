"""HTTP tools against a real loopback server: rendering, the response, failures, argument validation, secrets kept
out of messages, the outbound guard, the project's tools port; and the tool definitions' checks (toolspec)."""
import time

import httpx
import pytest

from agents.outbound import ToolError, ToolErrorCode, outbound_addresses
from agents.runtime.ports import ToolDefinition
from agents.runtime.toolspec import check_tools, http_tool_definitions, mcp_tool_name
from agents.tools import MAX_RESPONSE_BYTES, http_tool_call, project_tools, tool_port
from tests.fakes.tool_server import ToolServer

LOOPBACK = ("127.0.0.1",)


def tool(url: str, method: str = "GET", **http) -> dict:
    return {"id": "lookup_account", "description": "d", "parameters": {"type": "object"},
            "http": {"method": method, "url": url, **http}}


async def call(server, path: str, args: dict | None = None, *, allowlist=LOOPBACK, method="GET", **http):
    return await http_tool_call(tool(server.url + path, method, **http), args or {}, allowlist=allowlist)


# --- happy paths

async def test_get_renders_the_url_with_each_value_url_encoded(tool_server):
    result = await call(tool_server, "/accounts?email={{ email }}&tag={{ tag }}",
                        {"email": "a+b@example.com", "tag": "x&y=z/w ü"})

    assert result == {"email": "a+b@example.com", "balance": 42.5, "plan": {"tier": "premium"}}
    sent = tool_server.requests[-1]
    assert sent.path == "/accounts?email=a%2Bb%40example.com&tag=x%26y%3Dz%2Fw%20%C3%BC"
    assert sent.query == {"email": "a+b@example.com", "tag": "x&y=z/w ü"}


async def test_an_argument_cannot_change_the_path(tool_server):
    result = await call(tool_server, "/echo/{{ id }}", {"id": "../status/500?x=1"})

    assert result["path"] == "/echo/..%2Fstatus%2F500%3Fx%3D1"


async def test_explicit_urlencode_and_safe_are_not_encoded_twice(tool_server):
    await call(tool_server, "/echo?a={{ a|urlencode }}&b={{ b|safe }}", {"a": "x y", "b": "1%202"})

    assert tool_server.requests[-1].path == "/echo?a=x%20y&b=1%202"


async def test_post_sends_the_args_as_json_with_the_rendered_headers(tool_server):
    result = await call(tool_server, "/echo", {"email": "a@b.c", "count": 3}, method="POST",
                        headers={"Authorization": "Bearer {{ token|default('t0k') }}", "X-Trace": "fixed"})

    assert result["method"] == "POST"
    assert result["json"] == {"email": "a@b.c", "count": 3}
    assert result["headers"]["authorization"] == "Bearer t0k"
    assert result["headers"]["x-trace"] == "fixed"
    assert result["headers"]["content-type"] == "application/json"
    assert result["headers"]["host"] == tool_server.url.removeprefix("http://")


async def test_a_body_template_keeps_the_type_of_a_single_expression(tool_server):
    result = await call(tool_server, "/echo", {"email": "a@b.c", "count": 3}, method="PUT",
                        body={"customer": {"email": "{{ email }}", "count": "{{ count }}"},
                              "note": "n={{ count }}", "flags": ["{{ missing }}", True]})

    assert result["method"] == "PUT"
    assert result["json"] == {"customer": {"email": "a@b.c", "count": 3}, "note": "n=3", "flags": [None, True]}


async def test_get_sends_no_body(tool_server):
    await call(tool_server, "/echo", {"email": "a@b.c"})

    assert tool_server.requests[-1].body == b""


async def test_a_non_json_body_comes_back_as_text(tool_server):
    assert await call(tool_server, "/text") == {"text": "plain words"}


async def test_a_redirect_between_allowed_addresses_is_followed(tool_server):
    target = f"{tool_server.url}/accounts?email=r%40x.y"

    result = await call(tool_server, "/redirect?to={{ to }}", {"to": target})

    assert result["email"] == "r@x.y"
    assert [r.route for r in tool_server.requests] == ["/redirect", "/accounts"]


async def test_a_303_after_post_becomes_a_get_and_a_307_keeps_the_body(tool_server):
    echo = f"{tool_server.url}/echo"
    after_303 = await call(tool_server, "/redirect?code=303&to={{ to }}", {"to": echo, "a": 1}, method="POST")
    after_307 = await call(tool_server, "/redirect?code=307&to={{ to }}", {"to": echo, "a": 1}, method="POST")

    assert (after_303["method"], after_303["json"]) == ("GET", None)
    assert (after_307["method"], after_307["json"]) == ("POST", {"to": echo, "a": 1})


async def test_the_tools_headers_do_not_follow_a_redirect_to_another_origin(tool_server):
    with ToolServer() as other:
        result = await call(tool_server, "/redirect?to={{ to }}", {"to": f"{other.url}/echo"},
                            headers={"Authorization": "Bearer secret"})

    assert "authorization" not in result["headers"]
    assert tool_server.requests[-1].headers["authorization"] == "Bearer secret"


async def test_a_host_name_is_resolved_and_the_request_goes_to_a_checked_address(tool_server):
    url = tool_server.url.replace("127.0.0.1", "localhost")

    result = await http_tool_call(tool(url + "/echo"), {}, allowlist=("127.0.0.0/8",))

    # whatever ::1 does, only 127.0.0.1 is allowed, and the server still sees the name it was called by
    assert result["headers"]["host"] == f"localhost:{tool_server.port}"


async def test_https_goes_to_the_checked_address_and_verifies_the_certificate_for_the_host_name():
    with ToolServer(tls=True) as server:
        async with httpx.AsyncClient(verify=server.client_ssl_context()) as client:
            result = await http_tool_call(tool(server.url + "/accounts?email=t@l.s"), {}, allowlist=("127.0.0.0/8",),
                                          client=client)

    assert result["email"] == "t@l.s"
    assert server.requests[-1].headers["host"] == f"localhost:{server.port}"


async def test_the_port_calls_a_tool_by_name(tool_server):
    tools = tool_port([tool(tool_server.url + "/accounts?email={{ email }}")], allowlist=LOOPBACK)

    assert (await tools("lookup_account", {"email": "p@o.rt"}))["email"] == "p@o.rt"
    with pytest.raises(ToolError) as raised:
        await tools("nope", {})
    assert raised.value.code == ToolErrorCode.DEFINITION


async def test_the_port_reads_the_allowlist_from_settings(tool_server, settings):
    settings.CONDUET_OUTBOUND_ALLOWLIST = ["127.0.0.1"]

    assert (await tool_port([tool(tool_server.url + "/text")])("lookup_account", {})) == {"text": "plain words"}


# --- failures

async def test_a_500_is_a_tool_error_with_its_status(tool_server):
    with pytest.raises(ToolError) as raised:
        await call(tool_server, "/status/500")

    assert (raised.value.code, raised.value.status) == (ToolErrorCode.STATUS, 500)
    assert "answered 500" in str(raised.value) and "lookup_account" in str(raised.value)


async def test_a_slow_server_times_out_quickly(tool_server):
    started = time.monotonic()
    with pytest.raises(ToolError) as raised:
        await call(tool_server, "/slow?seconds=5", timeoutMs=200)

    assert raised.value.code == ToolErrorCode.TIMEOUT
    assert time.monotonic() - started < 2


@pytest.mark.parametrize("path", ["/big", "/big?chunked=1"])
async def test_an_oversized_body_is_refused(tool_server, path):
    with pytest.raises(ToolError) as raised:
        await call(tool_server, path)

    assert raised.value.code == ToolErrorCode.TOO_LARGE


async def test_a_body_of_exactly_the_limit_is_read(tool_server):
    result = await call(tool_server, f"/big?chunked=1&size={MAX_RESPONSE_BYTES}")

    assert len(result["text"]) == MAX_RESPONSE_BYTES


async def test_a_closed_port_is_a_connection_error():
    with ToolServer() as server:
        url = server.url
    with pytest.raises(ToolError) as raised:
        await http_tool_call(tool(url + "/accounts"), {}, allowlist=LOOPBACK)

    assert raised.value.code == ToolErrorCode.CONNECTION


@pytest.mark.parametrize("http", [{"method": "TRACE"}, {"timeoutMs": 0}, {"headers": {"X-A": "{{ v }}"}},
                                  {"url": "http://example.com/{{ 1 + }}"}])
async def test_a_bad_definition_is_a_tool_error(tool_server, http):
    definition = tool(tool_server.url + "/echo")
    definition["http"].update(http)

    with pytest.raises(ToolError) as raised:
        await http_tool_call(definition, {"v": "a\r\nX-Injected: 1"}, allowlist=LOOPBACK)

    assert raised.value.code == ToolErrorCode.DEFINITION
    assert tool_server.requests == []


# --- the outbound guard

async def test_loopback_is_refused_without_the_allowlist(tool_server):
    with pytest.raises(ToolError) as raised:
        await call(tool_server, "/accounts", allowlist=())

    assert raised.value.code == ToolErrorCode.REFUSED
    assert tool_server.requests == []


@pytest.mark.parametrize("allowlist", [("127.0.0.1",), ("127.0.0.0/8",), ("10.0.0.0/8", " 127.0.0.1 ")])
async def test_loopback_is_allowed_by_an_address_or_network_on_the_allowlist(tool_server, allowlist):
    assert (await call(tool_server, "/accounts?email=x", allowlist=allowlist))["balance"] == 42.5


async def test_a_host_name_on_the_allowlist_admits_its_addresses(tool_server):
    url = tool_server.url.replace("127.0.0.1", "localhost")

    assert (await http_tool_call(tool(url + "/text"), {}, allowlist=("LOCALHOST",))) == {"text": "plain words"}


@pytest.mark.parametrize("target", ["http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/",
                                    "http://[fd00:ec2::254]/", "http://[::ffff:192.168.1.1]/", "file:///etc/passwd"])
async def test_a_redirect_to_a_refused_address_is_refused_before_connecting(tool_server, target):
    started = time.monotonic()
    with pytest.raises(ToolError) as raised:
        await call(tool_server, "/redirect?to={{ to }}", {"to": target})

    assert raised.value.code == ToolErrorCode.REFUSED
    assert time.monotonic() - started < 2  # no connection attempt to a black-holed address
    assert [r.route for r in tool_server.requests] == ["/redirect"]


async def test_too_many_redirects(tool_server):
    url = f"{tool_server.url}/text"
    for _ in range(6):
        url = str(httpx.URL(f"{tool_server.url}/redirect", params={"to": url}))

    with pytest.raises(ToolError) as raised:
        await http_tool_call(tool(url), {}, allowlist=LOOPBACK)

    assert raised.value.code == ToolErrorCode.REDIRECTS
    assert len(tool_server.requests) == 6


@pytest.mark.parametrize("url", ["ftp://example.com/x", "file:///etc/passwd", "gopher://127.0.0.1:70/"])
async def test_a_non_http_scheme_is_refused(url):
    with pytest.raises(ToolError) as raised:
        await http_tool_call(tool(url), {}, allowlist=LOOPBACK)

    assert raised.value.code == ToolErrorCode.REFUSED


@pytest.mark.parametrize("address", ["0.0.0.0", "10.1.2.3", "172.16.0.1", "192.168.0.1", "100.64.0.1", "224.0.0.1",
                                     "169.254.169.254", "[::1]", "[fe80::1]", "[fd00:ec2::254]", "[::ffff:127.0.0.1]"])
async def test_the_guard_refuses_non_public_addresses(address):
    with pytest.raises(ToolError) as raised:
        await outbound_addresses(httpx.URL(f"http://{address}/"), ())

    assert raised.value.code == ToolErrorCode.REFUSED


async def test_the_guard_admits_a_public_address_without_resolving():
    assert await outbound_addresses(httpx.URL("https://93.184.215.14/"), ()) == ["93.184.215.14"]


async def test_metadata_addresses_are_refused_even_when_the_allowlist_admits_them():
    for allowlist in [("169.254.0.0/16",), ("169.254.169.254",), ("0.0.0.0/0", "::/0")]:
        for address in ["169.254.169.254", "[::ffff:169.254.169.254]", "[64:ff9b::a9fe:a9fe]", "[fd00:ec2::254]"]:
            with pytest.raises(ToolError) as raised:
                await outbound_addresses(httpx.URL(f"http://{address}/latest/meta-data/"), allowlist)
            assert raised.value.code == ToolErrorCode.REFUSED, (allowlist, address)
    # the rest of the link-local network is the allowlist's to admit
    assert await outbound_addresses(httpx.URL("http://169.254.1.1/"), ("169.254.0.0/16",)) == ["169.254.1.1"]


async def test_a_host_name_that_resolves_to_loopback_is_refused_without_the_allowlist(tool_server):
    # `localhost` resolves locally (no DNS, no network), to loopback addresses only.
    url = tool_server.url.replace("127.0.0.1", "localhost")

    with pytest.raises(ToolError) as raised:
        await http_tool_call(tool(url + "/accounts"), {}, allowlist=())

    assert raised.value.code == ToolErrorCode.REFUSED
    assert "localhost resolves to" in raised.value.message
    assert tool_server.requests == []


async def test_a_redirect_to_a_private_address_is_refused_even_with_loopback_allowed(tool_server):
    with pytest.raises(ToolError) as raised:
        await call(tool_server, "/redirect?to={{ to }}", {"to": "http://10.0.0.1/admin"}, allowlist=("127.0.0.0/8",))

    assert raised.value.code == ToolErrorCode.REFUSED
    assert [r.route for r in tool_server.requests] == ["/redirect"]


# --- argument validation

ACCOUNT_SCHEMA = {"type": "object", "required": ["email"], "additionalProperties": False,
                  "properties": {"email": {"type": "string", "format": "email"},
                                 "limit": {"type": "integer", "minimum": 1, "maximum": 10},
                                 "tags": {"type": "array", "items": {"type": "string"}}}}


@pytest.mark.parametrize(("args", "fault"), [
    ({}, "invalid arguments: 'email' is a required property"),
    ({"email": "a@b.c", "limit": 11}, "invalid arguments at limit: 11 is greater than the maximum of 10"),
    ({"email": "a@b.c", "tags": ["x", 3]}, "invalid arguments at tags[1]: 3 is not of type 'string'"),
    ({"email": "a@b.c", "extra": 1}, "('extra' was unexpected)"),
    ({"email": "nope"}, "invalid arguments at email: 'nope' is not a 'email'"),
])
async def test_arguments_that_do_not_match_the_parameters_are_refused_before_any_request(tool_server, args, fault):
    definition = tool(tool_server.url + "/accounts?email={{ email }}")
    definition["parameters"] = ACCOUNT_SCHEMA

    with pytest.raises(ToolError) as raised:
        await http_tool_call(definition, args, allowlist=LOOPBACK)

    assert raised.value.code == ToolErrorCode.INVALID_ARGUMENTS
    assert fault in raised.value.message
    assert raised.value.tool == "lookup_account"
    assert tool_server.requests == []


async def test_matching_arguments_are_sent(tool_server):
    definition = tool(tool_server.url + "/accounts?email={{ email }}")
    definition["parameters"] = ACCOUNT_SCHEMA

    assert (await http_tool_call(definition, {"email": "a@b.c", "limit": 3}, allowlist=LOOPBACK))["email"] == "a@b.c"


async def test_a_tool_without_parameters_takes_any_object_but_only_an_object(tool_server):
    definition = tool(tool_server.url + "/echo", "POST")
    del definition["parameters"]

    assert (await http_tool_call(definition, {"anything": [1]}, allowlist=LOOPBACK))["json"] == {"anything": [1]}
    with pytest.raises(ToolError) as raised:
        await http_tool_call(definition, ["not", "an", "object"], allowlist=LOOPBACK)
    assert raised.value.code == ToolErrorCode.INVALID_ARGUMENTS


# --- header values are secrets: never in a message

SECRET = "sk-live-0123456789abcdef"


@pytest.mark.parametrize("path", ["/status/500", "/slow?seconds=5"])
async def test_a_failing_call_names_no_header_value(tool_server, path):
    with pytest.raises(ToolError) as raised:
        await call(tool_server, path, headers={"Authorization": f"Bearer {SECRET}"}, timeoutMs=200)

    assert SECRET not in str(raised.value) and SECRET not in repr(raised.value.args)


@pytest.mark.parametrize("value", [f"Bearer {SECRET}\x01", f"Bearer {SECRET} ü", "{{ 1 + }}" + SECRET,
                                   "Bearer {{ token }}"])
async def test_a_header_value_the_client_cannot_send_is_refused_without_quoting_it(tool_server, value):
    with pytest.raises(ToolError) as raised:
        await call(tool_server, "/echo", {"token": f"{SECRET}\r\nX-Injected: 1"}, headers={"X-Key": value})

    assert raised.value.code == ToolErrorCode.DEFINITION
    assert "http.headers.X-Key" in raised.value.message
    assert SECRET not in str(raised.value)
    assert tool_server.requests == []


async def test_a_sealed_value_that_was_not_decrypted_is_a_definition_error(tool_server):
    with pytest.raises(ToolError) as raised:
        await call(tool_server, "/echo", headers={"X-Key": {"$secret": "gAAAA"}})

    assert raised.value.code == ToolErrorCode.DEFINITION
    assert tool_server.requests == []


async def test_a_message_that_quotes_a_header_value_is_scrubbed(tool_server):
    # A URL that carries the token in its path: the status message names the URL.
    with pytest.raises(ToolError) as raised:
        await call(tool_server, "/missing/{{ key }}", {"key": SECRET}, headers={"Authorization": f"Bearer {SECRET}"})

    assert (raised.value.code, raised.value.status) == (ToolErrorCode.STATUS, 404)
    assert SECRET not in str(raised.value) and "••••••••" in str(raised.value)


# --- the project's tools (the turn's port)

def mcp_tool(url: str = "http://127.0.0.1:9/mcp", **more) -> dict:
    return {"id": "docs", "kind": "mcp", "description": "Docs", "mcp": {"url": url}, **more}


async def test_project_tools_calls_http_tools_by_id_and_lists_them(tool_server):
    definition = tool(tool_server.url + "/accounts?email={{ email }}")
    definition["parameters"] = ACCOUNT_SCHEMA
    tools = project_tools([definition], allowlist=LOOPBACK, mcp_cache_seconds=0)

    assert (await tools.call("lookup_account", {"email": "p@o.rt"}))["email"] == "p@o.rt"
    assert await tools.definitions() == [ToolDefinition(name="lookup_account", description="d",
                                                        parameters=ACCOUNT_SCHEMA, source="lookup_account")]
    with pytest.raises(ToolError) as raised:
        await tools.call("docs__search", {})
    assert raised.value.code == ToolErrorCode.DEFINITION


async def test_project_tools_leaves_out_an_mcp_server_it_cannot_list(tool_server, caplog):
    tools = project_tools([tool(tool_server.url + "/text"), mcp_tool(headers={"Authorization": SECRET})],
                          allowlist=(), mcp_cache_seconds=0)

    assert [d.name for d in await tools.definitions()] == ["lookup_account"]
    assert "The MCP server of tool 'docs'" in caplog.text


# --- tool definitions (agents/runtime/toolspec.py)

def test_valid_tools_have_no_problems():
    tools = [tool("https://api.example.com/accounts?email={{ email }}", "post",
                  headers={"Authorization": {"$secret": "gAAAA…"}, "X-Trace": "t"}, timeoutMs=5000),
             {"id": "no-kind", "http": {"url": "http://example.com/"}, "save": {"balance": "account.balance"}},
             mcp_tool("https://docs.example.com/mcp", prefix="kb", mcp_headers=None)]
    tools[0]["parameters"] = ACCOUNT_SCHEMA

    assert check_tools(tools) == {}
    assert check_tools([]) == {} and check_tools(None) == {}


def test_every_problem_of_the_tools_is_keyed_by_location():
    problems = check_tools([
        {"id": "has space", "http": {"url": "ftp://x/", "method": "TRACE", "headers": {"Bad Name": "v", "X": 1}},
         "parameters": {"type": "string"}},
        {"id": "dup", "kind": "http", "http": {"url": "https://x.example/", "timeoutMs": 0},
         "parameters": {"type": "object", "properties": {"a": {"type": 12}}}, "save": {"1bad": "x"}},
        {"id": "dup", "kind": "mcp", "mcp": {"url": "mcp.example.com"}, "prefix": "a.b"},
        {"id": "x" * 65, "kind": "grpc"},
        "not a tool",
    ])

    assert set(problems) == {
        "tools[0].id", "tools[0].http.url", "tools[0].http.method", "tools[0].http.headers", "tools[0].http.headers.X",
        "tools[0].parameters", "tools[1].id", "tools[1].http.timeoutMs", "tools[1].parameters", "tools[1].save",
        "tools[2].id",
        "tools[2].mcp.url", "tools[2].prefix", "tools[3].id", "tools[3].kind", "tools[4]"}, problems
    assert problems["tools[2].id"] == ["Duplicate tool id 'dup'."]
    assert problems["tools[0].parameters"] == ['The arguments schema has "type": "object".']
    assert problems["tools[1].parameters"][0].startswith("Not a valid JSON Schema at properties/a/type:")
    assert check_tools("nope") == {"tools": ["Expected a list."]}


def test_http_tool_definitions_skip_mcp_servers_and_default_the_parameters():
    definitions = http_tool_definitions([tool("https://x.example/"), mcp_tool(),
                                         {"id": "bare", "http": {"url": "https://x.example/"}}])

    assert [(d.name, d.source) for d in definitions] == [("lookup_account", "lookup_account"), ("bare", "bare")]
    assert definitions[1].parameters == {"type": "object", "properties": {}}
    assert definitions[0].openai()["function"]["name"] == "lookup_account"


def test_mcp_tool_names_are_sanitized_and_bounded():
    assert mcp_tool_name("docs", "search.v2 beta") == "docs__search_v2_beta"
    assert len(mcp_tool_name("p" * 40, "t" * 40)) == 64
