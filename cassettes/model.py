"""What a cassette holds, independent of how it is stored.

A cassette is a list of interactions (one request, one response each) plus where it came from.
A response keeps its whole body (what vcrpy replays) *and* the chunk plan it arrived in: the byte
length of every chunk and its arrival time in milliseconds after the request was sent. The chunk
sizes always add up to the body length; the constructor refuses anything else, so a response that
exists is a response that can be replayed chunk by chunk.

Headers are kept the way vcrpy stores them, a dict from name to a list of values, so loading and
saving never has to convert them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from cassettes.chunks import Chunk, ChunkPlan
from providers.errors import CassetteFormatError

__all__ = [
    "FORMAT_VERSION",
    "SOURCES",
    "VCR_FORMAT_VERSION",
    "Cassette",
    "Chunk",
    "ChunkPlan",
    "Headers",
    "Interaction",
    "Provenance",
    "RecordedRequest",
    "RecordedResponse",
    "Source",
    "chunks_from_sizes",
    "first_header",
]

#: Version of the ``tapedeck:`` block. Bump it when a reader of the old format would misread a
#: new file; readers refuse formats newer than their own.
FORMAT_VERSION = 1
#: The ``version:`` key vcrpy writes and checks.
VCR_FORMAT_VERSION = 1

Source = Literal["live", "fake"]
SOURCES: tuple[Source, ...] = ("live", "fake")
Headers = dict[str, list[str]]


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where a cassette came from, so nobody mistakes a recording of a fake for the real site."""

    target_url: str
    recorded_at: str
    tool_version: str
    source: Source

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise CassetteFormatError(
                f"provenance source must be one of {', '.join(SOURCES)}, got {self.source!r}"
            )

    @classmethod
    def now(cls, target_url: str, source: Source, tool_version: str | None = None) -> Provenance:
        """Provenance stamped with the current UTC time and the installed Tapedeck version."""
        stamp = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        return cls(target_url, stamp, tool_version or _installed_version(), source)


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """A request as recorded. ``body`` is None when the request had none (vcrpy's ``null``)."""

    method: str
    uri: str
    headers: Headers = field(default_factory=dict)
    body: bytes | None = None

    @property
    def path(self) -> str:
        """The URI's path, ``/`` when empty (RFC 3986 treats the two alike)."""
        return urlsplit(self.uri).path or "/"

    def header(self, name: str) -> str | None:
        """First value of a header, name compared case-insensitively."""
        return first_header(self.headers, name)


@dataclass(frozen=True, slots=True)
class RecordedResponse:
    """A response: status, headers, the whole body, and the chunks it arrived in.

    ``extra`` keeps response keys Tapedeck does not know (vcrpy's aiohttp stubs add ``url``), so
    loading and saving a cassette written by someone else loses nothing.
    """

    status: int
    reason: str
    headers: Headers
    body: bytes
    chunks: Sequence[Chunk]
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Any sequence of chunks is accepted; it is kept as a ChunkPlan, checked against the body.
        if not isinstance(self.chunks, ChunkPlan):
            object.__setattr__(self, "chunks", ChunkPlan(self.chunks))
        self.plan.check(len(self.body))

    @property
    def plan(self) -> ChunkPlan:
        """The chunks as a :class:`ChunkPlan` (sizes, offsets, text form)."""
        assert isinstance(self.chunks, ChunkPlan)  # __post_init__ made sure
        return self.chunks

    @classmethod
    def whole(
        cls, status: int, reason: str, headers: Headers, body: bytes, offset_ms: float = 0.0
    ) -> RecordedResponse:
        """A response whose body arrived as one chunk (or none, when the body is empty)."""
        chunks = (Chunk(len(body), offset_ms),) if body else ()
        return cls(status, reason, headers, body, chunks)

    def chunk_bytes(self) -> Iterator[bytes]:
        """The body cut at the recorded chunk boundaries, in order."""
        view = memoryview(self.body)
        start = 0
        for size in self.plan.sizes:
            yield bytes(view[start : start + size])
            start += size

    def header(self, name: str) -> str | None:
        """First value of a header, name compared case-insensitively."""
        return first_header(self.headers, name)


@dataclass(frozen=True, slots=True)
class Interaction:
    """One request and the response it got. ``extra`` keeps unknown interaction keys."""

    request: RecordedRequest
    response: RecordedResponse
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Cassette:
    """A recording. ``provenance`` is None for a plain vcrpy cassette; ``extra`` keeps unknown
    top-level keys (vcrpy's ``metadata``)."""

    interactions: tuple[Interaction, ...] = ()
    provenance: Provenance | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.interactions)

    def with_interactions(self, interactions: Iterable[Interaction]) -> Cassette:
        """The same cassette with ``interactions`` appended."""
        return Cassette((*self.interactions, *interactions), self.provenance, self.extra)


def chunks_from_sizes(sizes: Sequence[int], offsets_ms: Sequence[float] | None = None) -> ChunkPlan:
    """A chunk plan for the given sizes; offsets default to 0 (everything at once)."""
    return ChunkPlan.from_sizes(sizes, offsets_ms)


def first_header(headers: Headers, name: str) -> str | None:
    """First value of header ``name`` (case-insensitive) in a vcrpy-style header dict."""
    wanted = name.lower()
    for key, values in headers.items():
        if key.lower() == wanted and values:
            return values[0]
    return None


def _installed_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tapedeck")
    except PackageNotFoundError:
        return "0+unknown"
