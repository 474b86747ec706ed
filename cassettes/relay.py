"""Relaying one upstream response to the client as it arrives, and teeing it for the cassette.

The proxy writes each chunk to the client the moment it has it: one ``StreamResponse.write``
(one HTTP chunk, flushed) per chunk the upstream sent, so recording adds no delay beyond one
loopback hop.

**Chunk boundaries.** aiohttp's body reader hands out data as it comes off the socket, and says
``end_of_http_chunk`` where an HTTP chunk of a chunked body ends. A chunk is usually one piece,
but a large one, or one split across TCP segments, can come in several. The proxy keeps such
pieces until the chunk's end and then writes them together: the client and the cassette see
exactly the chunks the upstream wrote, at the cost of holding back the front of a chunk until
its end arrived (which the upstream sent in the same write, so the wait is short). A body that
is not chunked (``Content-Length``, or ended by closing) has no boundaries to keep: every piece
is relayed and recorded as it was read.

**Cuts.** When the upstream's body breaks off (connection closed or reset before the end,
broken chunked framing, no bytes for ``read_timeout`` seconds), the client gets every byte that
arrived, including an unfinished chunk, and then its connection is closed without the final
chunk, so its HTTP library reports a truncated body just as it would have talking to the
upstream. The interaction is *not* recorded: a cassette cannot express a cut (a replay would
serve the partial body as complete, which is a different, wrong answer), and the previous
cassette stays as it was.

**Clients that hang up.** A client may close its connection before the body ends (an adapter
stops reading at ``[DONE]``, before the final empty chunk). The relay goes on reading the
upstream into the tee, and the complete response is recorded: the cassette is about what the
upstream sent, not about how much of it the client wanted.

aiohttp 3.14 closes a connection on malformed chunked framing without failing the body reader,
so every wait for data is bounded by a short poll that notices a dead connection (as in
:mod:`providers.transport`).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from aiohttp.http import HttpVersion11

from cassettes.http_headers import decode_pairs, recorded_response_headers, relayed_response_headers
from cassettes.model import RecordedResponse
from cassettes.tee import ChunkTee

_POLL = 0.25


@dataclass(frozen=True, slots=True)
class RelaySettings:
    """Where request URIs are recorded as going, and how long to wait for the upstream."""

    record_base: str
    connect_timeout: float = 10.0
    head_timeout: float = 300.0
    read_timeout: float = 300.0


@dataclass(frozen=True, slots=True)
class RelayOutcome:
    """The response sent to the client; ``cut`` says how the upstream body broke off ("" if it
    did not), ``client_gone`` that the client hung up before the end."""

    response: web.StreamResponse
    cut: str = ""
    client_gone: bool = False


def recorded_response(upstream: aiohttp.ClientResponse, tee: ChunkTee) -> RecordedResponse:
    """The upstream's response as the cassette keeps it: its status and headers, the tee's body."""
    headers = recorded_response_headers(decode_pairs(upstream.raw_headers))
    return tee.response(upstream.status, upstream.reason or "", headers)


class _Cut(Exception):
    """The upstream body broke off; the message says how."""


async def relay(
    request: web.Request,
    upstream: aiohttp.ClientResponse,
    tee: ChunkTee,
    settings: RelaySettings,
) -> RelayOutcome:
    """Send ``upstream``'s status, headers and body to the client, teeing the body into ``tee``.

    ``tee.complete`` turns true once the upstream body ended normally. A client that hangs up
    early does not stop the relay: the rest of the body is still read into the tee, so the
    recording is of the whole response the upstream gave (the proxy's server runs without
    handler cancellation for this).
    """
    response = web.StreamResponse(status=upstream.status, reason=upstream.reason or None)
    for name, value in relayed_response_headers(decode_pairs(upstream.raw_headers)):
        response.headers.add(name, value)
    chunked = "chunked" in upstream.headers.get("Transfer-Encoding", "").lower()
    if chunked and request.version >= HttpVersion11:
        response.enable_chunked_encoding()
    elif upstream.content_length is not None:
        response.content_length = upstream.content_length
    client = _Client(response)
    await client.prepare(request)
    pending: list[bytes] = []
    try:
        async for data, end_of_chunk in _PieceIterator(upstream, settings.read_timeout):
            pending.append(data)
            if chunked and not end_of_chunk:
                continue  # the rest of this HTTP chunk is on its way
            await client.send(tee, pending)
    except _Cut as cut:
        await client.send(tee, pending)  # forward what arrived, whole chunks or not
        _close_client(request)
        return RelayOutcome(response, cut=str(cut), client_gone=client.gone)
    await client.send(tee, pending)
    tee.complete = True
    await client.finish()
    return RelayOutcome(response, client_gone=client.gone)


class _Client:
    """The client side of a relay; once a write fails, the rest is only teed."""

    def __init__(self, response: web.StreamResponse) -> None:
        self.response = response
        self.gone = False

    async def prepare(self, request: web.Request) -> None:
        try:
            await self.response.prepare(request)
        except ConnectionError:
            self.gone = True

    async def send(self, tee: ChunkTee, pending: list[bytes]) -> None:
        """Tee and write the pending pieces as one chunk."""
        if not pending:
            return
        piece = pending[0] if len(pending) == 1 else b"".join(pending)
        pending.clear()
        if not piece:
            return
        tee.add(piece)
        if not self.gone:
            try:
                await self.response.write(piece)
            except ConnectionError:
                self.gone = True

    async def finish(self) -> None:
        if not self.gone:
            try:
                await self.response.write_eof()
            except ConnectionError:
                self.gone = True


class _PieceIterator:
    """``(data, end_of_http_chunk)`` from the body reader, raising :class:`_Cut` on a break."""

    def __init__(self, upstream: aiohttp.ClientResponse, read_timeout: float) -> None:
        self._upstream = upstream
        self._reader = upstream.content
        self._read_timeout = read_timeout
        self._last_data = time.monotonic()
        # Set once the connection is found closed before the end of the body: what is still
        # buffered is read without waiting (it may be the whole rest, racing the check), and
        # the first wait after that is the cut.
        self._closed_early = False

    def __aiter__(self) -> _PieceIterator:
        return self

    async def __anext__(self) -> tuple[bytes, bool]:
        while True:
            try:
                async with asyncio.timeout(0 if self._closed_early else _POLL):
                    data, end_of_chunk = await self._reader.readchunk()
            except TimeoutError:
                if self._closed_early:
                    message = "the upstream closed the connection mid-body (broken framing?)"
                    raise _Cut(message) from None
                self._check_alive()
                continue
            except aiohttp.ClientPayloadError as error:
                raise _Cut(f"the upstream body broke off: {error}") from None
            except (aiohttp.ClientError, OSError) as error:
                raise _Cut(f"the upstream connection failed: {type(error).__name__}") from None
            except RuntimeError as error:  # aiohttp says "Connection closed." this way
                if not self._connection_gone():
                    raise
                raise _Cut(f"the upstream connection closed: {error}") from None
            if not data and not end_of_chunk:
                raise StopAsyncIteration
            if data:
                self._last_data = time.monotonic()
            return data, end_of_chunk

    def _check_alive(self) -> None:
        if self._reader.is_eof():
            return  # the body ended; the next read returns what is left, then the end
        if self._connection_gone():
            self._closed_early = True
        elif time.monotonic() - self._last_data > self._read_timeout:
            raise _Cut(f"no bytes from the upstream for {self._read_timeout:g} s")

    def _connection_gone(self) -> bool:
        connection = self._upstream.connection
        transport = None if connection is None else connection.transport
        return transport is None or transport.is_closing()


def _close_client(request: web.Request) -> None:
    # FIN after the queued bytes, without the terminating chunk: a truncated body for the client.
    transport = request.transport
    if transport is not None:
        transport.close()
