"""Hostile input a review found after tests/test_fakes_hostile.py: each once a 500 or worse.

Every case here was answered with a 500 ``fake_handler_error`` (a harness bug, by the fakes' own
rule), left a connection mis-framed or open for good, broke the journal endpoint, or was accepted
though the original client could never have sent it. Each now gets the 4xx JSON error that
names the problem. Bodies are written from docs/PROTOCOLS.md by hand, GetGpt's signatures made
with the independent tests/aes_oracle.py; answers are checked on the raw socket.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import time
import zlib
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pytest
from aiohttp import web

import fake_upstreams.app as fake_app
from fake_upstreams.app import FakeState
from fake_upstreams.chunking import ChunkPlan
from fake_upstreams.faults import MAX_FAULT_BYTES, Fault
from fake_upstreams.journal import Verdict
from fake_upstreams.registry import build_server
from fake_upstreams.reply import PlannedReply
from fake_upstreams.script import ResponseScript
from fake_upstreams.server import FakeFleet, FakeServer
from providers.errors import FakeUpstreamError
from providers.wire.common import MAX_JSON_DEPTH, ChatRequest, Framing
from tests import aes_oracle as oracle
from tests import fakes_support as fs
from tests._rawclient import RawResponse, build_request, exchange
from tests.wire_literals import getgpt_plaintext

pytestmark = pytest.mark.timeout(60)

fleet, _fakes_guard = fs.fleet_fixtures()

HI = [{"role": "user", "content": "hi"}]
UUID = "0e7c2b8a-3f4d-4e1a-9b6c-5d8e7f1a2b3c"
JSON_CONTENT_TYPE = "application/json; charset=utf-8"
#: GetGpt's one answer for every failure up to a usable plaintext.
BAD_SIGNATURE = (
    b'{"error": {"code": "bad_signature", "message": "signature could not be decrypted", '
    b'"field": "signature"}}'
)


# -- requests, written from docs/PROTOCOLS.md -----------------------------------------------------


def aivvm_body(messages: Sequence[object] = HI, **changes: Any) -> dict[str, Any]:
    return {
        "model": {"id": "gpt-3.5-turbo", "name": "GPT-3.5"},
        "messages": messages,
        "key": "",
        "prompt": "You are ChatGPT.",
        "temperature": 0.7,
        **changes,
    }


def ai365_body(messages: Sequence[object] = HI, **changes: Any) -> dict[str, Any]:
    model = {"id": "gpt-4o", "name": "GPT-3.5", "maxLength": 3000, "tokenLimit": 2048}
    body = {
        "model": model,
        "messages": messages,
        "key": "",
        "prompt": "You are a helpful assistant.",
    }
    return {**body, "temperature": 1, **changes}


def codelink_body(messages: Sequence[object] = HI, **changes: Any) -> dict[str, Any]:
    return {"messages": messages, "temperature": 0.6, "stream": True, **changes}


def plaintext(messages: Sequence[object] = HI, **changes: Any) -> dict[str, Any]:
    return {**getgpt_plaintext(messages, UUID), **changes}  # type: ignore[arg-type]


def sealed(inner: dict[str, Any] | bytes, **outer: Any) -> dict[str, Any]:
    data = inner if isinstance(inner, bytes) else fs.json_body(inner)
    return {"signature": oracle.seal(data), **outer}


def body_for(provider: str, messages: Sequence[object] = HI, **changes: Any) -> dict[str, Any]:
    """A valid chat body for ``provider`` with ``messages`` and fields changed."""
    if provider == "GetGpt":
        return sealed(plaintext(messages, **changes))
    build: Callable[..., dict[str, Any]] = {
        "Aivvm": aivvm_body,
        "AI365VIP": ai365_body,
        "CodeLinkAva": codelink_body,
    }[provider]
    return build(messages, **changes)


def browser(provider: str) -> tuple[tuple[str, str], ...]:
    return (*fs.BROWSER_HEADERS[provider], fs.JSON_CT)


async def post(
    server: FakeServer,
    provider: str,
    body: bytes | dict[str, Any],
    *,
    extra: Sequence[tuple[str, str]] = (),
    path: str | None = None,
    version: str = "1.1",
) -> RawResponse:
    raw = body if isinstance(body, bytes) else fs.json_body(body)
    headers = (*browser(provider), *extra)
    request = build_request(path or fs.CHAT_PATH[provider], raw, headers, version=version)
    return await exchange(server.port, request)


def error_of(reply: RawResponse, status: int, code: str, field: str | None = None) -> str:
    """Check a JSON error reply; returns its message."""
    assert reply.status == status, reply.raw[:400]
    assert reply.header("Content-Type") == JSON_CONTENT_TYPE
    error = json.loads(reply.body)["error"]
    assert (error["code"], error.get("field")) == (code, field), error
    message: str = error["message"]
    return message


def last_verdict(server: FakeServer) -> Verdict:
    fs.settle(server)
    verdict = server.state.journal.last.verdict
    assert verdict is not None
    return verdict


def nested(levels: int) -> Any:
    """An array nested ``levels`` deep: ``nested(1) == []``."""
    value: Any = []
    for _ in range(levels - 1):
        value = [value]
    return value


def script_header(script: object) -> tuple[str, str]:
    return ("X-Tapedeck-Script", json.dumps(script))


# -- A1: lone surrogates --------------------------------------------------------------------------


@pytest.mark.parametrize("provider", ["Aivvm", "AI365VIP", "CodeLinkAva"])
async def test_a_lone_surrogate_escape_in_a_message_is_bad_messages(
    fleet: FakeFleet, provider: str
) -> None:
    body = body_for(provider, [{"role": "user", "content": "\ud800"}])
    assert b'"\\ud800"' in fs.json_body(body)  # sent as the JSON escape
    reply = await post(fleet[provider], provider, body)
    message = error_of(reply, 400, "bad_messages", "messages[0].content")
    assert "lone surrogate" in message
    assert last_verdict(fleet[provider]).code == "bad_messages"


async def test_a_lone_surrogate_in_a_role_is_bad_messages_even_when_lenient(
    fleet: FakeFleet,
) -> None:
    server = fleet["CodeLinkAva"]
    server.state.strictness = "lenient"
    body = codelink_body([{"role": "us\udc00er", "content": "hi"}])
    error_of(await post(server, "CodeLinkAva", body), 400, "bad_messages", "messages[0].role")


async def test_a_lone_surrogate_in_getgpt_plaintext_is_an_unusable_plaintext(
    fleet: FakeFleet,
) -> None:
    server = fleet["GetGpt"]
    reply = await post(server, "GetGpt", sealed(plaintext([{"role": "user", "content": "\udfff"}])))
    assert (reply.status, reply.body) == (400, BAD_SIGNATURE)
    # The client gets the one decrypt-stage answer; the journal says why.
    assert "lone surrogate" in last_verdict(server).message


async def test_a_surrogate_pair_is_ordinary_text(fleet: FakeFleet) -> None:
    server = fleet["CodeLinkAva"]
    body = codelink_body([{"role": "user", "content": "\U0001f642"}])
    assert b'"\\ud83d\\ude42"' in fs.json_body(body)
    reply = await post(server, "CodeLinkAva", body)
    assert (reply.status, reply.complete) == (200, True)
    assert "\U0001f642".encode() in reply.body


async def test_a_script_header_that_is_not_utf8_is_bad_script_header(fleet: FakeFleet) -> None:
    # build_request writes headers as Latin-1: "\xff" goes out as the single byte 0xff.
    server = fleet["Aivvm"]
    reply = await post(
        server, "Aivvm", aivvm_body(), extra=[("X-Tapedeck-Script", '{"text": "\xff"}')]
    )
    message = error_of(reply, 400, "bad_script_header", "X-Tapedeck-Script")
    assert "not UTF-8" in message


# Scripts with lone surrogates are refused when loaded: see AT_LOAD below (A5).


# -- A2: content encodings ------------------------------------------------------------------------

# mtime=0: gzip stamps the current time into its header, which made these bodies (and so the
# test ids) differ between pytest-xdist workers that collected them in different seconds.
GZIP_HI = gzip.compress(fs.json_body(codelink_body()), mtime=0)
ENCODED_BODIES = [
    ("gzip", GZIP_HI),
    ("gzip", b"notgzip"),
    ("deflate", b"\x78\x9cgarbage"),
    ("identity", fs.json_body(codelink_body())),
]


@pytest.mark.parametrize(
    ("coding", "body"), ENCODED_BODIES, ids=["gzip", "not-gzip", "bad-deflate", "identity"]
)
async def test_strict_refuses_any_content_encoding(
    fleet: FakeFleet, coding: str, body: bytes
) -> None:
    server = fleet["CodeLinkAva"]
    reply = await post(server, "CodeLinkAva", body, extra=[("Content-Encoding", coding)])
    message = error_of(reply, 415, "unsupported_content_encoding", "content-encoding")
    assert repr(coding) in message
    assert last_verdict(server).code == "unsupported_content_encoding"


@pytest.mark.parametrize(
    ("coding", "body"),
    [("gzip", b"notgzip"), ("deflate", b"\x78\x9cgarbage"), ("gzip", GZIP_HI[:12] + b"garbage")],
    ids=["not-gzip", "bad-deflate", "gzip-cut-short"],
)
async def test_lenient_answers_a_body_that_does_not_decode_with_400(
    fleet: FakeFleet, coding: str, body: bytes
) -> None:
    server = fleet["CodeLinkAva"]
    server.state.strictness = "lenient"
    reply = await post(server, "CodeLinkAva", body, extra=[("Content-Encoding", coding)])
    assert "could not be read" in error_of(reply, 400, "bad_body_encoding")
    assert last_verdict(server).code == "bad_body_encoding"


async def test_lenient_takes_a_valid_gzip_or_deflate_body(fleet: FakeFleet) -> None:
    server = fleet["CodeLinkAva"]
    server.state.strictness = "lenient"
    for coding, body in (
        ("gzip", GZIP_HI),
        ("deflate", zlib.compress(fs.json_body(codelink_body()))),
    ):
        reply = await post(server, "CodeLinkAva", body, extra=[("Content-Encoding", coding)])
        assert (reply.status, reply.complete) == (200, True), reply.raw[:300]
        assert b"said: " in reply.body


async def test_the_script_endpoint_answers_a_body_that_does_not_decode_with_json(
    fleet: FakeFleet,
) -> None:
    server = fleet["Aivvm"]
    headers = (fs.JSON_CT, ("Content-Encoding", "gzip"))
    request = build_request("/__tapedeck__/script", b"notgzip", headers)
    error_of(await exchange(server.port, request), 400, "bad_body_encoding")


# -- A3: HTTP versions ----------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["2.0", "0.9"])
async def test_an_http_version_without_chunked_framing_gets_505(
    fleet: FakeFleet, version: str
) -> None:
    server = fleet["CodeLinkAva"]
    reply = await post(server, "CodeLinkAva", codelink_body(), version=version)
    head, _, body = reply.raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    assert status_line.split(" ")[1] == "505", reply.raw[:300]
    assert f"Content-Type: {JSON_CONTENT_TYPE}" in header_lines
    error = json.loads(body)["error"]
    assert error["code"] == "http_version_not_supported"
    assert f"HTTP/{version}" in error["message"]
    assert last_verdict(server).code == "http_version_not_supported"


async def test_a_505_uses_up_no_script_and_sleeps_no_delay(fleet: FakeFleet) -> None:
    server = fleet["CodeLinkAva"]
    server.state.scripts.load({"queue": [{"text": "one", "first_byte_delay": 2}, {"text": "two"}]})
    started = time.monotonic()
    refused = await post(server, "CodeLinkAva", codelink_body(), version="2.0")
    assert refused.raw.split(b" ")[1] == b"505"
    assert time.monotonic() - started < 1.5  # the queued script's delay was not slept
    # An error page is framed by Content-Length, which HTTP/2.0 has no more than chunks.
    server.state.scripts.load({"http_error": "server-error"})
    assert (await post(server, "CodeLinkAva", codelink_body(), version="2.0")).raw.split(b" ")[
        1
    ] == b"505"
    server.state.scripts.load({"queue": [{"text": "one"}, {"text": "two"}]})
    await post(server, "CodeLinkAva", codelink_body(), version="2.0")
    served = await post(server, "CodeLinkAva", codelink_body())
    assert b"one" in served.body  # the 505 did not take it from the queue


async def test_http_1_0_is_still_served(fleet: FakeFleet) -> None:
    reply = await post(fleet["CodeLinkAva"], "CodeLinkAva", codelink_body(), version="1.0")
    assert reply.status == 200
    assert reply.body.endswith(b"data: [DONE]\n\n")


# -- A4: nesting, numbers that overflow, and a journal that always encodes ------------------------


async def test_nesting_up_to_the_limit_is_taken_beyond_it_is_body_too_deep(
    fleet: FakeFleet,
) -> None:
    # The body is level 1, so an extra field may hold MAX_JSON_DEPTH - 1 levels.
    server = fleet["CodeLinkAva"]
    fits = await post(server, "CodeLinkAva", codelink_body(x=nested(MAX_JSON_DEPTH - 1)))
    assert (fits.status, fits.complete) == (200, True)
    deep = await post(server, "CodeLinkAva", codelink_body(x=nested(MAX_JSON_DEPTH)))
    assert "more than 64 levels" in error_of(deep, 400, "body_too_deep", "x")


async def test_a_body_nested_978_deep_is_refused_and_the_journal_still_answers(
    fleet: FakeFleet,
) -> None:
    server = fleet["CodeLinkAva"]
    raw = fs.json_body(codelink_body())[:-1] + b', "x": ' + b"[" * 978 + b"]" * 978 + b"}"
    error_of(await post(server, "CodeLinkAva", raw), 400, "body_too_deep", "x")
    journal = await exchange(server.port, build_request("/__tapedeck__/journal", b"", method="GET"))
    assert (journal.status, journal.header("Content-Type")) == (200, JSON_CONTENT_TYPE)
    assert json.loads(journal.body)["entries"][0]["verdict"]["code"] == "body_too_deep"


DEEP = nested(MAX_JSON_DEPTH)
#: Every place a value can hide from a codec's checks, by provider and strictness.
DEEP_PLACES = [
    ("Aivvm", "lenient", aivvm_body(extra=DEEP), "extra"),
    ("Aivvm", "lenient", aivvm_body(model={"id": "gpt-4", "name": DEEP}), "model.name"),
    (
        "Aivvm",
        "strict",
        aivvm_body([{"role": "user", "content": "hi", "x": DEEP}]),
        "messages[0].x",
    ),
    ("AI365VIP", "lenient", ai365_body(model={"id": "gpt-4o", "x": DEEP}), "model.x"),
    ("CodeLinkAva", "strict", {"messages": HI, "stream": True, "x": DEEP}, "x"),
    ("GetGpt", "strict", sealed(plaintext(), x=DEEP), "x"),
    ("GetGpt", "lenient", sealed(plaintext(temperature=DEEP)), "plaintext.temperature"),
    ("GetGpt", "lenient", sealed(plaintext(x=DEEP)), "plaintext.x"),
]


@pytest.mark.parametrize(
    ("provider", "strictness", "body", "where"),
    DEEP_PLACES,
    ids=[f"{p}-{s}-{w}" for p, s, _, w in DEEP_PLACES],
)
async def test_a_deep_value_is_refused_wherever_it_hides(
    fleet: FakeFleet, provider: str, strictness: str, body: dict[str, Any], where: str
) -> None:
    server = fleet[provider]
    server.state.strictness = strictness  # type: ignore[assignment]
    error_of(await post(server, provider, body), 400, "body_too_deep", where)


OVERFLOWS = [
    ("Aivvm", b'"temperature": 0.7', b'"temperature": 1e999'),
    ("AI365VIP", b'"temperature": 1', b'"temperature": -1E400'),
    ("CodeLinkAva", b'"temperature": 0.6', b'"temperature": 0.6, "x": [' + b"9" * 400 + b".0]"),
]


@pytest.mark.parametrize(("provider", "old", "new"), OVERFLOWS, ids=[p for p, _, _ in OVERFLOWS])
async def test_a_number_that_overflows_a_float_is_refused(
    fleet: FakeFleet, provider: str, old: bytes, new: bytes
) -> None:
    server = fleet[provider]
    raw = fs.json_body(body_for(provider))
    assert old in raw
    reply = await post(server, provider, raw.replace(old, new))
    assert "too large for a float" in error_of(reply, 400, "body_not_json")


async def test_a_number_that_overflows_in_getgpt_plaintext_is_unusable(fleet: FakeFleet) -> None:
    server = fleet["GetGpt"]
    inner = fs.json_body(plaintext()).replace(b'"temperature": 1', b'"temperature": 1e999')
    reply = await post(server, "GetGpt", sealed(inner))
    assert (reply.status, reply.body) == (400, BAD_SIGNATURE)


async def test_the_largest_finite_numbers_are_fine(fleet: FakeFleet) -> None:
    server = fleet["CodeLinkAva"]
    raw = fs.json_body(codelink_body(x=[1.7976931348623157e308, -1e308, 1e-999]))
    assert (await post(server, "CodeLinkAva", raw)).status == 200


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} in the journal")


async def test_the_journal_endpoint_encodes_whatever_an_entry_holds(fleet: FakeFleet) -> None:
    server = fleet["CodeLinkAva"]
    journal = server.state.journal
    strange = {"inf": float("inf"), "nan": float("nan"), "deep": nested(5000), "set": {1}}
    index = journal.open("POST", "/api/chat", [], b"{}")
    journal.judge(index, Verdict(True, 200), chat=ChatRequest("", tuple(HI), strange))
    reply = await exchange(server.port, build_request("/__tapedeck__/journal", b"", method="GET"))
    assert (reply.status, reply.header("Content-Type")) == (200, JSON_CONTENT_TYPE)
    options = json.loads(reply.body, parse_constant=_refuse_constant)["entries"][0]["chat"][
        "options"
    ]
    assert options["inf"] == "<not JSON: inf>"
    assert options["set"] == "<not JSON: a set>"
    depth, value = 0, options["deep"]
    while isinstance(value, list):
        depth, value = depth + 1, value[0]
    assert value == "<nested more than 100 levels: not shown>"
    server.state.reset()


# -- A5: scripts that cannot become a reply -------------------------------------------------------

AT_LOAD = [
    ({"text": "\ud800"}, "'text'"),
    ({"pieces": ["ok", "\udc00"]}, "'pieces[1]'"),
    ({"headers": [["X-A", "\ud800"]]}, "'headers[0]'"),
    ({"framing": {"text_encoding": "idna"}, "text": "a..b"}, "'text_encoding'"),
    ({"framing": {"text_encoding": "utf-16"}}, "'text_encoding'"),
    ({"framing": {"text_encoding": "rot13"}}, "'text_encoding'"),
    ({"framing": {"text_encoding": "latin-1"}, "text": "\u65e5\u672c"}, "'text'"),
    ({"headers": [["Content-Length", "3"]]}, "Content-Length"),
    ({"headers": [["transfer-encoding", "gzip"]]}, "transfer-encoding"),
    ({"fault": {"kind": "random-bytes", "size": 268435456}}, "fault size"),
    ({"fault": {"kind": "random-bytes", "size": 268435455}}, "fault size"),
]


@pytest.mark.parametrize(("script", "names"), AT_LOAD, ids=[json.dumps(s) for s, _ in AT_LOAD])
async def test_a_script_that_can_never_be_sent_is_refused_when_loaded(
    fleet: FakeFleet, script: dict[str, Any], names: str
) -> None:
    server = fleet["Aivvm"]
    reply = await post(server, "Aivvm", aivvm_body(), extra=[script_header(script)])
    assert names in error_of(reply, 400, "bad_script_header", "X-Tapedeck-Script")
    control = await exchange(
        server.port, build_request("/__tapedeck__/script", fs.json_body(script))
    )
    assert names in error_of(control, 400, "bad_script")
    assert server.state.scripts.default == ResponseScript()  # nothing was replaced


def test_random_bytes_up_to_one_mib() -> None:
    assert Fault.from_dict({"kind": "random-bytes", "size": MAX_FAULT_BYTES}).size == 2**20
    with pytest.raises(ValueError, match="fault size must be at most 1048576 bytes"):
        Fault("random-bytes", size=MAX_FAULT_BYTES + 1)


REPLY_TIME = [
    ({"chunking": {"kind": "offsets", "offsets": [5000]}}, "hi", "chunking.offsets", "5000"),
    ({"framing": {"text_encoding": "ascii"}}, "h\u00e9llo", "framing.text_encoding", "'\u00e9'"),
    ({"framing": {"text_encoding": "koi8-r"}}, "\U0001f642", "framing.text_encoding", "echoed"),
]


@pytest.mark.parametrize(("script", "content", "setting", "names"), REPLY_TIME)
async def test_a_script_that_does_not_fit_this_reply_is_a_journaled_400(
    fleet: FakeFleet, script: dict[str, Any], content: str, setting: str, names: str
) -> None:
    server = fleet["Aivvm"]
    body = aivvm_body([{"role": "user", "content": content}])
    reply = await post(server, "Aivvm", body, extra=[script_header(script)])
    assert names in error_of(reply, 400, "script_does_not_fit", setting)
    assert last_verdict(server).code == "script_does_not_fit"
    # Set as the default instead, it is taken, and every chat it cannot serve gets the same 400.
    control = await exchange(
        server.port, build_request("/__tapedeck__/script", fs.json_body(script))
    )
    assert control.status == 200
    for _ in range(2):
        again = await post(server, "Aivvm", body)
        assert names in error_of(again, 400, "script_does_not_fit", setting)
    server.state.reset()
    assert (await post(server, "Aivvm", body)).status == 200


PYTHON_SCRIPTS = [
    (ResponseScript(status=204), "status"),
    (ResponseScript(headers=(("X-A", "b\r\nX-Injected: 1"),)), "headers[0]"),
    (ResponseScript(framing=Framing(text_encoding="idna"), text="a..b"), "framing.text_encoding"),
    (ResponseScript(chunking=ChunkPlan.at([10_000])), "chunking.offsets"),
]


@pytest.mark.parametrize(("script", "setting"), PYTHON_SCRIPTS, ids=[s for _, s in PYTHON_SCRIPTS])
async def test_a_script_set_from_python_is_checked_when_its_reply_is_planned(
    fleet: FakeFleet, script: ResponseScript, setting: str
) -> None:
    server = fleet["CodeLinkAva"]
    server.state.scripts.push(script)
    reply = await post(server, "CodeLinkAva", codelink_body())
    error_of(reply, 400, "script_does_not_fit", setting)
    assert reply.problem == ""  # a whole JSON reply, nothing after it


# -- A6, A7: header injection, bodiless statuses, and a prepare that fails half-way ---------------

HEADER_SCRIPTS = [
    ({"headers": [["X-A", "b\r\nX-Injected: 1"]]}, "'\\r', a control character"),
    ({"headers": [["X-A", "b\nc"]]}, "'\\n', a control character"),
    ({"headers": [["X-A", "b\x00"]]}, "'\\x00', a control character"),
    # Not a line break, but aiohttp refuses to send it all the same (it cut the connection).
    ({"headers": [["X-A", "a\x01b"]]}, "'\\x01', a control character"),
    ({"headers": [["X-A", "a\x7fb"]]}, "'\\x7f', a control character"),
    ({"headers": [["X A", "b"]]}, "not a header name"),
    ({"headers": [["", "b"]]}, "not a header name"),
    ({"headers": [["X-A:", "b"]]}, "not a header name"),
    ({"status": 204}, "has no body"),
    ({"status": 304}, "has no body"),
    ({"status": 100}, "200..599"),
    ({"http_error": "server-error", "status": 204}, "has no body"),
]


@pytest.mark.parametrize(
    ("script", "names"), HEADER_SCRIPTS, ids=[json.dumps(s) for s, _ in HEADER_SCRIPTS]
)
async def test_scripted_headers_and_statuses_that_break_http_are_refused(
    fleet: FakeFleet, script: dict[str, Any], names: str
) -> None:
    server = fleet["CodeLinkAva"]
    reply = await post(server, "CodeLinkAva", codelink_body(), extra=[script_header(script)])
    assert names in error_of(reply, 400, "bad_script_header", "X-Tapedeck-Script")
    assert reply.header("X-Injected") is None
    control = await exchange(
        server.port, build_request("/__tapedeck__/script", fs.json_body(script))
    )
    assert names in error_of(control, 400, "bad_script")


async def test_a_prepare_that_fails_half_way_cuts_the_connection(
    fleet: FakeFleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A harness bug while the head is being written: nothing mis-framed may follow it."""

    async def half_prepared(
        request: web.BaseRequest, reply: PlannedReply
    ) -> tuple[web.StreamResponse, str]:
        response = web.StreamResponse(headers={"X-A": "b\r\nc"})
        response.enable_chunked_encoding()
        await response.prepare(request)  # switches the writer to chunked, then refuses X-A
        raise AssertionError("aiohttp took a header with CR LF")

    monkeypatch.setattr(fake_app, "send_reply", half_prepared)
    server = fleet["CodeLinkAva"]
    reply = await post(server, "CodeLinkAva", codelink_body())
    assert reply.raw == b""  # cut, rather than a Content-Length head over a chunked body
    with pytest.raises(FakeUpstreamError, match="Forbidden control character"):
        server.state.journal.raise_errors()
    server.state.reset()
    monkeypatch.undo()
    assert (await post(server, "CodeLinkAva", codelink_body())).status == 200


