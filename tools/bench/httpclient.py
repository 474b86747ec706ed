"""A lean keep-alive HTTP/1.1 client for load generation, on a bare asyncio ``Protocol``.

Why not aiohttp or requests: a benchmark client must cost less per unit than the server it
measures, or both subjects run at the client's speed and every ratio reads 1.0. This client sends
pre-built request bytes and parses only what it must (status, Content-Length or chunked framing),
counting chunk payloads without copying them unless asked to keep them. Both the fake and the
baseline are measured with it, so its own cost is the same on both sides.

Problems are raised as Tapedeck's transport errors: :class:`StreamResetError` for a dropped
connection or broken framing, :class:`UpstreamTimeoutError` for a deadline.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from providers.errors import StreamResetError, UpstreamTimeoutError

_HEAD_END = b"\r\n\r\n"
_CRLF = b"\r\n"
_MAX_HEAD = 64 * 1024


@dataclass
class Reply:
    """One response. ``chunks`` (and ``body``) are filled only when the caller keeps them."""

    status: int = 0
    head: bytes = b""
    #: ``time.perf_counter()`` when the response head was complete (time to first byte).
    head_at: float = 0.0
    chunk_count: int = 0
    body_bytes: int = 0
    chunks: list[bytes] = field(default_factory=list)

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)


class _Parser:
    """Incremental response parser: head, then chunked or Content-Length body."""

    def __init__(self, keep: bool) -> None:
        self.reply = Reply()
        self._keep = keep
        self._buffer = bytearray()
        self._state = "head"  # head | size | data | data-crlf | trailer | length | done
        self._remaining = 0
        self._current = bytearray()

    def feed(self, data: bytes) -> bool:
        """Consume ``data``; True once the response is complete."""
        buffer = self._buffer
        buffer += data
        position = 0
        while True:
            state = self._state
            if state in ("data", "length"):
                if position == len(buffer):
                    break
                position = self._body(buffer, position)
            elif state == "head":
                end = buffer.find(_HEAD_END)
                if end < 0:
                    if len(buffer) > _MAX_HEAD:
                        raise StreamResetError("response head larger than 64 KiB")
                    break
                self._head(bytes(buffer[: end + 4]))
                position = end + 4
            elif state == "done":
                if position < len(buffer):
                    raise StreamResetError("bytes after the end of the response")
                break
            else:  # size, data-crlf, trailer: one line each
                end = buffer.find(_CRLF, position)
                if end < 0:
                    break
                self._line(state, bytes(buffer[position:end]))
                position = end + 2
        del buffer[:position]
        return self._state == "done"

    def _body(self, buffer: bytearray, position: int) -> int:
        """Take what is available of the current chunk (or sized body); the new position."""
        take = min(len(buffer) - position, self._remaining)
        if self._keep:
            # A chunk may arrive over several reads: collect it whole.
            self._current += buffer[position : position + take]
        self.reply.body_bytes += take
        self._remaining -= take
        if not self._remaining:
            if self._keep:
                self.reply.chunks.append(bytes(self._current))
                self._current.clear()
            self._state = "data-crlf" if self._state == "data" else "done"
        return position + take

    def _line(self, state: str, line: bytes) -> None:
        if state == "data-crlf":
            if line:
                raise StreamResetError("chunk data is not followed by CRLF")
            self._state = "size"
        elif state == "trailer":
            if not line:
                self._state = "done"
        else:
            try:
                size = int(line.split(b";", 1)[0], 16)
            except ValueError:
                raise StreamResetError(f"bad chunk size line {line[:40]!r}") from None
            if size:
                self.reply.chunk_count += 1
                self._remaining = size
                self._state = "data"
            else:
                self._state = "trailer"

    def _head(self, head: bytes) -> None:
        self.reply.head = head
        self.reply.head_at = time.perf_counter()
        lines = head.split(_CRLF)
        try:
            self.reply.status = int(lines[0].split(b" ", 2)[1])
        except (IndexError, ValueError):
            raise StreamResetError(f"bad status line {lines[0][:60]!r}") from None
        length: int | None = None
        chunked = False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            lowered = name.strip().lower()
            if lowered == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif lowered == b"content-length":
                length = int(value.strip())
        if chunked:
            self._state = "size"
        elif length is not None:
            self._remaining = length
            self._state = "length" if length else "done"
        else:
            raise StreamResetError("response is neither chunked nor sized (close-delimited)")


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser: _Parser | None = None
        self.waiter: asyncio.Future[Reply] | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        parser, waiter = self.parser, self.waiter
        if parser is None or waiter is None or waiter.done():
            self._fail(StreamResetError("the server sent bytes nobody asked for"))
            return
        try:
            complete = parser.feed(data)
        except StreamResetError as error:
            self._fail(error)
            return
        if complete:
            self.parser = None
            waiter.set_result(parser.reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._fail(StreamResetError(f"connection closed mid-response ({exc or 'EOF'})"))

    def _fail(self, error: StreamResetError) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(error)
        if self.transport is not None:
            self.transport.close()


class Connection:
    """One keep-alive connection; one request at a time."""

    def __init__(self, protocol: _Protocol) -> None:
        self._protocol = protocol

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(_Protocol, host, port)
        return cls(protocol)

    @property
    def usable(self) -> bool:
        return not self._protocol.lost

    async def request(self, data: bytes, *, keep: bool = False, within: float = 60.0) -> Reply:
        """Send ``data`` (a whole request) and wait up to ``within`` seconds for the reply."""
        protocol = self._protocol
        if protocol.lost or protocol.transport is None:
            raise StreamResetError("connection already closed")
        loop = asyncio.get_running_loop()
        protocol.parser = _Parser(keep)
        waiter: asyncio.Future[Reply] = loop.create_future()
        protocol.waiter = waiter
        protocol.transport.write(data)
        # A bare timer instead of asyncio.wait_for: cheaper per request, and the client's cost
        # per request is what limits how hard it can push a server.
        timer = loop.call_later(within, _expire, waiter, within)
        try:
            return await waiter
        except UpstreamTimeoutError:
            self.close()
            raise
        finally:
            timer.cancel()

    def close(self) -> None:
        if self._protocol.transport is not None:
            self._protocol.transport.close()


def _expire(waiter: asyncio.Future[Reply], timeout: float) -> None:
    if not waiter.done():
        waiter.set_exception(UpstreamTimeoutError(f"no complete reply within {timeout:g} s"))


def encode_request(
    method: str,
    path: str,
    headers: Sequence[tuple[str, str]],
    body: bytes,
    *,
    content_type: str | None = None,
) -> bytes:
    """Request bytes: these headers in this order, then Host and Content-Length (and the type).

    A Content-Length already among ``headers`` (Aivvm's original sent its own) is kept as is.
    """
    lines = [f"{method} {path} HTTP/1.1"]
    lines += [f"{name}: {value}" for name, value in headers]
    lines.append("Host: 127.0.0.1")
    if not any(name.lower() == "content-length" for name, _ in headers):
        lines.append(f"Content-Length: {len(body)}")
    if content_type is not None:
        lines.append(f"Content-Type: {content_type}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
