"""HTTP tools against a real loopback server: rendering, the response, failures, and the outbound guard."""
import time

import httpx
import pytest

from agents.tools import MAX_RESPONSE_BYTES, ToolError, ToolErrorCode, http_tool_call, outbound_addresses, tool_port
from tests.fakes import tool_server as fake_tool_server
from tests.fakes.tool_server import ToolServer

tool_server = fake_tool_server.tool_server  # the fixture, until tests/conftest.py registers it

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
