"""Server-sent events, parsed as the WHATWG HTML standard's "event stream" rules say. No I/O.

Two layers: :class:`SSELineDecoder` turns bytes into lines (LF, CRLF or a lone CR; one leading
BOM dropped; UTF-8 decoded correctly across chunk boundaries) and :class:`SSEDecoder` turns those
lines into :class:`SSEEvent` values. ``str.splitlines`` is never used: it also splits on U+2028,
U+0085, ``\\x0b`` and others, which the standard keeps inside a line.

Errors are always :class:`~providers.errors.RemoteProtocolError` subclasses: invalid UTF-8 in
``errors="strict"`` mode and a line over ``max_line_bytes`` raise ``MalformedReplyError``. After
an error the decoder is spent; start a new one for a new stream.

Example::

    >>> decoder = SSEDecoder()
    >>> decoder.feed(b"event: note\\ndata: hel")
    []
    >>> decoder.feed(b"lo\\r\\n\\r\\n")
    [SSEEvent(data='hello', event='note', id=None, retry=None)]
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from typing import Literal

from providers.errors import LocalProtocolError, MalformedReplyError, excerpt

Errors = Literal["strict", "replace"]

_BOM = b"\xef\xbb\xbf"
# Lines are split on the raw bytes, before decoding. That gives exactly the text the standard's
# decode-then-split gives: CR and LF are ASCII, a UTF-8 decoder never takes a byte below 0x80
# into a multi-byte sequence, so no line end can hide inside (or swallow) a character. Working on
# bytes keeps the line-length limit exact and decodes each line once, in C.
_LINE_END = re.compile(rb"\r\n?|\n")


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One dispatched event.

    ``event`` is the type ("message" when the stream named none), ``id`` the last event ID in
    effect at dispatch (``None`` if the stream never set one), ``retry`` the last valid ``retry``
    value seen so far in milliseconds (``None`` if none was).
    """

    data: str
    event: str = "message"
    id: str | None = None
    retry: int | None = None


class SSELineDecoder:
    """Bytes in, complete lines out (text without the line end), as the event stream grammar says.

    A CR that ends one chunk and an LF that starts the next are one line end. The unterminated
    tail is not a line: it stays in :attr:`partial`, and :meth:`finish` drops it, as the standard
    does, leaving it readable in :attr:`partial` until the next :meth:`feed`.
    """

    def __init__(self, *, errors: Errors = "replace", max_line_bytes: int = 1 << 20) -> None:
        if errors not in ("strict", "replace"):
            raise LocalProtocolError(f"errors must be 'strict' or 'replace', not {errors!r}")
        if max_line_bytes < 1:
            raise LocalProtocolError(f"max_line_bytes must be positive, not {max_line_bytes}")
        self._errors: Errors = errors
        self._max_line_bytes = max_line_bytes
        self._buffer = bytearray()
        self._at_start = True  # no line completed yet, so a BOM may still lead the stream
        self._after_cr = False  # the last byte fed was a CR: an LF next belongs to that line end
        self._dropped = ""

    def feed(self, data: bytes) -> list[str]:
        """Add bytes; return the lines they complete, in order."""
        if not data:
            return []
        self._dropped = ""
        start = 0
        if self._after_cr and data[0] == 0x0A:
            start = 1
        lines = []
        for match in _LINE_END.finditer(data, start):
            piece = data[start : match.start()]
            if self._buffer:
                self._buffer += piece
                piece = bytes(self._buffer)
                self._buffer.clear()
            lines.append(self._decode_line(piece))
            start = match.end()
        # A CR at the very end always ended a line; remember it to swallow a following LF.
        self._after_cr = data[-1] == 0x0D
        if start < len(data):
            self._buffer += data[start:]
            self._check_length(len(self._buffer))
        return lines

    def finish(self) -> list[str]:
        """End of stream: drop the unterminated tail (kept in :attr:`partial`) and reset.

        Returns the lines completed at end of stream, which is always none: a CR at the end was
        already a line end when it arrived. In ``strict`` mode a tail that is not valid UTF-8
        (e.g. cut inside a character) raises ``MalformedReplyError``.
        """
        tail = self._tail_bytes()
        self._dropped = tail.decode("utf-8", "replace")
        self._buffer.clear()
        self._at_start = True
        self._after_cr = False
        if self._errors == "strict":
            self._decode(tail)
        return []

    @property
    def partial(self) -> str:
        """The unterminated tail so far (after :meth:`finish`: the tail it dropped).

        Decoded leniently whatever the mode, so a character cut in two shows as U+FFFD.
        """
        if not self._buffer:
            return self._dropped
        return self._tail_bytes().decode("utf-8", "replace")

    @property
    def pending(self) -> bool:
        """True while part of a line (more than a lone BOM) is buffered."""
        return bool(self._buffer) and bool(self._tail_bytes())

    def _tail_bytes(self) -> bytes:
        tail = bytes(self._buffer)
        return tail[len(_BOM) :] if self._at_start and tail.startswith(_BOM) else tail

    def _decode_line(self, raw: bytes) -> str:
        self._check_length(len(raw))
        if self._at_start:
            self._at_start = False
            if raw.startswith(_BOM):
                raw = raw[len(_BOM) :]
        return self._decode(raw)

    def _decode(self, raw: bytes) -> str:
        try:
            return raw.decode("utf-8", self._errors)
        except UnicodeDecodeError as exc:
            raise MalformedReplyError(
                f"invalid UTF-8 in an event stream line at byte {exc.start} ({exc.reason}): "
                f"{excerpt(raw)!r}"
            ) from None

    def _check_length(self, size: int) -> None:
        # Checked on the buffered tail too, so a stream that never sends a line end cannot make
        # us hold more than one over-long line.
        if size > self._max_line_bytes:
            raise MalformedReplyError(
                f"event stream line of {size} bytes exceeds the limit of {self._max_line_bytes}"
            )


