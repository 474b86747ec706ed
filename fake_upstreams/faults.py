"""Sending a planned reply over aiohttp, faithfully or with a transport fault.

aiohttp facts this module relies on (checked against aiohttp 3.14's ``http_writer.py`` and
``web_response.py``):

- ``StreamResponse.prepare`` sends the status line and headers at once (only ``Response`` buffers
  them to coalesce with a small body). A chunked reply without a fault is framed here and sent
  in bursts (:class:`~fake_upstreams.coalesced.SelfFramedChunks`): the head, every chunk up to
  the next pause and, after the last chunk, the terminating chunk share a send, so a reply
  without delays is one send (see :mod:`fake_upstreams.coalesced` for why that is the same reply
  to every chunk-aware client). A reply aiohttp frames (Content-Length, HTTP/1.0) sends its head
  with its first chunk. A fault keeps the headers in a send of their own, since it may stop
  right after them, and then writes one chunk per send.
- With chunked encoding, every ``StreamResponse.write(data)`` hands exactly one complete chunk
  (``<hex size>\\r\\n<data>\\r\\n``) to ``transport.write``; nothing is buffered or merged across
  calls, and it only waits (drain) when more than 64 KiB are queued behind a slow reader. The socket
  has ``TCP_NODELAY``. TCP may still carry several chunks in one segment, but the chunk framing
  keeps the boundaries, and that is what chunk-aware clients see.
- ``write(b"")`` writes nothing (it does not end the body), but plans never produce empty chunks.
- Writing to a connection the client has closed raises ``ConnectionResetError``; a handler that
  lets it escape would be logged with a traceback, so this module catches it and reports
  ``"client-disconnected"``. Once a fault has closed the transport, aiohttp's own ``write_eof``
  after the handler fails with ``ConnectionError``, which aiohttp treats as a quiet disconnect.

Faults (``after_bytes`` counts body bytes, i.e. chunk payload, not framing):

=================== ==========================================================================
reset-before-headers  nothing is sent; the socket is closed with an RST (SO_LINGER 0)
reset-after           ``after_bytes`` of body, then RST (the client may lose unread data)
empty                 headers, then the zero-length terminating chunk: a complete empty body
random-bytes          ``size`` seeded random bytes instead of any HTTP response, then FIN
malformed-chunked     ``after_bytes`` of body, then a chunk whose size line is not hex, then FIN
truncate              ``after_bytes`` of body, then FIN without the terminating zero chunk
stall                 ``after_bytes`` of body, then silence for ``seconds``, then FIN (truncated)
slow-drip             the whole body one byte per chunk, ``interval`` seconds apart, then EOF
slow-close            the whole body, then ``seconds`` of silence before the terminating chunk
=================== ==========================================================================

Every wait polls for a vanished client, so a fault never outlives its client by more than
``_POLL`` seconds, and never lasts longer than its ``seconds`` (at most ``MAX_FAULT_SECONDS``).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args

from aiohttp import web
from aiohttp.http import HttpVersion11

from fake_upstreams.coalesced import BurstWriter, HeadersWithFirstChunk, SelfFramedChunks
from fake_upstreams.specdict import SpecReader

if TYPE_CHECKING:
    from fake_upstreams.reply import PlannedReply

FaultKind = Literal[
    "reset-before-headers",
    "reset-after",
    "empty",
    "random-bytes",
    "malformed-chunked",
    "truncate",
    "stall",
    "slow-drip",
    "slow-close",
]
FAULT_KINDS: tuple[FaultKind, ...] = get_args(FaultKind)
MAX_FAULT_SECONDS = 300.0
#: The most random bytes a ``random-bytes`` fault sends: far beyond any client's limit for a
#: status line or header (8 KiB to 64 KiB), and as much as a fake takes in a request body. A
#: bigger size once streamed hundreds of megabytes, or failed (2**28 bytes) inside the handler.
MAX_FAULT_BYTES = 1024 * 1024
_POLL = 0.02
_NOT_A_CHUNK = b"zz\r\nthis is not chunked framing\r\n"


@dataclass(frozen=True, slots=True)
class Fault:
    """One transport fault; which fields matter depends on ``kind`` (see the module docstring)."""

    kind: FaultKind
    after_bytes: int = 0
    seconds: float = 5.0
    interval: float = 0.01
    size: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r} (known: {', '.join(FAULT_KINDS)})")
        if self.after_bytes < 0 or self.size < 1:
            raise ValueError("fault after_bytes must be >= 0 and size >= 1")
        if self.size > MAX_FAULT_BYTES:
            raise ValueError(f"fault size must be at most {MAX_FAULT_BYTES} bytes, got {self.size}")
        for name in ("seconds", "interval"):
            value = getattr(self, name)
            if not 0.0 <= value <= MAX_FAULT_SECONDS:
                raise ValueError(f"fault {name} must be between 0 and {MAX_FAULT_SECONDS:g}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "after_bytes": self.after_bytes,
            "seconds": self.seconds,
            "interval": self.interval,
            "size": self.size,
            "seed": self.seed,
        }

    @classmethod
    def from_dict(cls, data: object) -> Fault:
        """Load ``{"kind": "truncate", "after_bytes": 10}``; a bare kind name is accepted too."""
        if isinstance(data, str):
            data = {"kind": data}
        reader = SpecReader(
            data, "fault", known=("kind", "after_bytes", "seconds", "interval", "size", "seed")
        )
        if not reader.has("kind"):
            raise ValueError(f"fault needs a 'kind' (one of: {', '.join(FAULT_KINDS)})")
        return cls(
            reader.choice("kind", "", FAULT_KINDS),  # type: ignore[arg-type]  # checked choice
            after_bytes=reader.integer("after_bytes", 0, minimum=0),
            seconds=reader.number("seconds", 5.0, maximum=MAX_FAULT_SECONDS),
            interval=reader.number("interval", 0.01, maximum=MAX_FAULT_SECONDS),
            size=reader.integer("size", 64, minimum=1),
            seed=reader.integer("seed", 0),
        )


def client_gone(request: web.BaseRequest) -> bool:
    """True once the client's connection is closed or closing."""
    transport = request.transport
    return transport is None or transport.is_closing()


