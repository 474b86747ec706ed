"""The load generator: many concurrent streaming clients, run inside the client process.

Client ``i`` talks to fake ``i mod 4`` over its own keep-alive connection, loopback only. Every
request scripts its own reply in the ``X-Tapedeck-Script`` header: a text unique to that client and
request, a chunk plan (frames, inside UTF-8 characters, or seeded random cuts) and a delay between
chunks, so hundreds of streams are open at once. Each reply is checked three ways:

- the decoded text equals the text the client scripted (decoded with the provider's own decoder);
- the body bytes equal the codec's encoding of that text (nothing lost, doubled or interleaved);
- the chunk boundaries equal the scripted chunk plan's.

Bounded in count (``clients``) and time: no request starts after ``seconds``, and each has a
deadline of ``timeout`` seconds, so the job always ends by itself.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from fake_upstreams.chunking import ChunkPlan, frame_boundaries
from fake_upstreams.offline import is_loopback_host
from fake_upstreams.registry import spec_for
from fake_upstreams.script import word_pieces
from providers import PROVIDERS
from providers.errors import ConnectError, RemoteProtocolError
from providers.wire.common import Framing
from tools.bench.httpclient import Connection, Reply, encode_request
from tools.bench.procs import Stopwatch
from tools.bench.workloads import words

HOST = "127.0.0.1"
_CHUNKINGS: tuple[dict[str, Any], ...] = (
    {"kind": "frames"},
    {"kind": "utf8", "with_frames": True},
    {"kind": "random", "size": 48},
)
_KEEP_PROBLEMS = 5


@dataclass
class LoadStats:
    """What the load generator saw, summed over every client."""

    clients: int = 0
    elapsed: float = 0.0
    client_cpu: float = 0.0
    requests: int = 0
    ok: int = 0
    errors: int = 0
    text_mismatches: int = 0
    byte_mismatches: int = 0
    chunk_mismatches: int = 0
    body_bytes: int = 0
    chunks: int = 0
    peak_in_flight: int = 0
    latencies: list[float] = field(default_factory=list)
    first_byte: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def problem(self, text: str) -> None:
        if len(self.problems) < _KEEP_PROBLEMS:
            self.problems.append(text)


@dataclass(frozen=True, slots=True)
class LoadJob:
    """``clients`` streaming clients against the fakes on ``ports`` for ``seconds``."""

    ports: dict[str, int]
    clients: int
    seconds: float
    words: int
    chunk_delay: float
    timeout: float = 60.0

    async def execute(self) -> LoadStats:
        if not is_loopback_host(HOST):  # the generator never aims anywhere but loopback
            raise ConnectError(f"load generator refuses non-loopback host {HOST}")
        stats = LoadStats(clients=self.clients)
        names = sorted(self.ports)
        deadline = time.perf_counter() + self.seconds
        watch = Stopwatch()
        in_flight = [0]
        await asyncio.gather(
            *(
                self._client(index, names[index % len(names)], deadline, stats, in_flight)
                for index in range(self.clients)
            )
        )
        watch.stop()
        stats.elapsed, stats.client_cpu = watch.wall, watch.cpu
        return stats

    async def _client(
        self, index: int, fake: str, deadline: float, stats: LoadStats, in_flight: list[int]
    ) -> None:
        connection: Connection | None = None
        number = 0
        try:
            while time.perf_counter() < deadline:
                number += 1
                stats.requests += 1
                try:
                    if connection is None or not connection.usable:
                        connection = await Connection.open(HOST, self.ports[fake])
                    in_flight[0] += 1
                    stats.peak_in_flight = max(stats.peak_in_flight, in_flight[0])
                    try:
                        self._one(await self._exchange(connection, index, number, fake), stats)
                    finally:
                        in_flight[0] -= 1
                except (ConnectionError, OSError) as error:
                    stats.errors += 1
                    stats.problem(f"client {index} → {fake}: {type(error).__name__}: {error}")
                    if connection is not None:
                        connection.close()
                    connection = None
        finally:
            if connection is not None:
                connection.close()

    async def _exchange(
        self, connection: Connection, index: int, number: int, fake: str
    ) -> _Exchange:
        codec = spec_for(fake).codec
        text = f"client {index} request {number}: {words(self.words)}"
        chunking = _CHUNKINGS[(index + number) % len(_CHUNKINGS)]
        if chunking["kind"] == "random":
            chunking = {**chunking, "seed": index * 100_003 + number}
        script = {"text": text, "chunking": chunking, "chunk_delay": self.chunk_delay}
        wire = codec.build_request(
            PROVIDERS[fake].get_model(""), [{"role": "user", "content": f"hello {index}"}], {}
        )
        request = encode_request(
            wire.method,
            wire.path,
            (*wire.headers, ("X-Tapedeck-Script", json.dumps(script))),
            wire.body,
            content_type=wire.body_content_type,
        )
        sent = time.perf_counter()
        reply = await connection.request(request, keep=True, within=self.timeout)
        return _Exchange(fake, text, chunking, reply, sent, time.perf_counter())

    def _one(self, exchange: _Exchange, stats: LoadStats) -> None:
        reply, fake = exchange.reply, exchange.fake
        codec = spec_for(fake).codec
        stats.latencies.append(exchange.done - exchange.sent)
        stats.first_byte.append(reply.head_at - exchange.sent)
        if reply.status != codec.success_status:
            stats.errors += 1
            stats.problem(f"{fake}: status {reply.status}: {reply.body[:200]!r}")
            return
        frames = codec.encode_reply(word_pieces(exchange.text), Framing())
        body = b"".join(frames)
        expected_chunks = ChunkPlan.from_dict(exchange.chunking).split(
            body, frame_boundaries(frames)
        )
        text_ok = _decoded(fake, reply.chunks) == exchange.text
        bytes_ok = reply.body == body
        chunks_ok = reply.chunks == expected_chunks
        stats.text_mismatches += not text_ok
        stats.byte_mismatches += not bytes_ok
        stats.chunk_mismatches += not chunks_ok
        if not (text_ok and bytes_ok and chunks_ok):
            stats.problem(
                f"{fake}: transcript differs (text {text_ok}, bytes {bytes_ok}, "
                f"chunks {chunks_ok}) for {exchange.text[:60]!r}"
            )
            return
        stats.ok += 1
        stats.body_bytes += reply.body_bytes
        stats.chunks += reply.chunk_count


def _decoded(fake: str, chunks: list[bytes]) -> str | None:
    """The reply text as the provider's own (correct) decoder reads it; None if it cannot."""
    decoder = spec_for(fake).codec.new_decoder("correct")
    try:
        pieces = [piece for chunk in chunks for piece in decoder.feed(chunk)]
        pieces += decoder.finish()
    except RemoteProtocolError:
        return None
    return "".join(piece or "" for piece in pieces)


@dataclass(frozen=True, slots=True)
class _Exchange:
    fake: str
    text: str
    chunking: dict[str, Any]
    reply: Reply
    sent: float
    done: float
