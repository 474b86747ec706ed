"""Replay properties: any body cut any way comes back cut the same way, through both HTTP
clients; the speed factor scales the recorded timing; lookup cost does not grow with the
cassette. Timing assertions are ratios with generous bounds, never tight absolute numbers."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Hashable
from itertools import pairwise

import requests
from hypothesis import given
from hypothesis import strategies as st

from cassettes.index import InteractionIndex
from cassettes.matchers import BodyNormalisers, Matcher, json_body
from cassettes.model import (
    Cassette,
    Interaction,
    RecordedRequest,
    RecordedResponse,
    chunks_from_sizes,
)
from cassettes.replay import ReplayServer
from tests.aiohttp_chunks import aiohttp_chunks

ORIGIN = "http://127.0.0.1:8101"
CHUNKED = {"Content-Type": ["text/plain"], "Transfer-Encoding": ["chunked"]}


def ask(number: int) -> RecordedRequest:
    body = json.dumps({"messages": [{"role": "user", "content": f"question {number}"}]})
    return RecordedRequest(
        "POST", ORIGIN + "/api/chat", {"Content-Type": ["application/json"]}, body.encode()
    )


@st.composite
def chunked_responses(draw: st.DrawFn, *, max_size: int = 4000) -> RecordedResponse:
    """A body of random bytes cut at random places, with a random status."""
    body = draw(st.binary(max_size=max_size))
    cuts = draw(st.sets(st.integers(1, len(body) - 1), max_size=40)) if len(body) > 1 else set()
    edges = [0, *sorted(cuts), len(body)] if body else [0]
    sizes = [end - start for start, end in pairwise(edges)]
    status = draw(st.sampled_from([200, 201, 403, 429, 500]))
    return RecordedResponse(status, "", dict(CHUNKED), body, chunks_from_sizes(sizes))


@given(responses=st.lists(chunked_responses(), min_size=1, max_size=3))
def test_any_body_cut_any_way_comes_back_cut_the_same_way(
    responses: list[RecordedResponse],
) -> None:
    cassette = Cassette(tuple(Interaction(ask(n), r) for n, r in enumerate(responses)))
    with ReplayServer(cassette) as server, requests.Session() as session:
        url = server.url + "/api/chat"
        for number, response in reversed(list(enumerate(responses))):
            expected = list(response.chunk_bytes())
            body = ask(number).body or b""
            status, chunks = asyncio.run(aiohttp_chunks(url, body))
            assert (status, chunks) == (response.status, expected)
        server.replayer.index.reset()
        for number, response in enumerate(responses):
            reply = session.post(url, data=ask(number).body, stream=True, timeout=10)
            chunks = [c for c in reply.raw.read_chunked(decode_content=False) if c]
            assert (reply.status_code, chunks) == (response.status, list(response.chunk_bytes()))
        assert server.unplayed == []


def arrival_times(url: str, body: bytes) -> list[float]:
    """Seconds after sending the request at which each HTTP chunk was complete."""
    start = time.perf_counter()
    with requests.post(url, data=body, stream=True, timeout=10) as reply:
        return [time.perf_counter() - start for _ in reply.raw.read_chunked(decode_content=False)]


def test_the_speed_factor_scales_the_recorded_offsets() -> None:
    offsets = [0.0, 150.0, 300.0]
    response = RecordedResponse(
        200, "OK", dict(CHUNKED), b"abcdef", chunks_from_sizes([2, 2, 2], offsets)
    )
    cassette = Cassette((Interaction(ask(0), response),))
    timings = {}
    for speed in (0.0, 1.0, 4.0):
        with ReplayServer(cassette, speed=speed) as server:
            timings[speed] = arrival_times(server.url + "/api/chat", ask(0).body or b"")
    as_recorded, four_times, instant = timings[1.0], timings[4.0], timings[0.0]
    # Sleeping never ends early: each chunk comes at its scaled offset or later.
    for got, offset in zip(as_recorded, offsets, strict=True):
        assert got >= offset / 1000 * 0.95
    for got, offset in zip(four_times, offsets, strict=True):
        assert got >= offset / 4000 * 0.95
    # Generous bounds on the rest: 4x faster is between 1.5x and 12x faster end to end, and
    # speed 0 is far quicker than either.
    assert 1.5 < as_recorded[-1] / four_times[-1] < 12.0
    assert instant[-1] < four_times[-1] / 2


def counting_matcher(calls: list[int]) -> Matcher:
    def counted(request: RecordedRequest) -> Hashable:
        calls.append(1)
        return json_body(request)

    normalisers = BodyNormalisers()
    normalisers.register(counted, path="/api/chat")
    return Matcher(normalisers=normalisers)


def index_of(size: int, matcher: Matcher) -> InteractionIndex:
    reply = RecordedResponse.whole(200, "OK", {}, b"ok")
    return InteractionIndex([Interaction(ask(n), reply) for n in range(size)], matcher=matcher)


def test_a_lookup_normalises_one_body_whatever_the_cassette_size() -> None:
    for size in (10, 2000):
        calls: list[int] = []
        index = index_of(size, counting_matcher(calls))
        assert len(calls) == size  # each recording once, when the index is built
        for number in (0, size // 2, size - 1):
            assert index.lookup(ask(number))[0] == number
        assert len(calls) == size + 3


def per_lookup_seconds(index: InteractionIndex, numbers: list[int], rounds: int = 30) -> float:
    """Median time of one lookup, over rounds of looking up ``numbers`` once each."""
    requests_ = [ask(number) for number in numbers]
    samples = []
    for _ in range(rounds):
        index.reset()
        start = time.perf_counter()
        for request in requests_:
            index.lookup(request)
        samples.append((time.perf_counter() - start) / len(requests_))
    return statistics.median(samples)


def test_lookup_time_does_not_grow_with_the_cassette() -> None:
    matcher = Matcher()
    small, large = index_of(10, matcher), index_of(5000, matcher)
    per_lookup_seconds(small, list(range(10)), rounds=3)  # warm up
    spread = [0, 1, 2499, 2500, 4998, 4999, 7, 1234, 3333, 4321]
    small_time = per_lookup_seconds(small, list(range(10)))
    large_time = per_lookup_seconds(large, spread)
    # A scan over 5,000 recorded keys costs over ten times a lookup; allow 4x for noise and for
    # a larger dict's cache misses (typically 1.5x).
    assert large_time < 4 * small_time, (small_time, large_time)