# -- B: connections that go quiet -----------------------------------------------------------------


@pytest.fixture
async def impatient() -> AsyncIterator[FakeServer]:
    state = FakeState(idle_timeout=0.3, request_timeout=0.3)
    async with build_server("CodeLinkAva", state=state) as server:
        yield server


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bytes:
    """Everything read until the server closes; fails if it has not closed within ``seconds``."""
    return await asyncio.wait_for(reader.read(), seconds)


@pytest.mark.parametrize("sent", [b"", b"POST /api/chat HTTP/1.1\r\nHost: x\r\n"])
async def test_a_connection_that_never_completes_a_request_head_is_closed(
    impatient: FakeServer, sent: bytes
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", impatient.port)
    writer.write(sent)
    started = time.monotonic()
    assert await _closed_within(reader, 5) == b""
    assert time.monotonic() - started < 3
    writer.close()


async def test_an_idle_keep_alive_connection_is_closed(impatient: FakeServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", impatient.port)
    raw = fs.json_body(codelink_body())
    request = build_request("/api/chat", raw, browser("CodeLinkAva"))
    writer.write(request.replace(b"Connection: close\r\n", b""))
    received = await _closed_within(reader, 5)
    assert received.startswith(b"HTTP/1.1 200 OK")
    assert received.endswith(b"0\r\n\r\n")  # the whole reply, then the close
    writer.close()


async def test_a_body_that_stops_arriving_gets_408_and_the_connection_closes(
    impatient: FakeServer,
) -> None:
    raw = fs.json_body(codelink_body())
    request = build_request("/api/chat", raw, browser("CodeLinkAva"))
    reply = await exchange(impatient.port, request[: -len(raw) // 2], deadline=5)
    assert "did not arrive within 0.3 s" in error_of(reply, 408, "request_timeout")
    assert reply.problem == ""  # the server closed the connection (EOF), no deadline ran out
    assert last_verdict(impatient).code == "request_timeout"


def test_the_default_timeouts_are_finite_and_short() -> None:
    state = FakeState()
    assert (state.idle_timeout, state.request_timeout) == (30.0, 30.0)
    with pytest.raises(ValueError, match="idle_timeout must be a positive number"):
        FakeState(idle_timeout=0)


# -- C: strict mode refuses what the originals never sent -----------------------------------------

STRICT_PLAINTEXTS = [
    ("utf-16", getgpt_plaintext(HI, UUID), "utf-16-le"),
    ("utf-32", getgpt_plaintext(HI, UUID), "utf-32"),
    ("bom", getgpt_plaintext(HI, UUID), "utf-8-sig"),
]


@pytest.mark.parametrize(("what", "inner", "encoding"), STRICT_PLAINTEXTS, ids=lambda x: str(x)[:8])
async def test_getgpt_plaintext_must_be_utf8_json_without_a_bom(
    fleet: FakeFleet, what: str, inner: dict[str, Any], encoding: str
) -> None:
    server = fleet["GetGpt"]
    data = json.dumps(inner).encode(encoding)
    reply = await post(server, "GetGpt", sealed(data))
    assert (reply.status, reply.body) == (400, BAD_SIGNATURE)


OPTION_CHANGES = [
    ({"temperature": "hot"}, "temperature is 'hot'"),
    ({"top_p": True}, "top_p is True"),
    ({"frequency_penalty": "0"}, "frequency_penalty is '0'"),
    ({"max_tokens": [1]}, "max_tokens is [1]"),
    ({"max_tokens": -1}, "max_tokens is -1"),
    ({"max_tokens": 0}, "max_tokens is 0"),
    ({"max_tokens": 4000.0}, "max_tokens is 4000.0"),
    ({"uuid": 5}, "uuid is 5"),
    ({"uuid": "hello"}, "uuid is 'hello'"),
    ({"uuid": UUID.upper()}, "uuid is '0E7C2B8A"),
]


@pytest.mark.parametrize(("changes", "names"), OPTION_CHANGES, ids=lambda x: str(x)[:20])
async def test_strict_getgpt_checks_the_plaintext_option_types(
    fleet: FakeFleet, changes: dict[str, Any], names: str
) -> None:
    server = fleet["GetGpt"]
    body = sealed(plaintext(**changes))
    assert names in error_of(await post(server, "GetGpt", body), 400, "not_like_original")
    server.state.strictness = "lenient"
    assert (await post(server, "GetGpt", body)).status == 201


async def test_strict_getgpt_takes_float_options(fleet: FakeFleet) -> None:
    body = sealed(plaintext(temperature=0.7, top_p=0.9, frequency_penalty=-0.5))
    assert (await post(fleet["GetGpt"], "GetGpt", body)).status == 201


async def test_strict_getgpt_takes_null_options(fleet: FakeFleet) -> None:
    """A caller's temperature=None went out as null with the original, meaning the default."""
    body = sealed(plaintext(temperature=None, max_tokens=None, frequency_penalty=None))
    assert (await post(fleet["GetGpt"], "GetGpt", body)).status == 201


async def test_strict_getgpt_refuses_fields_beside_the_signature(fleet: FakeFleet) -> None:
    server = fleet["GetGpt"]
    body = sealed(plaintext(), extra=1)
    message = error_of(await post(server, "GetGpt", body), 400, "not_like_original")
    assert "expected only 'signature'" in message
    server.state.strictness = "lenient"
    assert (await post(server, "GetGpt", body)).status == 201


@pytest.mark.parametrize("provider", ["Aivvm", "GetGpt", "CodeLinkAva"])
async def test_strict_refuses_a_role_the_originals_never_sent(
    fleet: FakeFleet, provider: str
) -> None:
    server = fleet[provider]
    body = body_for(provider, [*HI, {"role": "wizard", "content": "abracadabra"}])
    message = error_of(
        await post(server, provider, body), 400, "not_like_original", "messages[1].role"
    )
    assert "'wizard'" in message
    server.state.strictness = "lenient"
    assert (await post(server, provider, body)).status == fs.SUCCESS_STATUS[provider]


@pytest.mark.parametrize("provider", ["Aivvm", "GetGpt", "CodeLinkAva"])
async def test_strict_takes_every_chat_role_of_the_time(fleet: FakeFleet, provider: str) -> None:
    """The originals passed a caller's messages through: any role OpenAI's API took in 2023."""
    roles = ("system", "user", "assistant", "function")
    body = body_for(provider, [*HI, *({"role": role, "content": "x"} for role in roles)])
    assert (await post(fleet[provider], provider, body)).status == fs.SUCCESS_STATUS[provider]


@pytest.mark.parametrize("provider", ["Aivvm", "AI365VIP"])
async def test_strict_refuses_fields_the_original_model_object_did_not_have(
    fleet: FakeFleet, provider: str
) -> None:
    server = fleet[provider]
    model = {**body_for(provider)["model"], "extra": 1}
    message = error_of(
        await post(server, provider, body_for(provider, model=model)), 400, "not_like_original"
    )
    assert "'extra'" in message


async def test_aivvm_models_checks_the_browser_headers_in_strict_mode(fleet: FakeFleet) -> None:
    server = fleet["Aivvm"]
    request = build_request("/api/models", b'{"key": ""}', (fs.JSON_CT,))
    reply = await exchange(server.port, request)
    assert "missing header 'sec-gpc'" in error_of(reply, 400, "not_like_original")
    assert last_verdict(server).code == "not_like_original"
    server.state.strictness = "lenient"
    assert (await exchange(server.port, request)).status == 200


# -- D: requests aiohttp cannot parse -------------------------------------------------------------

UNPARSEABLE = [
    b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
    b"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
    b"X-Long: " + b"a" * 9000 + b"\r\nContent-Length: 2\r\n\r\n{}",
    b"X-A: a\x00b\r\nContent-Length: 2\r\n\r\n{}",
]


@pytest.mark.parametrize("rest", UNPARSEABLE, ids=["chunk-size", "two-types", "long", "nul"])
async def test_a_request_aiohttp_cannot_parse_is_one_warning_line(
    fleet: FakeFleet, caplog: pytest.LogCaptureFixture, rest: bytes
) -> None:
    caplog.set_level(logging.INFO)
    head = b"POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    reply = await exchange(fleet["CodeLinkAva"].port, head + rest)
    assert reply.status == 400  # aiohttp's own answer, text/plain: no public hook changes it
    records = [r for r in caplog.records if r.name.startswith("aiohttp.server")]
    assert [(r.levelname, r.exc_info) for r in records] == [("WARNING", None)]
    assert "could not parse" in records[0].getMessage()
    assert "\n" not in records[0].getMessage()


def test_the_parse_error_filter_leaves_other_records_alone() -> None:
    record = logging.LogRecord("aiohttp.server.tapedeck", logging.ERROR, "", 0, "boom", (), None)
    try:
        raise RuntimeError("a real bug")
    except RuntimeError as error:
        record.exc_info = (RuntimeError, error, error.__traceback__)
    assert fake_app.HTTP_PARSE_LOG.filter(record)
    assert (record.levelname, record.getMessage()) == ("ERROR", "boom")
    assert record.exc_info is not None
