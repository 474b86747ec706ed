"""The tee: a copy of a relayed body, chunk by chunk, with the time each chunk arrived.

The proxy hands every chunk to :meth:`ChunkTee.add` just before writing it to the client, so the
recording costs one list append and one clock read per chunk and never delays the client.

Offsets are milliseconds since the request was *forwarded* (the moment the proxy started sending
it upstream), the same origin as :class:`~cassettes.chunks.Chunk`'s ``offset_ms``: the first
chunk's offset is the upstream's time to first byte as the proxy saw it. They are rounded to the
microsecond, which is finer than any loopback measurement is meaningful, and keeps the cassette
text short.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from cassettes.chunks import ChunkPlan
from cassettes.model import Headers, RecordedResponse

Clock = Callable[[], float]


class ChunkTee:
    """Chunks of one response body as they were relayed, in order."""

    __slots__ = ("_clock", "_offsets", "_pieces", "_sizes", "complete", "started")

    def __init__(self, started: float | None = None, *, clock: Clock = time.perf_counter) -> None:
        self._clock = clock
        #: The clock reading when the request was forwarded (offset 0).
        self.started = clock() if started is None else started
        self._pieces: list[bytes] = []
        self._sizes: list[int] = []
        self._offsets: list[float] = []
        #: Set by the relay once the whole body went through (see :func:`cassettes.relay.relay`).
        self.complete = False

    def add(self, piece: bytes) -> None:
        """Keep one chunk (empty pieces are ignored: a chunk is never empty)."""
        if not piece:
            return
        offset = round((self._clock() - self.started) * 1000.0, 3)
        if self._offsets and offset < self._offsets[-1]:
            offset = self._offsets[-1]  # a clock is allowed to stall, never to go back
        self._pieces.append(piece)
        self._sizes.append(len(piece))
        self._offsets.append(max(offset, 0.0))

    @property
    def chunks(self) -> int:
        """How many chunks so far."""
        return len(self._sizes)

    @property
    def size(self) -> int:
        """Body bytes so far."""
        return sum(self._sizes)

    def body(self) -> bytes:
        """Everything kept so far, joined."""
        return b"".join(self._pieces)

    def plan(self) -> ChunkPlan:
        """The chunk plan so far."""
        return ChunkPlan.from_sizes(self._sizes, self._offsets)

    def response(self, status: int, reason: str, headers: Headers) -> RecordedResponse:
        """The recorded response: ``status``, ``headers`` and the body exactly as it was cut."""
        body = self.body()
        plan = ChunkPlan.checked(len(body), list(self._sizes), list(self._offsets), numeric=True)
        return RecordedResponse(status, reason, headers, body, plan)
