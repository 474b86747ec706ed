"""Hypothesis properties of the SSE decoder.

(a) chunking never changes the result; (b) any bytes give events or a RemoteProtocolError, never
another exception; (c) events serialised by an independent little writer below decode back to
themselves; (d) the line layer agrees with the obvious reference: decode the whole stream, then
split on CRLF / CR / LF.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from providers.errors import RemoteProtocolError
from providers.wire.sse import Errors, SSEDecoder, SSEEvent, SSELineDecoder

# Pieces that make random streams look like event streams often enough to reach every branch:
# field names, colons, every line end, BOMs, NUL, digits, whole / cut / invalid UTF-8, and the
# characters str.splitlines() would wrongly split on.
_TOKENS = [
    b"data",
    b"event",
    b"id",
    b"retry",
    b":",
    b": ",
    b" ",
    b"\n",
    b"\r",
    b"\r\n",
    b"\xef\xbb\xbf",
    b"\x00",
    b"x",
    b"12",
    "€".encode(),
    "€".encode()[:2],
    b"\xff",
    "\u2028".encode(),
    "\x85".encode(),
    b"\x0b",
]
_stream_bytes = st.one_of(
    st.binary(max_size=120),
    st.lists(st.sampled_from(_TOKENS), max_size=60).map(b"".join),
)
_modes = st.sampled_from(["strict", "replace"])


@st.composite
def _chunked(draw: st.DrawFn, *, stream: bytes) -> list[bytes]:
    """``stream`` cut at random points (empty chunks included)."""
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    bounds = [0, *cuts, len(stream)]
    return [stream[start:end] for start, end in pairwise(bounds)]


@dataclass(frozen=True)
class _Outcome:
    events: tuple[SSEEvent, ...]
    pending: bool
    error: type[RemoteProtocolError] | None


def _run(chunks: list[bytes], errors: Errors, max_line_bytes: int) -> _Outcome:
    decoder = SSEDecoder(errors=errors, max_line_bytes=max_line_bytes)
    events: list[SSEEvent] = []
    try:
        for chunk in chunks:
            events.extend(decoder.feed(chunk))
        pending = decoder.pending
        events.extend(decoder.finish())
    except RemoteProtocolError as exc:
        return _Outcome(tuple(events), True, type(exc))
    return _Outcome(tuple(events), pending, None)


@given(stream=_stream_bytes, errors=_modes, max_line_bytes=st.integers(1, 80), data=st.data())
def test_chunking_does_not_change_the_result(
    stream: bytes, errors: Errors, max_line_bytes: int, data: st.DataObject
) -> None:
    whole = _run([stream], errors, max_line_bytes)
    bytewise = _run([stream[i : i + 1] for i in range(len(stream))], errors, max_line_bytes)
    random_cuts = _run(data.draw(_chunked(stream=stream)), errors, max_line_bytes)
    for other in (bytewise, random_cuts):
        assert other.error is whole.error
        if whole.error is None:
            # Events returned before an error depend on where the chunks end; without one,
            # everything must match.
            assert other == whole


@given(stream=_stream_bytes, errors=_modes, small_limit=st.booleans(), data=st.data())
def test_any_bytes_give_events_or_a_remote_protocol_error(
    stream: bytes, errors: Errors, small_limit: bool, data: st.DataObject
) -> None:
    limit = 8 if small_limit else 1 << 20
    chunks = data.draw(_chunked(stream=stream))
    events = SSEDecoder(errors=errors, max_line_bytes=limit)
    lines = SSELineDecoder(errors=errors, max_line_bytes=limit)
    try:
        for chunk in chunks:
            assert all(isinstance(event, SSEEvent) for event in events.feed(chunk))
        assert events.finish() == []
    except RemoteProtocolError:
        pass
    try:
        for chunk in chunks:
            assert all(isinstance(line, str) for line in lines.feed(chunk))
        assert isinstance(lines.partial, str)
        lines.finish()
    except RemoteProtocolError:
        pass


# --- (c) round trip through an independent serialiser ---------------------------------------

# Text that may hold anything but CR and LF (and lone surrogates, which UTF-8 cannot carry), with
# the separators str.splitlines() knows well represented, and the prefixes that matter to the
# parser (spaces, a colon, a BOM) put up front often enough to be tried.
_line_text = st.builds(
    str.__add__,
    st.sampled_from(["", "", " ", "  ", ":", "\ufeff", "\u2028"]),
    st.text(
        st.one_of(
            st.sampled_from("\u2028\u2029\x85\x0b\x0c\x1c\x1d\x1e\ufeff\x00: "),
            st.characters(exclude_categories=["Cs"], exclude_characters="\r\n"),
        ),
        max_size=20,
    ),
)


@dataclass(frozen=True)
class _Spec:
    data_lines: list[str]
    event: str | None
    id: str | None
    retry: int | None
    comments: list[str]


_specs = st.builds(
    _Spec,
    # No data lines: a block that dispatches nothing (a keep-alive, an id-only update).
    data_lines=st.lists(_line_text, max_size=4),
    event=st.none() | _line_text,
    id=st.none() | _line_text,
    retry=st.none() | st.integers(0, 10**12),
    comments=st.lists(_line_text, max_size=2),
)


def _serialise(specs: list[_Spec], data: st.DataObject) -> bytes:
    """A tiny event stream writer, written from the grammar and nothing else."""
    lines: list[str] = []
    for spec in specs:
        lines.extend(":" + comment for comment in spec.comments)
        fields = [("event", spec.event), ("id", spec.id)]
        if spec.retry is not None:
            fields.append(("retry", "0" * data.draw(st.integers(0, 2)) + str(spec.retry)))
        fields.extend(("data", line) for line in spec.data_lines)
        for name, value in fields:
            if value is None:
                continue
            # The space after the colon is optional unless the value itself starts with one.
            space = " " if value.startswith(" ") or data.draw(st.booleans()) else ""
            lines.append(f"{name}:{space}{value}")
        lines.append("")
    out = []
    previous = ""
    for line in lines:
        ends = ["\n", "\r\n", "\r"]
        if previous == "\r" and not line:
            # CR, then an empty line ended by LF, reads as one CRLF: the blank line would vanish.
            ends.remove("\n")
        previous = data.draw(st.sampled_from(ends))
        out.append(line + previous)
    bom = "\ufeff" if data.draw(st.booleans()) else ""
    return (bom + "".join(out)).encode("utf-8")


def _expected(specs: list[_Spec]) -> list[SSEEvent]:
    events = []
    last_id: str | None = None
    retry: int | None = None
    for spec in specs:
        if spec.id is not None and "\0" not in spec.id:  # an id with NUL is ignored
            last_id = spec.id
        retry = spec.retry if spec.retry is not None else retry
        if spec.data_lines:
            data = "\n".join(spec.data_lines)
            events.append(SSEEvent(data, spec.event or "message", last_id, retry))
    return events


@given(specs=st.lists(_specs, max_size=5), data=st.data())
def test_serialised_events_decode_to_themselves(specs: list[_Spec], data: st.DataObject) -> None:
    stream = _serialise(specs, data)
    chunks = data.draw(_chunked(stream=stream))
    decoder = SSEDecoder(errors="strict")
    got = [event for chunk in chunks for event in decoder.feed(chunk)]
    assert not decoder.pending
    assert got + decoder.finish() == _expected(specs)


# --- (d) line layer against decode-then-split ------------------------------------------------

_LINE_END = re.compile(r"\r\n|\r|\n")


@given(stream=_stream_bytes, data=st.data())
def test_lines_match_decode_then_split(stream: bytes, data: st.DataObject) -> None:
    text = stream.decode("utf-8", "replace").removeprefix("\ufeff")
    *expected, tail = _LINE_END.split(text)
    decoder = SSELineDecoder()
    got = [line for chunk in data.draw(_chunked(stream=stream)) for line in decoder.feed(chunk)]
    assert got == expected
    assert decoder.partial == tail