async def pause(request: web.BaseRequest, seconds: float) -> bool:
    """Sleep up to ``seconds``; return False early (and at once) if the client has gone."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not client_gone(request):
        remaining = deadline - loop.time()
        if remaining <= 0:
            return True
        await asyncio.sleep(min(remaining, _POLL))
    return False


def _close(request: web.BaseRequest, *, reset: bool = False) -> None:
    """Close the connection: FIN after queued data, or an immediate RST with ``reset``."""
    transport = request.transport
    if transport is None:
        return
    if not reset:
        transport.close()
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        # SO_LINGER on with a zero timeout makes close() send RST instead of FIN.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


async def _prepare(
    request: web.BaseRequest, reply: PlannedReply, *, with_first_chunk: bool = False
) -> web.StreamResponse:
    # StreamResponse copies the headers into its own CIMultiDict: no copy of ours needed.
    if (
        with_first_chunk
        and reply.chunked
        and request.version == HttpVersion11
        and reply.chunks
        and reply.chunks[0]
    ):
        # A body to frame (plans hold no empty chunks; a status that must not carry a body has
        # none, check_sendable sees to that): the header goes where aiohttp would have put it.
        response: web.StreamResponse = SelfFramedChunks(status=reply.status, headers=reply.headers)
        response.headers["Transfer-Encoding"] = "chunked"
        await response.prepare(request)
        return response
    kind = HeadersWithFirstChunk if with_first_chunk else web.StreamResponse
    response = kind(status=reply.status, headers=reply.headers)
    if not reply.chunked:
        response.content_length = sum(len(chunk) for chunk in reply.chunks)
    elif request.version == HttpVersion11:
        response.enable_chunked_encoding()
    # else: HTTP/1.0 has no chunked encoding; aiohttp then ends the body by closing. (Other
    # versions never get here: the app answers them 505 before it reads anything else.)
    await response.prepare(request)
    return response


async def _write_chunks(
    request: web.BaseRequest,
    response: web.StreamResponse,
    reply: PlannedReply,
    limit: int | None = None,
    *,
    end: bool = False,
) -> bool:
    """One ``write`` per planned chunk, at most ``limit`` body bytes; False if the client left.

    With ``end`` the body is ended as well, and the last chunk leaves in the same send as the
    terminating zero chunk (``write_eof(last)``): nothing may happen between them. The framing is
    aiohttp's.
    """
    sent = 0
    last = len(reply.chunks) - 1
    for index, chunk in enumerate(reply.chunks):
        delay = reply.delays[index] if index < len(reply.delays) else 0.0
        if index and delay > 0 and not await pause(request, delay):
            return False
        piece = chunk if limit is None else chunk[: max(limit - sent, 0)]
        if not piece:
            break
        if end and index == last:
            await response.write_eof(piece)
            return True
        await response.write(piece)
        sent += len(piece)
    if end:
        await response.write_eof()
    return True


async def _send_bursts(
    request: web.BaseRequest, response: SelfFramedChunks, reply: PlannedReply
) -> bool:
    """The whole body, framed here, a send per pause (or per 64 KiB); False if the client left."""
    writer = BurstWriter(response)
    delays = reply.delays
    for index, chunk in enumerate(reply.chunks):
        if not chunk:
            break
        if index and index < len(delays) and delays[index] > 0:
            await writer.flush()
            if not await pause(request, delays[index]):
                return False
        if writer.add(chunk):
            await writer.flush()
    await writer.end()
    return True


async def send_reply(
    request: web.BaseRequest, reply: PlannedReply
) -> tuple[web.StreamResponse, str]:
    """Send ``reply`` (fault included); return the response and an outcome for the journal.

    Outcomes: ``"completed"``, ``"client-disconnected"``, or ``"fault:<kind>"`` once a fault ran.
    """
    # Until the headers go out, what is returned is a fresh, never-prepared response; it is made
    # only on those paths, so a normal reply builds one StreamResponse, not two.
    response: web.StreamResponse | None = None
    try:
        if reply.first_byte_delay > 0 and not await pause(request, reply.first_byte_delay):
            return web.StreamResponse(), "client-disconnected"
        fault = reply.fault
        if fault is not None and fault.kind in ("reset-before-headers", "random-bytes"):
            _before_headers(request, fault)
            return web.StreamResponse(), f"fault:{fault.kind}"
        # Without a fault nothing separates the headers from the first chunk (delays apply from
        # the second chunk on), so they can share a send; a fault may stop or stall right after
        # the headers, which must then already be out.
        response = await _prepare(request, reply, with_first_chunk=fault is None)
        if isinstance(response, SelfFramedChunks):
            if not await _send_bursts(request, response, reply):
                return response, "client-disconnected"
            return response, "completed"
        if fault is None:
            if not await _write_chunks(request, response, reply, end=True):
                return response, "client-disconnected"
            return response, "completed"
        if not await _run_fault(request, response, reply, fault):
            return response, "client-disconnected"
        return response, f"fault:{fault.kind}"
    except ConnectionError:
        return response if response is not None else web.StreamResponse(), "client-disconnected"


def _before_headers(request: web.BaseRequest, fault: Fault) -> None:
    if fault.kind == "random-bytes":
        transport = request.transport
        if transport is not None:
            transport.write(random.Random(fault.seed).randbytes(fault.size))
        _close(request)
    else:
        _close(request, reset=True)


async def _run_fault(
    request: web.BaseRequest, response: web.StreamResponse, reply: PlannedReply, fault: Fault
) -> bool:
    """The part of a fault after the headers went out; False if the client left first."""
    kind = fault.kind
    if kind == "empty":
        await response.write_eof()
        return True
    if kind == "slow-drip":
        body = b"".join(reply.chunks)
        drip = reply.with_chunks([body[i : i + 1] for i in range(len(body))], fault.interval)
        return await _write_chunks(request, response, drip, end=True)
    if kind == "slow-close":
        if not await _write_chunks(request, response, reply):
            return False
        if not await pause(request, fault.seconds):
            return False
        await response.write_eof()
        return True
    if not await _write_chunks(request, response, reply, limit=fault.after_bytes):
        return False
    if kind == "reset-after":
        _close(request, reset=True)
    elif kind == "malformed-chunked":
        transport = request.transport
        if transport is not None:
            transport.write(_NOT_A_CHUNK)
        _close(request)
    elif kind == "stall":
        if not await pause(request, fault.seconds):
            return False
        _close(request)
    else:  # truncate
        _close(request)
    return True
