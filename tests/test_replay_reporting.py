"""What the replay server says about each request, and `tapedeck replay`'s summary: a miss is one
line with its reason, a reply cut short is never reported as played whole, and a request whose
recordings were all played already is not counted as matching nothing."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from cassettes import yamlio
from cassettes.model import (
    Cassette,
    Interaction,
    RecordedRequest,
    RecordedResponse,
    chunks_from_sizes,
)
from cassettes.replay import ReplayEvent, ReplayServer
from tests.cli_process import CliProcess

ORIGIN = "http://127.0.0.1:8101"
PIECES = (b"one ", b"two ", b"three ", b"four")
#: Two chunks at once, the rest long after: time enough to cut the reply between them.
OFFSETS_MS = (0.0, 1.0, 20_000.0, 20_001.0)
REQUEST_BODY = b'{"q": "slow"}'
REPLAY_LINE = re.compile(r"^replay (http://127\.0\.0\.1:(\d+))$")


def _cassette() -> Cassette:
    request = RecordedRequest(
        "POST", ORIGIN + "/api/chat", {"Content-Type": ["application/json"]}, REQUEST_BODY
    )
    response = RecordedResponse(
        200,
        "OK",
        {"Content-Type": ["text/plain"], "Transfer-Encoding": ["chunked"]},
        b"".join(PIECES),
        chunks_from_sizes([len(piece) for piece in PIECES], OFFSETS_MS),
    )
    return Cassette((Interaction(request, response),))


def _request_bytes() -> bytes:
    head = (
        "POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(REQUEST_BODY)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + REQUEST_BODY


def _wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("timed out")
        time.sleep(0.02)


def _read_until(sock: socket.socket, marker: bytes) -> bytes:
    """Bytes from ``sock`` up to and including ``marker`` (the second chunk here)."""
    sock.settimeout(10)
    received = b""
    while marker not in received:
        data = sock.recv(65536)
        assert data, f"closed before {marker!r}: {received!r}"
        received += data
    return received


# -- the request log -------------------------------------------------------------------------


def test_a_miss_is_described_in_one_line_with_its_reason() -> None:
    events: list[ReplayEvent] = []
    with ReplayServer(_cassette(), on_event=events.append) as server:
        assert requests.get(server.url + "/nowhere", timeout=10).status_code == 421
        server.take_misses()
    (event,) = events
    line = event.describe()
    assert "\n" not in line
    assert line.startswith("miss GET /nowhere -> 421: no interaction in the cassette matches")
    assert not line.endswith(":")
    assert f"#0 POST {ORIGIN}/api/chat" in line  # the closest recording ...
    assert "path: recorded '/api/chat', this request '/nowhere'" in line  # ... and how it differs
    assert "method: recorded 'POST', this request 'GET'" in line


def test_a_reply_the_client_hung_up_on_is_logged_as_cut() -> None:
    events: list[ReplayEvent] = []
    with ReplayServer(_cassette(), speed=1.0, on_event=events.append) as server:
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(_request_bytes())
            _read_until(sock, b"two ")
        _wait_for(lambda: bool(events))
        assert server.cut_plays == 1
    (event,) = events
    assert event.cut_after == 2
    assert "cut after 2 of 4 chunk(s) (8 of 18 B)" in event.describe()


async def test_a_reply_cut_by_stopping_the_server_is_logged_as_cut() -> None:
    events: list[ReplayEvent] = []
    server = ReplayServer(_cassette(), speed=1.0, on_event=events.append)
    await server.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(_request_bytes())
        received = b""
        while b"two " not in received:
            received += await asyncio.wait_for(reader.read(65536), 10)
    finally:
        await server.stop()  # the reply is still waiting for its third chunk
    writer.close()
    (event,) = events
    assert event.cut_after == 2
    assert server.cut_plays == 1
    assert "200, cut after 2 of 4 chunk(s)" in event.describe()


def test_a_whole_reply_is_not_cut() -> None:
    events: list[ReplayEvent] = []
    with ReplayServer(_cassette(), on_event=events.append) as server:
        reply = requests.post(server.url + "/api/chat", data=REQUEST_BODY, timeout=10)
        assert reply.content == b"".join(PIECES)
        _wait_for(lambda: bool(events))
        assert server.cut_plays == 0
    (event,) = events
    assert event.cut_after is None
    assert event.describe().startswith("#0 POST /api/chat -> 200, 4 chunk(s), 18 B, ")


def test_a_repeat_is_counted_apart_from_requests_that_match_nothing() -> None:
    with ReplayServer(_cassette()) as server:
        for _ in range(2):
            requests.post(server.url + "/api/chat", data=REQUEST_BODY, timeout=10)
        repeat = requests.post(server.url + "/api/chat", data=REQUEST_BODY, timeout=10)
        assert json.loads(repeat.content)["error"]["code"] == "interaction_already_played"
        requests.get(server.url + "/nowhere", timeout=10)
        assert (len(server.misses), server.repeats) == (3, 2)
        server.take_misses()
        assert server.repeats == 0  # forgotten with the misses they are part of


# -- `tapedeck replay` -------------------------------------------------------------------------


@pytest.fixture
def cassette_path(tmp_path: Path) -> Path:
    path = tmp_path / "slow.yaml"
    yamlio.save(_cassette(), path)
    return path


@pytest.fixture
def replays() -> Iterator[list[CliProcess]]:
    started: list[CliProcess] = []
    yield started
    for process in started:
        process.kill()


def _start(replays: list[CliProcess], *args: str) -> tuple[CliProcess, str, int]:
    process = CliProcess("replay", *args)
    replays.append(process)
    match = REPLAY_LINE.match(process.next_line())
    assert match
    return process, match[1], int(match[2])


def test_replay_cli_reports_a_reply_cut_by_sigterm(
    cassette_path: Path, replays: list[CliProcess]
) -> None:
    process, _, port = _start(replays, str(cassette_path), "--speed", "1")
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(_request_bytes())
        _read_until(sock, b"two ")
        err = process.send_and_wait(signal.SIGTERM)
    assert process.proc.returncode == 0, err
    assert "#0 POST /api/chat -> 200, cut after 2 of 4 chunk(s) (8 of 18 B)" in err
    assert "4 chunk(s), 18 B" not in err
    assert "played 1 request(s) from 1 of 1 interaction(s), 1 of them cut short" in err


def test_replay_cli_counts_a_repeat_as_already_played_not_as_matching_nothing(
    cassette_path: Path, replays: list[CliProcess]
) -> None:
    process, url, _ = _start(replays, str(cassette_path))
    assert requests.post(url + "/api/chat", data=REQUEST_BODY, timeout=30).status_code == 200
    assert requests.post(url + "/api/chat", data=REQUEST_BODY, timeout=10).status_code == 421
    err = process.send_and_wait(signal.SIGTERM)
    assert process.proc.returncode == 0, err
    summary = next(line for line in err.splitlines() if "stopped:" in line)
    assert "0 request(s) matched nothing" in summary
    assert "1 request(s) already played (use --allow-repeats)" in summary
    assert "cut short" not in summary
    miss = next(line for line in err.splitlines() if line.startswith("miss "))
    assert "already played" in miss
