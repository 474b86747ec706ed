"""How the original clients cut a reply body into lines, emulated byte for byte (no I/O).

Two line-reading originals matter and they disagree:

* aiohttp (AI365VIP, CodeLinkAva): ``async for line in response.content`` calls
  ``StreamReader.readline()``: a line ends *after* each ``b"\\n"`` and keeps it; ``b"\\r"`` is an
  ordinary byte; at EOF the last partial line comes out if non-empty. How the network cut the body
  never matters, except that a line longer than the reader's high-water mark (2 x ``read_bufsize``)
  makes aiohttp raise instead of returning it.
* requests (GetGpt): ``Response.iter_lines()`` runs ``bytes.splitlines()`` (``\\n``, ``\\r``
  and ``\\r\\n`` all end a line, which is dropped) over each piece ``iter_content(512)`` yields,
  keeping a piece's unterminated tail pending for the next one. So it depends on the pieces: a
  ``b"\\r"`` ending one piece and a ``b"\\n"`` starting the next give an extra empty line.

What urllib3 2.x hands requests as pieces (checked in its source, ``HTTPResponse.read_chunked``,
and pinned by tests/test_lines.py against a loopback server): with chunked transfer encoding every
HTTP chunk is read on its own and cut into slices of at most ``chunk_size`` bytes (a 1100-byte
chunk read with 512 gives 512, 512, 76, and the next chunk starts a new piece), no matter how TCP
segmented the bytes; with a Content-Length body the pieces are exactly ``chunk_size`` bytes, the
last one shorter. :func:`requests_iter_content_pieces` models both for an identity-encoded body.
"""

from __future__ import annotations

from collections.abc import Iterable

from providers.errors import MalformedReplyError

#: requests' ``ITER_CHUNK_SIZE``: the piece size ``iter_lines()`` asks ``iter_content`` for.
REQUESTS_ITER_LINES_CHUNK_SIZE = 512


def requests_iter_content_pieces(
    http_chunks: Iterable[bytes],
    chunk_size: int = REQUESTS_ITER_LINES_CHUNK_SIZE,
    *,
    chunked: bool = True,
) -> list[bytes]:
    """The pieces requests' ``iter_content(chunk_size)`` yields for a body sent as ``http_chunks``.

    With ``chunked=True`` (transfer-encoding chunked) each HTTP chunk is sliced separately; with
    ``chunked=False`` (Content-Length) the whole body is sliced. Empty pieces never occur: urllib3
    skips them (an empty HTTP chunk would end the body). Assumes no Content-Encoding.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    bodies = list(http_chunks) if chunked else [b"".join(http_chunks)]
    return [
        body[start : start + chunk_size]
        for body in bodies
        for start in range(0, len(body), chunk_size)
    ]


class AiohttpLineSplitter:
    """What ``async for line in response.content`` (aiohttp ``StreamReader.readline``) yields.

    Feed bytes as they arrive, in any cuts; :meth:`feed` returns the lines completed (each ending
    in ``b"\\n"``), :meth:`finish` the last partial line if non-empty.

    ``max_line_size`` emulates aiohttp's limit: a line (its ``b"\\n"`` included) or final partial
    line longer than this raises :class:`MalformedReplyError` where aiohttp raised (``LineTooLong``
    in aiohttp 3.14, ``ValueError`` in older versions). aiohttp's limit is twice the session's
    ``read_bufsize`` (2**16 by default up to 3.13, 2**18 from 3.14); ``None`` means no limit. The
    lines before the offending one are still returned: if some were completed by the same call,
    they are returned and the error is raised by the next call.
    """

    def __init__(self, *, max_line_size: int | None = None) -> None:
        self._max = max_line_size
        self._parts: list[bytes] = []
        self._size = 0
        self._error: str | None = None

    @property
    def partial(self) -> bytes:
        """The bytes of the line not yet ended by ``b"\\n"``."""
        return b"".join(self._parts)

    def feed(self, data: bytes) -> list[bytes]:
        """Take the next bytes; return every line they complete, in order."""
        self._raise_if_failed()
        lines: list[bytes] = []
        start = 0
        while (end := data.find(b"\n", start)) != -1:
            self._parts.append(data[start : end + 1])
            self._size += end + 1 - start
            start = end + 1
            if self._too_long():
                return self._fail(lines)
            lines.append(b"".join(self._parts))
            self._parts.clear()
            self._size = 0
        if start < len(data):
            self._parts.append(data[start:])
            self._size += len(data) - start
            if self._too_long():
                return self._fail(lines)
        return lines

    def finish(self) -> list[bytes]:
        """End of stream: the last line without ``b"\\n"``, if there is one."""
        self._raise_if_failed()
        last = self.partial
        self._parts.clear()
        self._size = 0
        return [last] if last else []

    def _too_long(self) -> bool:
        return self._max is not None and self._size > self._max

    def _fail(self, completed: list[bytes]) -> list[bytes]:
        self._error = (
            f"reply line longer than {self._max} bytes (aiohttp's readline limit); "
            f"it starts {self.partial[:60]!r}"
        )
        if not completed:
            raise MalformedReplyError(self._error)
        return completed

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise MalformedReplyError(self._error)


class RequestsLineSplitter:
    """What requests' ``Response.iter_lines()`` (``delimiter=None``) yields.

    Feed it the pieces exactly as ``iter_content(512)`` delivered them (see
    :func:`requests_iter_content_pieces`), not raw network reads: the result depends on where the
    pieces are cut. Emulates requests' algorithm: ``bytes.splitlines()`` over the pending tail plus
    the new piece; if the piece did not end with a line break the last line stays pending.
    """

    def __init__(self) -> None:
        self._pending: bytes | None = None

    @property
    def pending(self) -> bytes | None:
        """The unterminated tail carried to the next piece (``None`` when there is none)."""
        return self._pending

    def feed(self, chunk: bytes) -> list[bytes]:
        """Take the next piece; return the lines requests would yield for it."""
        if self._pending is not None:
            chunk = self._pending + chunk
        lines = chunk.splitlines()
        # requests compares the last byte of the last line with the last byte of the piece: they
        # are equal exactly when the piece does not end in a line break, so that line is unfinished.
        if lines and lines[-1] and chunk and lines[-1][-1] == chunk[-1]:
            self._pending = lines.pop()
        else:
            self._pending = None
        return lines

    def finish(self) -> list[bytes]:
        """End of stream: the pending tail, if any."""
        pending, self._pending = self._pending, None
        return [] if pending is None else [pending]
