"""The pure parts of relay.http: request values, response headers, the Date header, config."""

from __future__ import annotations

import ast
import email.utils
from collections.abc import AsyncIterator
from pathlib import Path

import h11
import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.http import HttpConfig, Request, Response
from relay.http.messages import (
    SERVER_NAME,
    HttpDate,
    render_busy_answer,
    request_from_h11,
    response_has_no_body,
    response_headers,
)

HTTP_PACKAGE = Path(__file__).resolve().parents[2] / "relay" / "http"


def parsed(raw: bytes) -> Request:
    """A request head as h11's server side parses it from the wire."""
    server = h11.Connection(h11.SERVER)
    server.receive_data(raw)
    event = server.next_event()
    assert type(event) is h11.Request
    return request_from_h11(event, ("192.0.2.1", 80))


def test_the_target_splits_into_raw_path_and_query() -> None:
    request = parsed(b"PUT /b/k%20x?uploads=&a=b HTTP/1.1\r\nHost: t\r\n\r\n")
    assert (request.method, request.target) == ("PUT", "/b/k%20x?uploads=&a=b")
    assert (request.path, request.query) == ("/b/k%20x", "uploads=&a=b")
    assert parsed(b"GET /b HTTP/1.1\r\nHost: t\r\n\r\n").query == ""


def test_header_lookup_ignores_case_and_returns_the_first_value() -> None:
    request = parsed(b"GET / HTTP/1.1\r\nHost: t\r\nX-Amz-Meta-A: one\r\nx-amz-meta-a: two\r\n\r\n")
    assert request.header("X-AMZ-META-A") == "one"
    assert ("x-amz-meta-a", "two") in request.headers
    assert request.header("missing") is None


def test_header_values_keep_every_byte_as_latin_1() -> None:
    request = parsed(b"GET / HTTP/1.1\r\nHost: t\r\nx-amz-meta-name: caf\xc3\xa9\r\n\r\n")
    value = request.header("x-amz-meta-name")
    assert value is not None
    assert value.encode("latin-1") == "café".encode()


@pytest.mark.parametrize(
    ("head", "length", "chunked", "expects_continue"),
    [
        (b"PUT / HTTP/1.1\r\nHost: t\r\nContent-Length: 12\r\n\r\n", 12, False, False),
        (b"PUT / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n", None, True, False),
        (
            b"PUT / HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nExpect: 100-Continue\r\n\r\n",
            0,
            False,
            True,
        ),
        (b"PUT / HTTP/1.0\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n", 3, False, False),
        (b"GET / HTTP/1.1\r\nHost: t\r\n\r\n", None, False, False),
    ],
)
def test_body_framing_properties(
    head: bytes, length: int | None, chunked: bool, expects_continue: bool
) -> None:
    request = parsed(head)
    assert (request.content_length, request.chunked, request.expects_continue) == (
        length,
        chunked,
        expects_continue,
    )


def test_response_headers_add_date_server_and_the_body_length() -> None:
    response = Response(200, [("Content-Type", "text/plain"), ("ETag", '"abc"')], b"hello")
    headers = response_headers(response, 5, close=False, date=b"DATE")
    assert headers == [
        (b"content-type", b"text/plain"),
        (b"etag", b'"abc"'),
        (b"date", b"DATE"),
        (b"server", SERVER_NAME),
        (b"content-length", b"5"),
    ]


def test_the_handlers_own_framing_and_date_win() -> None:
    response = Response(200, [("Content-Length", "1234"), ("Date", "then"), ("Server", "x")])
    headers = response_headers(response, 0, close=True, date=b"now")
    assert headers == [
        (b"content-length", b"1234"),
        (b"date", b"then"),
        (b"server", b"x"),
        (b"connection", b"close"),
    ]


def test_an_unknown_length_adds_no_framing_header() -> None:
    headers = response_headers(Response(200, []), None, close=False, date=b"d")
    assert [name for name, _ in headers] == [b"date", b"server"]


@given(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF)))
def test_response_header_values_are_encoded_as_latin_1(value: str) -> None:
    headers = response_headers(Response(200, [("x-v", value)]), None, close=False, date=b"d")
    assert headers[0] == (b"x-v", value.encode("latin-1"))


@pytest.mark.parametrize(
    ("method", "status", "empty"),
    [("HEAD", 200, True), ("GET", 204, True), ("GET", 304, True), ("GET", 200, False)],
)
def test_which_responses_never_carry_a_body(method: str, status: int, empty: bool) -> None:
    assert response_has_no_body(method, status) is empty


def test_http_date_formats_imf_fixdate_once_per_second() -> None:
    dates = HttpDate()
    assert dates.at(0.0) == b"Thu, 01 Jan 1970 00:00:00 GMT"
    first = dates.at(1_700_000_000.2)
    assert first == email.utils.formatdate(1_700_000_000, usegmt=True).encode()
    assert dates.at(1_700_000_000.9) is first  # cached within the second
    assert dates.at(1_700_000_001.0) != first


@pytest.mark.parametrize("name", ["header_timeout_seconds", "max_connections", "drain_body_bytes"])
def test_config_rejects_non_positive_limits(name: str) -> None:
    with pytest.raises(ValueError, match=name):
        HttpConfig(**{name: 0})


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module if node.module.startswith("relay") else node.module.split(".")[0])
    return names


@pytest.mark.parametrize("module", ["messages.py", "config.py", "framing.py", "pacing.py"])
def test_the_pure_parts_never_import_trio(module: str) -> None:
    assert "trio" not in imports_of(HTTP_PACKAGE / module)


def test_the_http_layer_knows_nothing_of_s3() -> None:
    modules = sorted(HTTP_PACKAGE.glob("*.py"))
    assert len(modules) >= 5
    for module in modules:
        relay_imports = {name for name in imports_of(module) if name.startswith("relay")}
        assert relay_imports <= {
            "relay.http",
            "relay.http.config",
            "relay.http.connection",
            "relay.http.exchange",
            "relay.http.framing",
            "relay.http.messages",
            "relay.http.pacing",
            "relay.http.server",
            "relay.version",  # a leaf: the Server header names relay's version
        }, module.name


def test_a_busy_answer_is_a_whole_response_h11_can_read() -> None:
    response = Response(503, [("content-type", "application/xml")], b"<Error/>")
    raw = render_busy_answer(response, b"Sun, 06 Dec 2026 04:00:00 GMT")
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method="GET", target="/", headers=[("host", "t")]))
    client.receive_data(raw)
    head = client.next_event()
    assert type(head) is h11.Response
    assert (head.status_code, head.reason) == (503, b"Service Unavailable")
    assert (b"connection", b"close") in list(head.headers)
    assert (b"date", b"Sun, 06 Dec 2026 04:00:00 GMT") in list(head.headers)
    data = client.next_event()
    assert type(data) is h11.Data
    assert data.data == b"<Error/>"
    assert type(client.next_event()) is h11.EndOfMessage


def test_a_busy_answer_needs_a_bytes_body() -> None:
    async def pieces() -> AsyncIterator[bytes]:
        yield b"x"

    with pytest.raises(TypeError, match="bytes"):
        render_busy_answer(Response(503, [], pieces()), b"date")
