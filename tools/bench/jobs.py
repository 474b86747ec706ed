"""Throughput jobs, run inside the client process against one server at a time.

A job keeps ``connections`` keep-alive connections busy for ``duration`` seconds, each sending
requests back to back (the next one as soon as the previous reply is complete), and counts
replies, chunks and body bytes. Every reply is checked for status and body size; a job with any
error is reported as failed by the benchmark, never turned into a number.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from tools.bench.httpclient import Connection
from tools.bench.procs import Stopwatch

_MAX_ERRORS_KEPT = 5


@dataclass(frozen=True, slots=True)
class ThroughputSample:
    """What one run of a :class:`ThroughputJob` saw."""

    elapsed: float
    replies: int
    chunks: int
    body_bytes: int
    client_cpu: float
    error_count: int = 0
    errors: tuple[str, ...] = ()
    #: The first reply's chunks, when the job asked to keep them (a sameness check).
    first_chunks: tuple[bytes, ...] | None = None


@dataclass(frozen=True, slots=True)
class ThroughputJob:
    """Hammer one server: ``connections`` clients, requests cycled from ``requests``."""

    port: int
    requests: tuple[bytes, ...]
    connections: int
    duration: float
    status: int
    body_bytes: int
    keep_first: bool = False
    timeout: float = 60.0

    async def execute(self) -> ThroughputSample:
        tally = _Tally()
        first: list[bytes] | None = None
        if self.keep_first:
            connection = await Connection.open("127.0.0.1", self.port)
            try:
                reply = await connection.request(self.requests[0], keep=True, within=self.timeout)
            finally:
                connection.close()
            first = reply.chunks
        watch = Stopwatch()
        deadline = time.perf_counter() + self.duration
        await asyncio.gather(
            *(self._worker(index, deadline, tally) for index in range(self.connections))
        )
        watch.stop()
        return ThroughputSample(
            elapsed=watch.wall,
            replies=tally.replies,
            chunks=tally.chunks,
            body_bytes=tally.body_bytes,
            client_cpu=watch.cpu,
            error_count=tally.error_count,
            errors=tuple(tally.errors),
            first_chunks=None if first is None else tuple(first),
        )

    async def _worker(self, index: int, deadline: float, tally: _Tally) -> None:
        requests = self.requests
        position = index % len(requests)
        connection: Connection | None = None
        try:
            while time.perf_counter() < deadline:
                if connection is None or not connection.usable:
                    connection = await Connection.open("127.0.0.1", self.port)
                try:
                    reply = await connection.request(requests[position], within=self.timeout)
                except ConnectionError as error:  # StreamResetError, UpstreamTimeoutError
                    tally.error(f"{type(error).__name__}: {error}")
                    connection.close()
                    connection = None
                    continue
                position = (position + 1) % len(requests)
                if reply.status != self.status or reply.body_bytes != self.body_bytes:
                    tally.error(
                        f"status {reply.status} with {reply.body_bytes} body bytes, expected "
                        f"{self.status} with {self.body_bytes}: {reply.head[:200]!r}"
                    )
                    continue
                tally.replies += 1
                tally.chunks += reply.chunk_count
                tally.body_bytes += reply.body_bytes
        finally:
            if connection is not None:
                connection.close()


class _Tally:
    def __init__(self) -> None:
        self.replies = 0
        self.chunks = 0
        self.body_bytes = 0
        self.error_count = 0
        self.errors: list[str] = []

    def error(self, text: str) -> None:
        self.error_count += 1
        if len(self.errors) < _MAX_ERRORS_KEPT:
            self.errors.append(text)
