"""Fewer sends for the same reply: what leaves together on the wire, and why that is faithful.

aiohttp's ``StreamResponse`` sends the status line and headers in ``prepare`` and then one send per
``write``: a reply of n chunks costs n + 2 sends (headers, chunks, terminating chunk), and each
send on loopback is a system call plus a wake-up of the reader. For short replies those sends are
most of a fake's cost (``tapedeck bench``'s short-reply rows).

Chunk boundaries live in the HTTP chunked framing (``<hex size>\r\n<data>\r\n``), not in how
the bytes are split into sends: chunk-aware clients (requests' ``iter_content``, which reads one
HTTP chunk at a time through urllib3; aiohttp's ``readchunk``/``iter_chunks``; the recording
proxy) see the same chunks however TCP carries them, and TCP may merge sends anyway. So where
nothing may happen between two chunks (no pause), they can leave in one send:

- :class:`HeadersWithFirstChunk` holds the headers back until the first body write (or
  ``write_eof``), for a reply aiohttp frames itself (a Content-Length body, an HTTP/1.0 client).
- :class:`SelfFramedChunks` frames the chunks itself, so that a burst of chunks with no pause
  between them (the whole reply, when the script has no delays) leaves in one send of at most
  :data:`SEND_BYTES`, headers and terminating chunk included, with the very same bytes aiohttp's
  chunked writer would produce. A client that reads the raw socket, or aiohttp's ``iter_any``,
  may now see such chunks merged; a pause between chunks (``chunk_delay``) still makes them leave
  apart.

Both rest on private class attributes of aiohttp's ``StreamResponse``:
``_send_headers_immediately`` (aiohttp's ``Response`` uses it to coalesce headers with a small
body) and ``_length_check`` (``WebSocketResponse`` turns it off so aiohttp neither adds a
Content-Length nor frames the body). If a future aiohttp dropped the first, the headers would
merely leave on their own again; if it dropped the second, the body would be framed twice, which
the byte-exact tests in tests/test_fake_app_generic.py would catch at once (aiohttp is pinned).
"""

from __future__ import annotations

from aiohttp import web


class HeadersWithFirstChunk(web.StreamResponse):
    """Send the headers together with the first body write (or with ``write_eof``)."""

    _send_headers_immediately = False


#: The most bytes one burst hands to the transport in one send: aiohttp's own drain threshold, so
#: a slow reader still holds a long reply back (``write`` waits once this much is queued).
SEND_BYTES = 64 * 1024
_LAST_CHUNK = b"0\r\n\r\n"


class SelfFramedChunks(HeadersWithFirstChunk):
    """A chunked reply whose framing the caller writes, through a :class:`BurstWriter`.

    Make it with ``Transfer-Encoding: chunked`` among its headers (aiohttp will not add it), and
    only for an HTTP/1.1 request and a reply that may carry a body (not to HEAD, not 1xx, 204,
    304, nor a 2xx to CONNECT: aiohttp drops the framing header there, the body still going out).
    """

    _length_check = False


def frame(chunk: bytes) -> bytes:
    """One HTTP chunk, exactly as aiohttp's chunked writer frames it."""
    return b"%x\r\n%b\r\n" % (len(chunk), chunk)


class BurstWriter:
    """Collects framed chunks and hands them to a :class:`SelfFramedChunks` in as few sends as fit.

    ``add`` queues a chunk and says when a send's worth is queued, ``flush`` sends what is queued
    (then, and before a pause), ``end`` sends the rest with the terminating chunk. A vanished
    client surfaces as ``ConnectionError`` from the send, as with ``StreamResponse.write``.
    """

    __slots__ = ("_pending", "_queued", "_response")

    def __init__(self, response: SelfFramedChunks) -> None:
        self._response = response
        self._pending: list[bytes] = []
        self._queued = 0

    def add(self, chunk: bytes) -> bool:
        """Queue ``chunk``; True once :data:`SEND_BYTES` are queued (time to ``flush``)."""
        framed = frame(chunk)
        self._pending.append(framed)
        self._queued += len(framed)
        return self._queued >= SEND_BYTES

    async def flush(self) -> None:
        if self._pending:
            burst = b"".join(self._pending)
            self._pending.clear()
            self._queued = 0
            await self._response.write(burst)

    async def end(self) -> None:
        self._pending.append(_LAST_CHUNK)
        burst = b"".join(self._pending)
        self._pending.clear()
        self._queued = 0
        await self._response.write_eof(burst)
