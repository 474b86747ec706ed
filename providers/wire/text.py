"""Reply text decoding: a correct incremental UTF-8 decoder and the original Aivvm's piece decoding.

Both are pure (no I/O). The correct decoder carries an incomplete multi-byte character over to the
next piece, so the way the network cut the stream never changes the text. The legacy function
reproduces what the original Aivvm client did with each piece it read, including the mojibake it
produced when a character was cut in two and the crash on a malformed backslash escape.
"""

from __future__ import annotations

import codecs
import warnings

from providers.errors import MalformedReplyError, TruncatedStreamError


class Utf8StreamDecoder:
    """Correct incremental UTF-8 across chunk boundaries.

    Feed the reply body in whatever pieces it arrived; every call returns the text completed so
    far. Invalid UTF-8 raises :class:`MalformedReplyError` naming the byte offset (counted from
    the start of the stream) of the first offending byte; a stream that ends inside a character
    raises :class:`TruncatedStreamError` from :meth:`finish`, carrying the text decoded before it.
    Once an error was raised the decoder stays broken: every later call raises again.
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self._fed = 0
        self._pieces: list[str] = []
        self._broken: str | None = None

    @property
    def text(self) -> str:
        """All text decoded so far."""
        return "".join(self._pieces)

    @property
    def pending(self) -> bytes:
        """Bytes of an incomplete character held back until the next piece (at most 3)."""
        held: bytes = self._decoder.getstate()[0]
        return held

    def feed(self, data: bytes) -> str:
        """Decode the next piece of the stream; returns the text it completes (may be '')."""
        self._raise_if_broken()
        held = self.pending
        try:
            text = self._decoder.decode(data)
        except UnicodeDecodeError as exc:
            # exc.start counts from the start of held + data; held began len(held) bytes before
            # this piece, so the stream offset is the bytes fed before it minus what was held.
            offset = self._fed - len(held) + exc.start
            bad = (held + data)[exc.start : exc.end]
            self._broken = (
                f"reply is not valid UTF-8: {exc.reason} at byte offset {offset} of the stream "
                f"(bytes {bad!r})"
            )
            raise MalformedReplyError(self._broken) from exc
        self._fed += len(data)
        if text:
            self._pieces.append(text)
        return text

    def finish(self) -> str:
        """End of stream: raise :class:`TruncatedStreamError` if it ended inside a character."""
        self._raise_if_broken()
        held = self.pending
        if held:
            offset = self._fed - len(held)
            try:
                held.decode("utf-8")
            except UnicodeDecodeError as exc:
                # The incremental codec also holds back prefixes no continuation could complete
                # (b"\xed\xa0" would encode a surrogate); only a real cut is a truncation.
                if exc.reason != "unexpected end of data":
                    self._broken = (
                        f"reply is not valid UTF-8: {exc.reason} at byte offset "
                        f"{offset + exc.start} of the stream (bytes {held[exc.start : exc.end]!r})"
                    )
                    raise MalformedReplyError(self._broken) from exc
            self._broken = (
                f"reply ended inside a UTF-8 character: {len(held)} byte(s) {held!r} "
                f"at byte offset {offset} of the stream"
            )
            raise TruncatedStreamError(self._broken, partial=self.text)
        # Nothing is held, so the final decode only resets the codec's state.
        self._decoder.decode(b"", final=True)
        return ""

    def _raise_if_broken(self) -> None:
        if self._broken is not None:
            raise MalformedReplyError(f"decoder already failed: {self._broken}")


def legacy_aivvm_decode_piece(piece: bytes) -> str:
    """Decode one read piece exactly as the original Aivvm client did.

    The original tried ``piece.decode("utf-8")`` and, on ``UnicodeDecodeError``, returned
    ``piece.decode("unicode-escape")``. That fallback maps every byte >= 0x80 to the Latin-1
    character with the same number (mojibake) and also interprets backslash escapes (``\\n``,
    ``\\x41``, ``\\u0416``...). When the fallback raised as well (a malformed escape such as a lone
    trailing backslash or ``\\x4``) the original crashed; here that is a
    :class:`MalformedReplyError` chained to the codec's ``UnicodeDecodeError``.
    """
    try:
        return piece.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        # The codec warns about unknown escapes like "\q" (kept verbatim); the original's users
        # never saw that warning, and it must not turn into an error under strict warning filters.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return piece.decode("unicode-escape")
    except UnicodeDecodeError as exc:
        raise MalformedReplyError(
            f"legacy Aivvm decoding crashed: the piece is not UTF-8 and its unicode-escape "
            f"fallback failed with {exc.reason!r} at bytes {exc.start}-{exc.end} "
            f"({piece[exc.start : exc.end]!r})"
        ) from exc
