"""Jobs the cassette benchmarks run in the client process (see :mod:`tools.bench.procs`).

Each job times one run of one side and returns a :class:`Timing` (or, for first bytes, a
:class:`FirstBytes`); whatever it prepares first (sessions, parsed cassettes, request objects) is
outside the timed part, and every answer is checked after it, so a wrong reply fails the
benchmark instead of becoming a number.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import requests
from vcr.persisters.filesystem import FilesystemPersister
from vcr.request import Request as VcrRequest
from vcr.serializers import yamlserializer

from cassettes import yamlio
from cassettes.replay import Replayer, ReplayServer
from providers.errors import TapedeckError
from providers.wire.codelinkava import API
from tools.bench import cassette_client as client
from tools.bench.cassette_gen import ClientCall

Loader = Literal["ours", "vcrpy", "ours+index", "vcrpy-cassette"]
_REPLAYERS: dict[str, Replayer] = {}


@dataclass(frozen=True, slots=True)
class Timing:
    """One timed run: wall seconds for ``count`` units, and this process's CPU seconds."""

    seconds: float
    count: int
    cpu: float

    @property
    def per_unit(self) -> float:
        return self.seconds / self.count if self.count else float("nan")


class _Clock:
    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def timing(self, count: int) -> Timing:
        return Timing(time.perf_counter() - self.wall, count, time.process_time() - self.cpu)


#: Where a replay pass sends its requests: vcrpy's in-process stubs, or a replay server started
#: in a thread of the client process (as ``with ReplayServer(...)`` in a test does).
VCRPY, IN_THREAD = "vcrpy", "thread"


@dataclass(frozen=True, slots=True)
class ReplayPassJob:
    """Replay interactions ``indices`` of the cassette with :func:`client.drive`.

    ``target`` is our replay server's base URL, :data:`VCRPY` to run the same code under vcrpy
    (aimed at the recorded host, with ``match_on``), or :data:`IN_THREAD` for a replay server in
    this process (started, warmed up with ``warm_up`` requests and reset before the clock runs).
    """

    path: str
    indices: tuple[int, ...]
    target: str
    match_on: tuple[str, ...] = client.VCR_MATCH_ON
    warm_up: int = 20

    async def execute(self) -> Timing:
        every = client.cached_calls(self.path)
        chosen = [every[index] for index in self.indices]
        with client.loopback_session() as session:
            if self.target == VCRPY:
                with client.vcr_context(self.path, self.match_on):
                    clock = _Clock()
                    client.drive(session, API, chosen)
                    return clock.timing(len(chosen))
            if self.target == IN_THREAD:
                # From a thread without a running loop, as a sync test calls it.
                return await asyncio.to_thread(self._in_thread, session, every, chosen)
            clock = _Clock()
            client.drive(session, self.target, chosen)
            return clock.timing(len(chosen))

    def _in_thread(
        self,
        session: requests.Session,
        every: Sequence[ClientCall],
        chosen: Sequence[ClientCall],
    ) -> Timing:
        with ReplayServer(self.path) as server:
            client.drive(session, server.url, every[: self.warm_up])
            server.reset()
            clock = _Clock()
            client.drive(session, server.url, chosen)
            return clock.timing(len(chosen))


@dataclass(frozen=True, slots=True)
class LookupJob:
    """Find the recording for each of ``indices``: our index, or vcrpy's ``play_response``."""

    path: str
    indices: tuple[int, ...]
    side: Literal["ours", "vcrpy"]

    async def execute(self) -> Timing:
        every = client.cached_calls(self.path)
        chosen = [every[index] for index in self.indices]
        if self.side == "ours":
            return self._ours(chosen)
        return self._vcrpy(chosen)

    def _ours(self, chosen: list[ClientCall]) -> Timing:
        replayer = _REPLAYERS.get(self.path)
        if replayer is None:
            replayer = _REPLAYERS[self.path] = Replayer(yamlio.load(self.path))
        replayer.index.reset()
        # What the replay server hands the index for an incoming request.
        asked = [replayer.request_from(c.method, c.path, c.headers, c.body) for c in chosen]
        lookup = replayer.index.lookup
        clock = _Clock()
        found = [lookup(request)[0] for request in asked]
        timing = clock.timing(len(asked))
        if found != list(self.indices):
            raise TapedeckError(f"our index answered {found[:5]}..., expected {self.indices[:5]}")
        return timing

    def _vcrpy(self, chosen: list[ClientCall]) -> Timing:
        cassette = client.vcr_cassette(self.path)
        asked = [VcrRequest(c.method, API + c.path, c.body, dict(c.headers)) for c in chosen]
        play = cassette.play_response
        clock = _Clock()
        found = [play(request) for request in asked]
        timing = clock.timing(len(asked))
        for call, response in zip(chosen, found, strict=True):
            if response["body"]["string"] != call.expected:
                raise TapedeckError(f"vcrpy answered {call.path} with another recording")
        return timing


@dataclass(frozen=True, slots=True)
class CassetteLoadJob:
    """Load the cassette file once with one loader."""

    path: str
    loader: Loader

    async def execute(self) -> Timing:
        clock = _Clock()
        if self.loader == "ours":
            loaded: object = yamlio.load(self.path)
        elif self.loader == "ours+index":
            loaded = Replayer(yamlio.load(self.path))
        elif self.loader == "vcrpy":
            loaded = FilesystemPersister.load_cassette(self.path, serializer=yamlserializer)
        else:
            loaded = client.vcr_cassette_load(self.path)
        timing = clock.timing(1)
        del loaded
        return timing


@dataclass(frozen=True, slots=True)
class ForgetJob:
    """Drop the client process's caches (see :func:`client.forget`)."""

    async def execute(self) -> None:
        _REPLAYERS.clear()
        client.forget()


@dataclass(frozen=True, slots=True)
class FirstBytes:
    """Seconds to the first body bytes of each request, and the first reply's whole body."""

    seconds: tuple[float, ...]
    body: bytes


@dataclass(frozen=True, slots=True)
class FirstByteJob:
    """``count`` requests of ``call`` to ``base_url``, timing each one's first body bytes.

    Every reply is read whole before the next request and must equal the first one.
    """

    base_url: str
    call: ClientCall
    count: int

    async def execute(self) -> FirstBytes:
        call, seconds, first = self.call, [], b""
        headers = dict(call.headers)
        with client.loopback_session() as session:
            for number in range(self.count):
                started = time.perf_counter()
                with session.request(
                    call.method, self.base_url + call.path, data=call.body, headers=headers,
                    stream=True, timeout=30,
                ) as reply:  # fmt: skip
                    pieces = reply.iter_content(4096)
                    head = next(pieces, b"")
                    seconds.append(time.perf_counter() - started)
                    body = head + b"".join(pieces)
                    status = reply.status_code
                if number == 0:
                    first = body
                if status != call.status or not body or body != first:
                    raise TapedeckError(
                        f"{self.base_url}{call.path}: status {status}, {len(body)} body bytes "
                        f"(first reply: {len(first)}): {body[:200]!r}"
                    )
        return FirstBytes(tuple(seconds), first)