class SSEDecoder:
    """Incremental event stream parser: feed bytes as they arrive, get dispatched events.

    :meth:`finish` ends one connection the way an ``EventSource`` does: an event without its
    closing blank line is discarded (never dispatched), while the last event ID (as of the last
    blank line) and the retry value carry over, so feeding a reconnected stream into the same
    decoder continues correctly. Use a new decoder for an unrelated stream.
    """

    def __init__(self, *, errors: Errors = "replace", max_line_bytes: int = 1 << 20) -> None:
        self._lines = SSELineDecoder(errors=errors, max_line_bytes=max_line_bytes)
        self._data: list[str] = []  # data lines; joined with LF = the standard's data buffer
        self._event_type = ""
        self._id_buffer: str | None = None
        self._last_event_id: str | None = None
        self._retry: int | None = None

    def feed(self, data: bytes) -> list[SSEEvent]:
        """Add bytes; return the events they complete, in order."""
        return self._process(self._lines.feed(data))

    def finish(self) -> list[SSEEvent]:
        """End of stream. Returns ``[]``: a cut-off event is never dispatched (see ``pending``)."""
        try:
            return self._process(self._lines.finish())
        finally:
            self._data.clear()
            self._event_type = ""
            self._id_buffer = self._last_event_id

    @property
    def pending(self) -> bool:
        """True if the stream so far ends inside a line or inside an event with data."""
        return bool(self._data) or self._lines.pending

    @property
    def last_event_id(self) -> str | None:
        """The ID a reconnecting client sends as ``Last-Event-ID`` (as of the last blank line)."""
        return self._last_event_id

    @property
    def retry(self) -> int | None:
        """The last valid ``retry`` value seen, in milliseconds."""
        return self._retry

    def _process(self, lines: list[str]) -> list[SSEEvent]:
        events = []
        for line in lines:
            if not line:
                event = self._dispatch()
                if event is not None:
                    events.append(event)
            elif line[0] != ":":  # a leading colon marks a comment
                name, _, value = line.partition(":")
                self._field(name, value[1:] if value[:1] == " " else value)
        return events

    def _field(self, name: str, value: str) -> None:
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event_type = value
        elif name == "id":
            if "\0" not in value:
                self._id_buffer = value
        elif name == "retry" and value.isascii() and value.isdigit():
            # int() refuses more than sys.get_int_max_str_digits() digits; such a value is no
            # usable delay, so it is ignored like any other bad retry value.
            with contextlib.suppress(ValueError):
                self._retry = int(value)

    def _dispatch(self) -> SSEEvent | None:
        # The standard records the last event ID before it checks for data, so "id: x" followed
        # by a blank line changes what a reconnect sends even though no event is dispatched.
        self._last_event_id = self._id_buffer
        if not self._data:
            self._event_type = ""
            return None
        event = SSEEvent(
            "\n".join(self._data), self._event_type or "message", self._id_buffer, self._retry
        )
        self._data.clear()
        self._event_type = ""
        return event


_FIELD_NAMES = (b"data", b"event", b"id", b"retry")


def _event_stream_line(line: bytes) -> bool:
    """Blank, a comment, or a field of the event stream grammar (or its name, cut short)."""
    if not line.strip() or line.startswith(b":"):
        return True
    name = line.split(b":", 1)[0]
    return any(field.startswith(name) for field in _FIELD_NAMES)


class StreamStart:
    """The first bytes of a reply, to tell a stream cut short from a reply that never was one.

    A ``200`` carrying a JSON error or an HTML challenge page ends without ``[DONE]`` just like a
    cut stream; naming it truncation (with an empty ``partial``) would send a person looking for
    a network fault. Only the first :attr:`LIMIT` bytes are kept.
    """

    LIMIT = 512

    def __init__(self) -> None:
        self._head = bytearray()
        #: Set by the decoder once a ``data:`` line has been seen.
        self.saw_data = False

    def keep(self, data: bytes) -> None:
        room = self.LIMIT - len(self._head)
        if room > 0:
            self._head += data[:room]

    def not_an_event_stream(self, provider: str) -> MalformedReplyError | None:
        """The error to raise at end of stream if nothing in it looked like an event stream.

        Nothing at all, or only comments (keep-alives), is a stream cut short: ``None``.
        """
        if self.saw_data:
            return None
        lines = bytes(self._head).removeprefix(b"\xef\xbb\xbf").splitlines()
        if all(_event_stream_line(line) for line in lines):
            return None
        return MalformedReplyError(
            f"{provider} reply is not an event stream: it ended without a single data: line; "
            f"it began: {excerpt(bytes(self._head))!r}"
        )
