"""The generic fake-upstream app over real loopback sockets, driven by a dummy codec.

The main oracle is a raw-socket client (tests/_rawclient.py) that parses chunked framing itself,
so chunk boundaries, missing terminators, resets and framing errors are seen exactly as sent.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
import re
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, NamedTuple

import aiohttp
import pytest
import requests
from aiohttp import web

from fake_upstreams.app import FakeState, make_app
from fake_upstreams.chunking import ChunkPlan, frame_boundaries
from fake_upstreams.faults import Fault
from fake_upstreams.journal import Verdict
from fake_upstreams.script import ResponseScript
from fake_upstreams.server import FakeFleet, FakeServer
from providers.errors import FakeUpstreamError
from providers.wire.common import ChatRequest, Framing, ReceivedRequest
from tests._dummy_codec import CODEC, DummyCodec
from tests._rawclient import RawResponse, build_request, exchange
from tests.aiohttp_chunks import aiohttp_chunks
from tests.transport_writes import record_writes

GOOD_HEADERS = (("Content-Type", "application/json"), ("X-Dummy", "yes"))
BODY = json.dumps({"model": "dummy-1", "messages": [{"role": "user", "content": "héllo wörld"}]})
FRAMES = [
    b"data: You \n\n",
    b"data: said: \n\n",
    "data: héllo \n\n".encode(),
    "data: wörld\n\n".encode(),
    b"data: [DONE]\n\n",
]
EXPECTED = b"".join(FRAMES)
MAX_BODY = 4096


@pytest.fixture
async def fake() -> AsyncIterator[FakeServer]:
    state = FakeState(max_body_size=MAX_BODY)
    async with FakeServer(make_app(CODEC, state), access_log=None) as server:
        yield server


async def chat(
    server: FakeServer,
    *,
    headers: tuple[tuple[str, str], ...] = GOOD_HEADERS,
    body: bytes = BODY.encode(),
    deadline: float = 5.0,
    **kwargs: Any,
) -> RawResponse:
    request = build_request("/api/chat", body, headers, **kwargs)
    return await exchange(server.port, request, deadline=deadline)


async def assert_still_serving(server: FakeServer) -> None:
    server.state.scripts.push(ResponseScript())
    reply = await chat(server)
    assert (reply.status, reply.complete, reply.body) == (200, True, EXPECTED)


def error_of(reply: RawResponse) -> dict[str, Any]:
    assert reply.header("Content-Type") == "application/json; charset=utf-8"
    data = json.loads(reply.body)
    assert set(data) == {"error"}
    assert data["error"]["message"]
    error: dict[str, Any] = data["error"]
    return error


# --- chunk plans and delays ---------------------------------------------------------------------

PLANS = [
    ChunkPlan.whole(),
    ChunkPlan.frames(),
    ChunkPlan.every(3),
    ChunkPlan.every(1),
    ChunkPlan("utf8"),
    ChunkPlan("utf8", with_frames=True),
    ChunkPlan("data"),
    ChunkPlan("crlf"),
    ChunkPlan("done"),
    ChunkPlan.random(7, 5),
    ChunkPlan.at([1, 2, 30]),
]


@pytest.mark.parametrize("plan", PLANS, ids=lambda plan: json.dumps(plan.to_dict()))
async def test_each_chunk_plan_arrives_with_exactly_its_boundaries(
    fake: FakeServer, plan: ChunkPlan
) -> None:
    crlf = plan.kind == "crlf"
    frames = [f.replace(b"\n", b"\r\n") for f in FRAMES] if crlf else FRAMES
    fake.state.scripts.push(ResponseScript(chunking=plan, framing=Framing(crlf=crlf)))
    reply = await chat(fake)
    assert (reply.status, reply.complete, reply.problem) == (200, True, "")
    assert reply.header("Transfer-Encoding") == "chunked"
    assert reply.header("Content-Type") == "text/event-stream"
    assert reply.body == b"".join(frames)
    assert reply.chunks == plan.split(b"".join(frames), frame_boundaries(frames))


async def test_literal_boundaries_at_the_socket(fake: FakeServer) -> None:
    fake.state.scripts.push(ResponseScript(raw=(b"ab\xc3\xa9cd",), chunking=ChunkPlan("utf8")))
    assert (await chat(fake)).chunks == [b"ab\xc3", b"\xa9cd"]
    fake.state.scripts.push(ResponseScript(raw=(b"one", b"two", b"three")))
    assert (await chat(fake)).chunks == [b"one", b"two", b"three"]


async def test_a_reply_without_pauses_is_one_send(
    fake: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Nothing may happen between the chunks, so head, chunks and terminating chunk leave
    # together; the chunked framing still carries every boundary to the client.
    writes = record_writes(monkeypatch)
    fake.state.scripts.push(ResponseScript(raw=(b"one", b"two", b"three")))
    reply = await chat(fake)
    assert reply.chunks == [b"one", b"two", b"three"]
    [sent] = writes.replies()
    assert len(sent) == 1
    assert sent[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert sent[0].endswith(b"\r\n\r\n3\r\none\r\n3\r\ntwo\r\n5\r\nthree\r\n0\r\n\r\n")
    assert sent[0] == reply.raw


async def test_a_paced_reply_sends_at_each_pause(
    fake: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The head leaves with the first chunk, the end with the last, each pause splits a send.
    writes = record_writes(monkeypatch)
    fake.state.scripts.push(
        ResponseScript(raw=(b"one", b"two", b"three", b"four"), chunk_delays=(0.0, 0.01, 0.0))
    )
    reply = await chat(fake)
    assert reply.chunks == [b"one", b"two", b"three", b"four"]
    [sent] = writes.replies()
    assert sent[0].endswith(b"\r\n\r\n3\r\none\r\n3\r\ntwo\r\n")
    assert sent[1:] == [b"5\r\nthree\r\n4\r\nfour\r\n0\r\n\r\n"]
    assert b"".join(sent) == reply.raw


async def test_a_long_reply_leaves_in_sends_of_about_64_kib(
    fake: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Bursts stop at aiohttp's drain threshold, so a slow reader still holds the reply back.
    writes = record_writes(monkeypatch)
    pieces = tuple(bytes([65 + i % 26]) * 1000 for i in range(300))
    fake.state.scripts.push(ResponseScript(raw=pieces))
    reply = await chat(fake)
    assert reply.chunks == list(pieces)
    [sent] = writes.replies()
    framed = len(b"3e8\r\n\r\n") + 1000
    per_send = 66  # the first count of framed chunks to reach 64 KiB: 65 * 1007 < 65536
    assert (per_send - 1) * framed < 64 * 1024 <= per_send * framed
    assert len(sent) == 5  # 300 = 4 x 66 + 36
    assert [len(data) for data in sent[1:-1]] == [per_send * framed] * 3
    assert sent[-1].endswith(b"0\r\n\r\n")
    assert len(sent[-1]) == 36 * framed + 5
    assert b"".join(sent) == reply.raw


async def test_self_framed_replies_are_byte_for_byte_what_aiohttp_frames(
    fake: FakeServer,
) -> None:
    # The same head and body a plain aiohttp handler writing the same chunks sends (Date aside).
    pieces = (b"one", "twö".encode(), b"x" * 300)
    headers = {"Content-Type": "text/event-stream", "X-Extra": "1"}

    async def bare(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(status=201, headers=headers)
        response.enable_chunked_encoding()
        await response.prepare(request)
        for piece in pieces:
            await response.write(piece)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/api/chat", bare)
    fake.state.scripts.push(ResponseScript(raw=pieces, status=201, headers=tuple(headers.items())))
    ours = await chat(fake)
    async with FakeServer(app, access_log=None) as plain:
        theirs = await chat(plain)
    date = re.compile(rb"\r\nDate: [^\r]*")
    assert date.sub(b"", ours.raw) == date.sub(b"", theirs.raw)
    assert ours.chunks == theirs.chunks == list(pieces)


async def test_a_fault_sends_the_head_on_its_own(
    fake: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fault may stop right after the head (here: stall, then close), so it must be out first.
    writes = record_writes(monkeypatch)
    fake.state.scripts.push(ResponseScript(fault=Fault("stall", seconds=0.05)))
    reply = await chat(fake)
    assert (reply.status, reply.chunks, reply.complete) == (200, [], False)
    [sent] = writes.replies()
    assert len(sent) == 1
    assert sent[0].endswith(b"\r\n\r\n")


async def test_boundaries_reach_an_aiohttp_client(fake: FakeServer) -> None:
    fake.state.scripts.push(ResponseScript(chunking=ChunkPlan.every(4)))
    _, chunks = await aiohttp_chunks(fake.url + "/api/chat", BODY, dict(GOOD_HEADERS))
    assert chunks == [EXPECTED[i : i + 4] for i in range(0, len(EXPECTED), 4)]


async def test_delays_are_respected(fake: FakeServer) -> None:
    fake.state.scripts.push(
        ResponseScript(first_byte_delay=0.2, chunk_delay=0.05, chunk_delays=(0.15,))
    )
    reply = await chat(fake)
    assert reply.complete
    assert reply.head_time is not None
    assert 0.18 <= reply.head_time < 2
    gaps = [b - a for a, b in zip(reply.chunk_times, reply.chunk_times[1:], strict=False)]
    assert len(gaps) == 4
    assert gaps[0] >= 0.13
    assert all(gap >= 0.04 for gap in gaps[1:])
    fake.state.scripts.push(ResponseScript())
    assert (await chat(fake)).elapsed < reply.elapsed / 2


# --- faults -------------------------------------------------------------------------------------


def check_reset_before_headers(reply: RawResponse) -> None:
    assert (reply.problem, reply.raw) == ("reset", b"")


def check_reset_after(reply: RawResponse) -> None:
    assert reply.problem == "reset"
    assert not reply.complete
    assert EXPECTED.startswith(reply.body)
    assert len(reply.body) <= 7


def check_empty(reply: RawResponse) -> None:
    assert (reply.status, reply.complete, reply.chunks, reply.problem) == (200, True, [], "")


def check_random_bytes(reply: RawResponse) -> None:
    assert reply.raw == random.Random(5).randbytes(32)
    assert reply.status == 0


def check_malformed(reply: RawResponse) -> None:
    assert (reply.status, reply.body, reply.complete) == (200, EXPECTED[:7], False)
    assert reply.problem.startswith("bad chunk size line b'zz'")


def check_truncated(reply: RawResponse) -> None:
    assert (reply.status, reply.body, reply.complete, reply.problem) == (
        200,
        EXPECTED[:7],
        False,
        "",
    )


def check_truncated_at_zero(reply: RawResponse) -> None:
    assert (reply.status, reply.chunks, reply.complete, reply.problem) == (200, [], False, "")


def check_stall(reply: RawResponse) -> None:
    check_truncated(reply)
    assert reply.elapsed - reply.chunk_times[-1] >= 0.25


def check_slow_drip(reply: RawResponse) -> None:
    assert (reply.body, reply.complete) == (EXPECTED, True)
    assert all(len(chunk) == 1 for chunk in reply.chunks)
    assert reply.elapsed >= len(EXPECTED) * 0.002 * 0.5


def check_slow_close(reply: RawResponse) -> None:
    assert (reply.body, reply.complete) == (EXPECTED, True)
    assert reply.elapsed - reply.chunk_times[-1] >= 0.2


FAULTS: list[tuple[Fault, Callable[[RawResponse], None]]] = [
    (Fault("reset-before-headers"), check_reset_before_headers),
    (Fault("reset-after", after_bytes=7), check_reset_after),
    (Fault("empty"), check_empty),
    (Fault("random-bytes", size=32, seed=5), check_random_bytes),
    (Fault("malformed-chunked", after_bytes=7), check_malformed),
    (Fault("truncate", after_bytes=7), check_truncated),
    (Fault("truncate"), check_truncated_at_zero),
    (Fault("stall", after_bytes=7, seconds=0.3), check_stall),
    (Fault("slow-drip", interval=0.002), check_slow_drip),
    (Fault("slow-close", seconds=0.3), check_slow_close),
]


@pytest.mark.parametrize(("fault", "check"), FAULTS, ids=lambda f: getattr(f, "kind", ""))
async def test_each_fault_at_the_socket(
    fake: FakeServer, fault: Fault, check: Callable[[RawResponse], None]
) -> None:
    fake.state.scripts.push(ResponseScript(fault=fault))
    reply = await chat(fake, deadline=3.0)
    check(reply)
    assert reply.elapsed < 2.0
    assert fake.state.journal.last.outcome == f"fault:{fault.kind}"
    await assert_still_serving(fake)


CLIENT_OUTCOMES: list[
    tuple[Fault, type[BaseException] | tuple[type[BaseException], ...] | None]
] = [
    (Fault("reset-before-headers"), aiohttp.ClientConnectionError),
    (Fault("reset-after", after_bytes=7), (aiohttp.ClientPayloadError, aiohttp.ClientOSError)),
    (Fault("empty"), None),
    (Fault("random-bytes"), aiohttp.ClientResponseError),
    (
        Fault("malformed-chunked", after_bytes=7),
        (aiohttp.ClientPayloadError, aiohttp.ClientResponseError),
    ),
    (Fault("truncate", after_bytes=7), aiohttp.ClientPayloadError),
    (Fault("stall", seconds=5), aiohttp.ServerTimeoutError),
    (Fault("slow-drip", interval=0.001), None),
    (Fault("slow-close", seconds=0.1), None),
]


@pytest.mark.parametrize(
    ("fault", "expected"), CLIENT_OUTCOMES, ids=lambda f: getattr(f, "kind", "")
)
async def test_each_fault_at_an_aiohttp_client(
    fake: FakeServer,
    fault: Fault,
    expected: type[BaseException] | tuple[type[BaseException], ...] | None,
) -> None:
    fake.state.scripts.push(ResponseScript(fault=fault))
    timeout = aiohttp.ClientTimeout(sock_read=0.3)

    async def read() -> bytes:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(fake.url + "/api/chat", data=BODY, headers=dict(GOOD_HEADERS)) as response,
        ):
            return await response.read()

    async with asyncio.timeout(3):
        if expected is None:
            assert await read() in (b"", EXPECTED)
        else:
            with pytest.raises(expected):
                await read()
    await assert_still_serving(fake)


async def eventually(predicate: Callable[[], bool], deadline: float = 1.0) -> bool:
    """Poll ``predicate`` every 10 ms for at most ``deadline`` seconds."""
    for _ in range(int(deadline / 0.01)):
        if predicate():
            return True
        await asyncio.sleep(0.01)
    return predicate()


async def wait_for_outcome(server: FakeServer, index: int, deadline: float = 1.0) -> str:
    entries = server.state.journal
    await eventually(lambda: entries.entries[index].outcome != "pending", deadline)
    return entries.entries[index].outcome


@pytest.mark.parametrize(
    "script",
    [ResponseScript(chunk_delay=0.3), ResponseScript(fault=Fault("stall", seconds=60))],
    ids=["between-chunks", "in-a-stall"],
)
async def test_client_disconnect_ends_the_handler_quietly(
    fake: FakeServer, script: ResponseScript, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.state.scripts.push(script)
    request = build_request("/api/chat", BODY.encode(), GOOD_HEADERS)
    partial = await exchange(fake.port, request, read_limit=1)
    assert partial.raw.startswith(b"HTTP/1.1 200")
    assert await wait_for_outcome(fake, 0) == "client-disconnected"
    await assert_still_serving(fake)
    noisy = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert noisy == []
    fake.state.journal.raise_errors()


# --- hostile input ------------------------------------------------------------------------------

JSON_HEADERS = (("Content-Type", "application/json"),)
Headers = tuple[tuple[str, str], ...]


class Hostile(NamedTuple):
    status: int
    code: str
    body: bytes = BODY.encode()
    headers: Headers = GOOD_HEADERS
    method: str = "POST"
    path: str = "/api/chat"


def with_script_header(value: str) -> Headers:
    return (*GOOD_HEADERS, ("X-Tapedeck-Script", value))


UNKNOWN_MODEL = b'{"model": "gpt-9", "messages": [{"role": "user", "content": "x"}]}'
HOSTILE = [
    Hostile(405, "method_not_allowed", b"", method="GET"),
    Hostile(405, "method_not_allowed", method="PUT"),
    Hostile(404, "not_found", path="/api/chat/"),
    Hostile(404, "not_found", b"", (), method="GET", path="/"),
    Hostile(415, "unsupported_media_type", headers=(("X-Dummy", "yes"),)),
    Hostile(415, "unsupported_media_type", headers=(("Content-Type", "text/plain"),)),
    Hostile(413, "body_too_large", b"x" * (MAX_BODY + 1)),
    Hostile(400, "body_not_json", b""),
    Hostile(400, "body_not_json", b"{not json"),
    Hostile(400, "body_not_utf8", b'{"a": "\xff"}'),
    Hostile(400, "body_not_object", b"[1, 2]"),
    Hostile(400, "bad_messages", b'{"model": "dummy-1"}'),
    Hostile(400, "unknown_model", UNKNOWN_MODEL),
    Hostile(403, "not_a_browser", headers=JSON_HEADERS),
    Hostile(400, "bad_script_header", headers=with_script_header("{oops")),
    Hostile(400, "bad_script_header", headers=with_script_header('{"txt": 1}')),
    Hostile(400, "bad_script_header", headers=with_script_header("[" * 5000)),
    Hostile(
        400,
        "bad_script_header",
        headers=(*with_script_header('{"raw": ["1"]}'), ("X-Tapedeck-Script", '{"raw": ["2"]}')),
    ),
]


@pytest.mark.parametrize("case", HOSTILE, ids=[f"{i}-{c.code}" for i, c in enumerate(HOSTILE)])
async def test_hostile_input_gets_a_json_4xx(fake: FakeServer, case: Hostile) -> None:
    request = build_request(case.path, case.body, case.headers, method=case.method)
    reply = await exchange(fake.port, request)
    assert reply.status == case.status
    assert error_of(reply)["code"] == case.code
    if case.status == 405:
        assert reply.header("Allow") == "POST"
    entry = fake.state.journal.last
    assert entry.verdict == Verdict(False, case.status, case.code, error_of(reply)["message"])
    assert entry.outcome == "rejected"
    assert fake.state.scripts.calls == 0
    await assert_still_serving(fake)
    fake.state.journal.raise_errors()


async def test_error_messages_name_the_problem(fake: FakeServer) -> None:
    reply = await chat(fake, headers=(("Content-Type", "text/plain"),))
    assert error_of(reply) == {
        "code": "unsupported_media_type",
        "message": "Content-Type must be application/json, got 'text/plain'",
        "field": "content-type",
    }
    reply = await chat(fake, headers=(*GOOD_HEADERS, ("X-Tapedeck-Script", '{"txt": 1}')))
    assert "unknown script key 'txt'" in error_of(reply)["message"]
    twice = (*with_script_header('{"raw": ["1"]}'), ("x-tapedeck-script", '{"raw": ["2"]}'))
    assert error_of(await chat(fake, headers=twice))["message"] == (
        "X-Tapedeck-Script header is not a valid script: it was sent 2 times; send one script"
    )
    reply = await exchange(fake.port, build_request("/nope", b"", method="GET"))
    assert error_of(reply)["message"] == "no endpoint at /nope; Dummy serves POST /api/chat"


class ControlError(NamedTuple):
    method: str
    path: str
    status: int
    code: str
    allow: str | None = None
    body: bytes = b""


CONTROL_ERRORS = [
    ControlError("POST", "/__tapedeck__/script", 413, "body_too_large", body=b"x" * (MAX_BODY + 1)),
    ControlError("GET", "/__tapedeck__/reset", 405, "method_not_allowed", "POST"),
    ControlError("DELETE", "/__tapedeck__/script", 405, "method_not_allowed", "GET,HEAD,POST"),
    ControlError("PUT", "/__tapedeck__/journal", 405, "method_not_allowed", "GET,HEAD"),
    ControlError("GET", "/__tapedeck__/nope", 404, "not_found"),
]


@pytest.mark.parametrize(
    "case", CONTROL_ERRORS, ids=[f"{c.method} {c.path}" for c in CONTROL_ERRORS]
)
async def test_control_endpoint_errors_are_json_and_not_journaled(
    fake: FakeServer, case: ControlError
) -> None:
    request = build_request(case.path, case.body, JSON_HEADERS, method=case.method)
    reply = await exchange(fake.port, request)
    got = (reply.status, error_of(reply)["code"], reply.header("Allow"))
    assert got == (case.status, case.code, case.allow)
    assert fake.state.journal.entries == []  # control traffic is not the upstream's traffic
    await assert_still_serving(fake)


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "Application/JSON"])
async def test_json_content_type_parameters_and_case_are_accepted(
    fake: FakeServer, content_type: str
) -> None:
    reply = await chat(fake, headers=(("Content-Type", content_type), ("X-Dummy", "yes")))
    assert (reply.status, reply.body) == (200, EXPECTED)


async def test_lenient_mode_skips_the_browser_headers(fake: FakeServer) -> None:
    fake.state.strictness = "lenient"
    reply = await chat(fake, headers=JSON_HEADERS)
    assert (reply.status, reply.body) == (200, EXPECTED)


async def test_http_1_0_gets_an_unchunked_body_ended_by_close(fake: FakeServer) -> None:
    reply = await chat(fake, version="1.0")
    assert reply.header("Transfer-Encoding") is None
    assert (reply.status, reply.body, reply.problem) == (200, EXPECTED, "")


# --- journal, handler errors --------------------------------------------------------------------


async def test_journal_records_the_exact_request(fake: FakeServer) -> None:
    script = ResponseScript(text="ok")
    fake.state.scripts.push(script)
    headers = (("x-dummy", "yes"), ("CONTENT-type", "application/json"), ("X-Odd", "  v "))
    before = time.time()
    request = build_request("/api/chat?trace=1", BODY.encode(), headers)
    await exchange(fake.port, request)
    entry = fake.state.journal.last
    assert (entry.index, entry.method, entry.path) == (0, "POST", "/api/chat?trace=1")
    assert entry.headers == (
        ("Host", "127.0.0.1"),
        ("x-dummy", "yes"),
        ("CONTENT-type", "application/json"),
        ("X-Odd", "v"),
        ("Content-Length", str(len(BODY.encode()))),
        ("Connection", "close"),
    )
    assert entry.header("content-type") == "application/json"
    assert entry.body == BODY.encode()
    assert entry.chat == ChatRequest("dummy-1", ({"role": "user", "content": "héllo wörld"},))
    assert (entry.verdict, entry.script, entry.outcome) == (Verdict(True, 200), script, "completed")
    assert before <= entry.timestamp <= time.time()


async def test_journal_over_http(fake: FakeServer) -> None:
    await chat(fake)
    await chat(fake, body=b"\xff\xfe")
    reply = await exchange(fake.port, build_request("/__tapedeck__/journal", b"", method="GET"))
    data = json.loads(reply.body)
    assert data["errors"] == []
    first, second = data["entries"]
    assert base64.b64decode(first["body"]["base64"]) == BODY.encode()
    assert first["body"]["text"] == BODY
    assert first["chat"]["messages"] == [{"role": "user", "content": "héllo wörld"}]
    assert first["verdict"] == {"ok": True, "status": 200, "code": "", "message": ""}
    assert first["script"] == {}
    assert second["body"] == {"base64": "//4=", "text": None}
    assert second["verdict"]["code"] == "body_not_utf8"
    assert len(data["entries"]) == 2  # control requests are not journaled


class BrokenCodec(DummyCodec):
    def parse_request(self, request: ReceivedRequest, *, strict: bool = True) -> ChatRequest:
        raise RuntimeError("codec bug")


async def test_handler_errors_are_500_and_raised_again_in_the_test() -> None:
    async with FakeServer(make_app(BrokenCodec()), access_log=None) as server:
        reply = await chat(server)
        assert reply.status == 500
        assert error_of(reply) == {
            "code": "fake_handler_error",
            "message": "the fake's handler failed (a Tapedeck bug): RuntimeError: codec bug",
        }
        assert server.state.journal.last.outcome == "handler-error"
        with pytest.raises(FakeUpstreamError, match="request #0 POST /api/chat") as caught:
            server.state.journal.raise_errors()
        assert isinstance(caught.value.__cause__, RuntimeError)
        server.state.reset()
        server.state.journal.raise_errors()


async def test_a_script_that_does_not_fit_the_reply_is_a_400_naming_the_setting(
    fake: FakeServer,
) -> None:
    # The test chose the script: answered as a 4xx naming the setting, not a harness bug's 500.
    fake.state.scripts.push(ResponseScript(chunking=ChunkPlan.at([10_000])))
    reply = await chat(fake)
    assert reply.status == 400
    error = error_of(reply)
    assert (error["code"], error["field"]) == ("script_does_not_fit", "chunking.offsets")
    assert "not inside the body" in error["message"]
    fake.state.journal.raise_errors()


# --- scripts: sequences, header, control endpoint -----------------------------------------------


async def test_script_sequence_first_call_rate_limited_then_ok(fake: FakeServer) -> None:
    fake.state.scripts.replace([ResponseScript(http_error="rate-limit", retry_after=3)])
    first, second = await chat(fake), await chat(fake)
    assert (first.status, first.header("Retry-After")) == (429, "3")
    assert error_of(first)["code"] == "rate_limited"
    assert (second.status, second.body) == (200, EXPECTED)
    fake.state.scripts.push(ResponseScript(http_error="server-error"))
    error = await chat(fake)
    assert (error.status, error.body, error.header("Content-Length")) == (500, b"Error", "5")


async def test_script_header_scripts_one_reply_without_using_the_queue() -> None:
    class PickyCodec(DummyCodec):
        def parse_request(self, request: ReceivedRequest, *, strict: bool = True) -> ChatRequest:
            assert request.header("X-Tapedeck-Script") is None
            return super().parse_request(request, strict=strict)

    async with FakeServer(make_app(PickyCodec()), access_log=None) as server:
        server.state.scripts.push(ResponseScript(text="queued"))
        header = ("X-Tapedeck-Script", json.dumps({"raw": ["over", "ride"]}))
        overridden = await chat(server, headers=(*GOOD_HEADERS, header))
        assert overridden.chunks == [b"over", b"ride"]
        assert server.state.journal.last.script == ResponseScript(raw=(b"over", b"ride"))
        assert (await chat(server)).body == b"data: queued\n\ndata: [DONE]\n\n"
        server.state.journal.raise_errors()


async def control(server: FakeServer, method: str, name: str, data: object = None) -> RawResponse:
    body = b"" if data is None else json.dumps(data).encode()
    return await exchange(server.port, build_request(f"/__tapedeck__/{name}", body, method=method))


async def test_control_endpoint(fake: FakeServer) -> None:
    queue = {"queue": [{"http_error": "cloudflare"}], "default": {"text": "d"}}
    assert (await control(fake, "POST", "script", queue)).status == 200
    shown = json.loads((await control(fake, "GET", "script")).body)
    assert shown == {**queue, "calls": 0}
    denied = await chat(fake)
    assert denied.status == 403
    assert b"Access denied | api.dummy.example used Cloudflare" in denied.body
    assert (await chat(fake)).body == b"data: d\n\ndata: [DONE]\n\n"
    assert (await control(fake, "POST", "script", {"text": "x"})).status == 200
    assert (await chat(fake)).body == b"data: x\n\ndata: [DONE]\n\n"
    bad = await control(fake, "POST", "script", {"queue": [{"stauts": 200}]})
    assert (bad.status, error_of(bad)["code"]) == (400, "bad_script")
    assert "unknown script key 'stauts'" in error_of(bad)["message"]
    assert (await control(fake, "POST", "script", None)).status == 400
    assert (await control(fake, "GET", "reset")).status == 405
    assert len(fake.state.journal) == 3
    assert (await control(fake, "POST", "reset")).status == 200
    assert len(fake.state.journal) == 0
    assert fake.state.scripts.default == ResponseScript()


# --- servers ------------------------------------------------------------------------------------


def _refused(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_sync_server_in_a_thread_serves_chunks_to_requests() -> None:
    before = set(threading.enumerate())
    with FakeServer(make_app(CODEC), access_log=None) as server:
        server.state.scripts.push(ResponseScript(chunking=ChunkPlan.every(5)))
        response = requests.post(
            server.url + "/api/chat", data=BODY, headers=dict(GOOD_HEADERS), stream=True, timeout=5
        )
        chunks = list(response.raw.read_chunked())
        port = server.port
        assert chunks == [EXPECTED[i : i + 5] for i in range(0, len(EXPECTED), 5)]
    assert _refused(port)
    assert set(threading.enumerate()) == before
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.url


async def test_fleet_async_and_sync() -> None:
    def fleet() -> FakeFleet:
        return FakeFleet({n: FakeServer(make_app(CODEC), access_log=None) for n in ("a", "b")})

    async with fleet() as running:
        assert len(set(running.urls.values())) == 2
        for server in running.values():
            await assert_still_serving(server)

    def use_sync() -> list[int]:
        with fleet() as running:
            statuses = [
                requests.post(
                    url + "/api/chat", data=BODY, headers=dict(GOOD_HEADERS), timeout=5
                ).status_code
                for url in running.urls.values()
            ]
        return statuses

    assert await asyncio.to_thread(use_sync) == [200, 200]


async def test_a_taken_port_fails_loudly_and_leaves_nothing_running(fake: FakeServer) -> None:
    with pytest.raises(OSError):  # noqa: PT011 - the errno differs by platform
        async with FakeServer(make_app(CODEC), port=fake.port):
            pass
    await assert_still_serving(fake)


async def test_stopping_cuts_a_running_reply_within_the_shutdown_timeout() -> None:
    server = FakeServer(make_app(CODEC), access_log=None, shutdown_timeout=0.2)
    await server.start()
    server.state.scripts.push(ResponseScript(fault=Fault("stall", seconds=60)))
    request = build_request("/api/chat", BODY.encode(), GOOD_HEADERS)
    client = asyncio.create_task(exchange(server.port, request, deadline=10))
    journal = server.state.journal
    assert await eventually(lambda: len(journal) > 0 and journal.last.verdict is not None)
    started = time.monotonic()
    await server.stop()
    reply = await client
    assert time.monotonic() - started < 2
    assert (reply.status, reply.complete) == (200, False)
    assert server.state.journal.last.outcome in ("client-disconnected", "cancelled")
