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

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple
from urllib.parse import urlsplit

from providers.errors import CassetteFormatError

#: Version of the ``tapedeck:`` block. Bump it when a reader of the old format would misread a
#: new file; readers refuse formats newer than their own.
FORMAT_VERSION = 1
#: The ``version:`` key vcrpy writes and checks.
VCR_FORMAT_VERSION = 1

Source = Literal["live", "fake"]
SOURCES: tuple[Source, ...] = ("live", "fake")
Headers = dict[str, list[str]]


class Chunk(NamedTuple):
    """One piece of a streamed body: ``size`` bytes that arrived ``offset_ms`` after the request.

    A named tuple rather than a dataclass: a long stream has hundreds of chunks per response, and
    tuples can be built and checked in bulk at C speed when a cassette loads.
    """

    size: int
    offset_ms: float


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
    chunks: tuple[Chunk, ...]
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_chunks(len(self.body), self.chunks)

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
        for chunk in self.chunks:
            yield bytes(view[start : start + chunk.size])
            start += chunk.size

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


def chunks_from_sizes(
    sizes: Sequence[int], offsets_ms: Sequence[float] | None = None
) -> tuple[Chunk, ...]:
    """Chunks for the given sizes; offsets default to 0 (everything at once)."""
    if offsets_ms is None:
        offsets_ms = [0.0] * len(sizes)
    if len(offsets_ms) != len(sizes):
        raise CassetteFormatError(f"{len(sizes)} chunk sizes but {len(offsets_ms)} offsets")
    return tuple(Chunk(size, float(offset)) for size, offset in zip(sizes, offsets_ms, strict=True))


def check_chunks(body_length: int, chunks: Sequence[Chunk]) -> None:
    """Raise :class:`CassetteFormatError` unless ``chunks`` is a valid plan for the body.

    Valid: every size a positive int (a zero-length write would end a chunked body), offsets
    finite, non-negative and non-decreasing, sizes adding up to exactly ``body_length``.
    """
    if not chunks:
        if body_length:
            raise CassetteFormatError(f"no chunks, but the body has {body_length} bytes")
        return
    # Whole-list checks run in C; the slow loop below only runs to explain a failure.
    sizes, offsets = zip(*chunks, strict=True)
    if (
        set(map(type, sizes)) == {int}
        and min(sizes) > 0
        and set(map(type, offsets)) <= {int, float}
        and all(map(math.isfinite, offsets))
        and offsets[0] >= 0
        and list(offsets) == sorted(offsets)
        and sum(sizes) == body_length
    ):
        return
    _explain_bad_chunks(body_length, chunks)


def _explain_bad_chunks(body_length: int, chunks: Sequence[Chunk]) -> None:
    total = 0
    last = 0.0
    for number, (size, offset) in enumerate(chunks):
        if type(size) is not int or size <= 0:
            raise CassetteFormatError(f"chunk {number}: size must be a positive int, got {size!r}")
        if type(offset) not in (float, int) or not (math.isfinite(offset) and offset >= last):
            raise CassetteFormatError(
                f"chunk {number}: offset_ms must be finite and not before the previous chunk "
                f"({last!r}), got {offset!r}"
            )
        total += size
        last = offset
    raise CassetteFormatError(f"chunk sizes add up to {total} bytes but the body has {body_length}")


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
