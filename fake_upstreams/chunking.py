"""Chunk plans: where a fake cuts a reply body into HTTP chunks. Pure, no I/O.

A plan turns ``(body, frame_boundaries)`` into the list of chunks a fake writes, one HTTP chunk
each. ``frame_boundaries`` are the offsets where the codec's frames end (a text piece, an SSE
event), so a plan can cut exactly where a streaming server would flush. Whatever the plan, the
chunks concatenate to the body and none is empty (an empty chunk would read as the end of a chunked
body).

Cut positions per kind (offsets are byte offsets into the body, a cut at ``k`` means a chunk ends
before byte ``k``):

========== =====================================================================================
whole      no cut: one chunk
frames     at every frame boundary (the default of a response script: one chunk per frame)
every      every ``size`` bytes
utf8       at every position inside a multi-byte UTF-8 sequence (each of its bytes on its own)
data       at every position inside each ``data: `` prefix
crlf       between every ``\\r`` and the ``\\n`` that follows it
done       at every position inside each ``[DONE]``
random     seeded random chunk sizes from 1 to ``size``
offsets    exactly at ``offsets`` (each must lie strictly inside the body, else ``ValueError``)
========== =====================================================================================

``with_frames=True`` adds the frame boundaries to any kind's cuts.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

from fake_upstreams.specdict import SpecReader

ChunkKind = Literal["whole", "frames", "every", "utf8", "data", "crlf", "done", "random", "offsets"]
CHUNK_KINDS: tuple[ChunkKind, ...] = get_args(ChunkKind)

_MARKERS = {"data": b"data: ", "done": b"[DONE]"}


@dataclass(frozen=True, slots=True)
class ChunkPlan:
    """How to cut one reply body into HTTP chunks; see the module docstring for each kind."""

    kind: ChunkKind = "frames"
    size: int = 0
    seed: int = 0
    offsets: tuple[int, ...] = ()
    with_frames: bool = False

    def __post_init__(self) -> None:
        if self.kind not in CHUNK_KINDS:
            raise ValueError(
                f"unknown chunk plan kind {self.kind!r} (known: {', '.join(CHUNK_KINDS)})"
            )
        if self.kind in ("every", "random") and self.size < 1:
            raise ValueError(f"chunk plan {self.kind!r} needs a size >= 1, got {self.size}")
        if self.kind == "offsets" and any(offset < 1 for offset in self.offsets):
            raise ValueError(f"chunk plan offsets must all be >= 1, got {list(self.offsets)}")

    # Constructors that read like the plan they make.
    @classmethod
    def whole(cls) -> ChunkPlan:
        return cls("whole")

    @classmethod
    def frames(cls) -> ChunkPlan:
        return cls("frames")

    @classmethod
    def every(cls, size: int) -> ChunkPlan:
        return cls("every", size=size)

    @classmethod
    def random(cls, seed: int, max_size: int) -> ChunkPlan:
        return cls("random", size=max_size, seed=seed)

    @classmethod
    def at(cls, offsets: Iterable[int]) -> ChunkPlan:
        return cls("offsets", offsets=tuple(offsets))

    def cuts(self, body: bytes, frame_boundaries: Sequence[int] = ()) -> list[int]:
        """The sorted offsets strictly inside ``body`` where a chunk ends."""
        found = set(_kind_cuts(self, body, frame_boundaries))
        if self.with_frames or self.kind == "frames":
            found.update(frame_boundaries)
        return sorted(cut for cut in found if 0 < cut < len(body))

    def split(self, body: bytes, frame_boundaries: Sequence[int] = ()) -> list[bytes]:
        """The chunks to write: never empty, and ``b"".join(chunks) == body``."""
        cuts = self.cuts(body, frame_boundaries)  # validates explicit offsets even for b""
        if not body:
            return []
        edges = [0, *cuts, len(body)]
        return [body[start:end] for start, end in itertools.pairwise(edges)]

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind}
        if self.kind in ("every", "random"):
            data["size"] = self.size
        if self.kind == "random":
            data["seed"] = self.seed
        if self.kind == "offsets":
            data["offsets"] = list(self.offsets)
        if self.with_frames:
            data["with_frames"] = True
        return data

    @classmethod
    def from_dict(cls, data: object) -> ChunkPlan:
        """Load ``{"kind": "every", "size": 3}``; a bare kind name (``"utf8"``) is accepted too."""
        if isinstance(data, str):
            data = {"kind": data}
        reader = SpecReader(
            data, "chunk plan", known=("kind", "size", "seed", "offsets", "with_frames")
        )
        kind = reader.choice("kind", "frames", CHUNK_KINDS)
        return cls(
            kind,  # type: ignore[arg-type]  # checked against CHUNK_KINDS just above
            size=reader.integer("size", 0, minimum=1 if kind in ("every", "random") else 0),
            seed=reader.integer("seed", 0),
            offsets=reader.integers("offsets", minimum=1) or (),
            with_frames=reader.flag("with_frames", False),
        )


def _kind_cuts(plan: ChunkPlan, body: bytes, frames: Sequence[int]) -> Iterable[int]:
    kind = plan.kind
    if kind in ("whole", "frames"):
        return ()
    if kind == "every":
        return range(plan.size, len(body), plan.size)
    if kind == "utf8":
        return _utf8_inner(body)
    if kind in _MARKERS:
        return _inside(body, _MARKERS[kind])
    if kind == "crlf":
        return [index + 1 for index in _find_all(body, b"\r\n")]
    if kind == "random":
        return _random_cuts(len(body), plan.seed, plan.size)
    return _checked_offsets(plan.offsets, len(body))


def _find_all(body: bytes, needle: bytes) -> Iterable[int]:
    start = body.find(needle)
    while start >= 0:
        yield start
        start = body.find(needle, start + 1)


def _inside(body: bytes, marker: bytes) -> list[int]:
    return [start + step for start in _find_all(body, marker) for step in range(1, len(marker))]


def _utf8_inner(body: bytes) -> list[int]:
    # Works on bytes, not on decoded text, so raw (possibly invalid) bodies are cut too: every
    # continuation byte that follows a lead or another continuation byte starts a new chunk.
    cuts = []
    for index, byte in enumerate(body):
        if byte & 0xC0 == 0x80 and index > 0 and body[index - 1] >= 0x80:
            cuts.append(index)
    return cuts


def _random_cuts(length: int, seed: int, max_size: int) -> list[int]:
    rng = random.Random(seed)
    cuts = []
    position = rng.randint(1, max_size)
    while position < length:
        cuts.append(position)
        position += rng.randint(1, max_size)
    return cuts


def _checked_offsets(offsets: Sequence[int], length: int) -> list[int]:
    for offset in offsets:
        if offset >= length:
            raise ValueError(
                f"chunk plan offset {offset} is not inside the body ({length} bytes): "
                "offsets must be between 1 and the body length - 1"
            )
    return list(offsets)


def frame_boundaries(frames: Sequence[bytes]) -> list[int]:
    """The offsets where each frame ends inside ``b"".join(frames)`` (the last end excluded)."""
    ends = []
    total = 0
    for frame in frames[:-1]:
        total += len(frame)
        ends.append(total)
    return ends
