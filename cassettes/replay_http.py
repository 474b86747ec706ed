"""The replay server's HTTP side: turn a request into a lookup, and a recording into bytes.

One handler takes every method and path (on aiohttp's low-level server). The request becomes a
:class:`~cassettes.model.RecordedRequest`, the :class:`~cassettes.replay.Replayer` finds its
interaction in constant time, and the recorded response goes back with its status, reason and
headers, and its body cut exactly where it was recorded, with chunked transfer encoding so a
client can see every boundary. With a speed factor ``F > 0`` each chunk waits until its recorded
arrival offset divided by ``F`` (measured from the moment the request arrived), one
``StreamResponse.write`` per chunk; the headers leave with the first chunk, as they did when
recorded. ``F = 0`` never sleeps, so the whole reply is framed here and leaves in as few sends
as fit (:mod:`fake_upstreams.coalesced`): the same bytes and chunk framing, and ~12% less time
per request for a requests client (an interleaved A/B of 1,000-interaction replays, 0.70 against
0.80 ms), since neither side makes a system call per chunk.

Framing follows the recording: a response recorded with ``Content-Length`` and without chunked
transfer encoding is replayed with a ``Content-Length`` (of the body as stored, which scrubbing
may have changed), one write per chunk; anything else is chunked. Headers that describe
one connection rather than the response (hop-by-hop ones, ``Transfer-Encoding``,
``Content-Length``) are not copied; aiohttp sets its own. A response without a ``Content-Type``
gets aiohttp's ``application/octet-stream``.

A request that matches nothing is answered with :data:`MISS_STATUS` and a JSON body naming the
closest recorded requests and which matcher differed (see the constant for why 421).

A reply counts as played whole only once ``write_eof`` returned. One cut short (the client hung
up, or the server stopped before the last recorded chunk) is counted by the replayer
(:meth:`~cassettes.replay.Replayer.record_cut`) and its event says after how many chunks.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.http import HttpVersion11
from multidict import CIMultiDict

from cassettes.matchers import Candidate
from cassettes.model import RecordedRequest, RecordedResponse
from fake_upstreams.coalesced import BurstWriter, SelfFramedChunks
from fake_upstreams.lifecycle import SPOKEN_VERSIONS, version_not_supported
from providers.errors import NoMatchingInteractionError

if TYPE_CHECKING:
    from cassettes.replay import Replayer

#: Status of the answer to a request no recording matches. A 4xx, so no client retries it or
#: mistakes it for a server fault; 421 "Misdirected Request" because its meaning fits ("this
#: server cannot produce a response for this request") and because none of the recorded
#: upstreams ever sent it: a test that expects a recorded 403 or 404 cannot pass on a miss.
MISS_STATUS = 421
#: Response header saying which interaction answered (its number), or ``miss``.
INTERACTION_HEADER = "X-Tapedeck-Interaction"
_NOT_COPIED = frozenset(
    {"connection", "keep-alive", "proxy-connection", "proxy-authenticate", "te", "trailer"}
    | {"transfer-encoding", "upgrade", "content-length"}
)


@dataclass(frozen=True, slots=True)
class Playable:
    """A recorded response ready to send: filtered headers and the body cut into chunks."""

    status: int
    reason: str | None
    headers: tuple[tuple[str, str], ...]
    pieces: tuple[bytes, ...]
    offsets_s: tuple[float, ...]
    length_framed: bool
    #: The recorded Content-Length, kept for HEAD, whose answer states the length of a body it
    #: does not carry.
    recorded_length: int | None

    @classmethod
    def of(cls, response: RecordedResponse) -> Playable:
        """Prepare ``response`` once; every replay of it reuses the result."""
        headers = tuple(
            (name, value)
            for name, values in response.headers.items()
            if name.lower() not in _NOT_COPIED
            for value in values
        )
        chunked = "chunked" in (response.header("transfer-encoding") or "").lower()
        length = (response.header("content-length") or "").strip()
        reason = response.reason if response.reason and response.reason.isprintable() else None
        return cls(
            status=response.status,
            reason=reason,
            headers=headers,
            pieces=tuple(response.chunk_bytes()),
            offsets_s=tuple(offset / 1000.0 for offset in response.plan.offsets_ms),
            length_framed=response.header("content-length") is not None and not chunked,
            recorded_length=int(length) if length.isdigit() else None,
        )

    @property
    def size(self) -> int:
        """Body bytes."""
        return sum(map(len, self.pieces))


@dataclass(frozen=True, slots=True)
class ReplayEvent:
    """One request answered: the interaction played (None on a miss), what was sent, how long.

    ``chunks`` and ``size`` are the recording's; ``cut_after`` is None when the reply went out
    whole, else how many chunks (``cut_bytes`` bytes) were sent before it was cut. A miss has its
    ``error`` and the ``closest`` recordings, and ``already_played`` when the request matched
    recordings that were all played already.
    """

    number: int | None
    method: str
    path: str
    status: int
    chunks: int
    size: int
    elapsed_ms: float
    error: NoMatchingInteractionError | None = None
    cut_after: int | None = None
    cut_bytes: int = 0
    closest: tuple[Candidate, ...] = ()
    already_played: bool = False

    def describe(self) -> str:
        """One line: ``#3 POST /api/chat -> 200, 5 chunk(s), 812 B, 1.2 ms``, ``#3 ... -> 200,
        cut after 2 of 5 chunk(s) (90 of 812 B), 1.2 ms`` or ``miss POST /x -> 421: why``."""
        if self.number is None:
            return f"miss {self.method} {self.path} -> {self.status}: {self._why_missed()}"
        if self.cut_after is None:
            sent = f"{self.chunks} chunk(s), {self.size} B"
        else:
            sent = (
                f"cut after {self.cut_after} of {self.chunks} chunk(s) "
                f"({self.cut_bytes} of {self.size} B)"
            )
        return (
            f"#{self.number} {self.method} {self.path} -> {self.status}, {sent}, "
            f"{self.elapsed_ms:.1f} ms"
        )

    def _why_missed(self) -> str:
        # The error's message lists the closest recordings on lines of their own, which a log
        # line cannot hold: it keeps the nearest one and how it differs.
        if self.error is None:
            return "no match"
        head, *rest = str(self.error).splitlines() or ["no match"]
        if not rest:
            return head
        if not self.closest:
            return " ".join([head, *(" ".join(line.split()) for line in rest)])
        nearest = self.closest[0]
        differences = "; ".join(d.describe() for d in nearest.differences) or "same key"
        more = len(self.closest) - 1
        return (
            f"{head} #{nearest.index} {nearest.request.method} {nearest.request.uri} "
            f"({differences})" + (f", and {more} more in the {self.status} answer" if more else "")
        )


#: aiohttp's request-handler options for the replay server: recorded header values can be
#: longer than aiohttp's 8 KiB default.
HANDLER_ARGS = {"max_field_size": 65536}


def make_handler(replayer: Replayer) -> Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]:
    """The one request handler answering every method and path from ``replayer``.

    Served on aiohttp's low-level server (no Application): with a single handler for
    everything, the router, match info and middleware chain would be work on every request
    that decides nothing.
    """
    return _Handler(replayer).handle


class _Handler:
    def __init__(self, replayer: Replayer) -> None:
        self.replayer = replayer

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        started = time.perf_counter()
        unspoken = version_not_supported_answer(request, "the replay server")
        if unspoken is not None:
            return unspoken
        replayer = self.replayer
        body = await request.read()
        recorded = replayer.request_from(
            request.method, request.raw_path, request.headers.items(), body
        )
        try:
            number, playable = replayer.lookup(recorded)
        except NoMatchingInteractionError as error:
            return self._answer_miss(request, recorded, error, started)
        speed = replayer.speed
        response = _response_for(number, playable, request, bursts=speed == 0)
        # Played here rather than in a function of its own, so that the finally clause sees how
        # far a reply got when it is cancelled (a client hanging up, the server stopping).
        sent = 0  # chunks handed to the transport
        whole = False  # true once write_eof returned
        try:
            if isinstance(response, SelfFramedChunks):
                await response.prepare(request)
                writer = BurstWriter(response)
                for queued, piece in enumerate(playable.pieces, 1):
                    if writer.add(piece):
                        await writer.flush()
                        sent = queued
                await writer.end()
            else:
                for piece, offset in zip(playable.pieces, playable.offsets_s, strict=True):
                    if speed > 0:
                        delay = started + offset / speed - time.perf_counter()
                        if delay > 0:
                            await asyncio.sleep(delay)
                    if not response.prepared:
                        await response.prepare(request)
                    await response.write(piece)
                    sent += 1
                if not response.prepared:
                    await response.prepare(request)
                await response.write_eof()
            whole = True
        except ConnectionResetError:
            pass  # the client hung up mid-reply; nothing is left to send it
        finally:
            if not whole:
                replayer.record_cut()
            if replayer.on_event is not None:  # nobody listening: no event to build
                event = ReplayEvent(
                    number,
                    request.method,
                    request.raw_path,
                    response.status,
                    len(playable.pieces),
                    playable.size,
                    _ms_since(started),
                    cut_after=None if whole else sent,
                    cut_bytes=0 if whole else sum(map(len, playable.pieces[:sent])),
                )
                replayer.emit(event)
        # aiohttp calls prepare() and write_eof() on what a handler returns: both do nothing on
        # this response, which has already been sent.
        return response

    def _answer_miss(
        self,
        request: web.BaseRequest,
        recorded: RecordedRequest,
        error: NoMatchingInteractionError,
        started: float,
    ) -> web.Response:
        closest = self.replayer.closest(recorded)
        if not error.candidates:  # keep the closest recordings as data for the test
            described = [candidate.describe() for candidate in closest]
            error = NoMatchingInteractionError(str(error), candidates=described)
        # The key matched, so the nearest recording differs in nothing: it was played already.
        used_up = bool(closest) and not closest[0].differences
        self.replayer.record_miss(error, already_played=used_up)
        response = _miss(recorded, error, closest, used_up=used_up)
        event = ReplayEvent(
            None,
            request.method,
            request.raw_path,
            response.status,
            0,
            0,
            _ms_since(started),
            error,
            closest=tuple(closest),
            already_played=used_up,
        )
        self.replayer.emit(event)
        return response


def _response_for(
    number: int, playable: Playable, request: web.BaseRequest, *, bursts: bool
) -> web.StreamResponse:
    """The response to fill; a :class:`SelfFramedChunks` with ``bursts`` where it can be one."""
    chunked = request.version == HttpVersion11 and not playable.length_framed
    headers = CIMultiDict(playable.headers)
    headers[INTERACTION_HEADER] = str(number)
    if bursts and chunked and playable.pieces and _may_carry_a_body(request.method, playable):
        # Where aiohttp would have put it: after every header the response was given.
        headers["Transfer-Encoding"] = "chunked"
        return SelfFramedChunks(status=playable.status, reason=playable.reason, headers=headers)
    response = web.StreamResponse(status=playable.status, reason=playable.reason, headers=headers)
    if request.method == "HEAD" and not playable.pieces:
        response.content_length = playable.recorded_length or 0
    elif not chunked:
        response.content_length = playable.size
    else:
        response.enable_chunked_encoding()
    return response


def _may_carry_a_body(method: str, playable: Playable) -> bool:
    """False where HTTP forbids a body (RFC 9110: HEAD, 1xx, 204, 304, a 2xx to CONNECT), as
    aiohttp decides it (it then drops the body and the framing headers)."""
    status = playable.status
    if method == "HEAD" or status < 200 or status in (204, 304):
        return False
    return not (method == "CONNECT" and status < 300)


def version_not_supported_answer(request: web.BaseRequest, server: str) -> web.Response | None:
    """The JSON 505 for a request of an HTTP version ``server`` does not speak, else None."""
    if request.version in SPOKEN_VERSIONS:
        return None
    error = version_not_supported(request, server)
    response = web.json_response(error.to_json(), status=error.status)
    response.force_close()  # what follows on the connection is in a protocol we do not speak
    return response


def _miss(
    request: RecordedRequest,
    error: NoMatchingInteractionError,
    closest: list[Candidate],
    *,
    used_up: bool,
) -> web.Response:
    document = {
        "error": {
            "code": "interaction_already_played" if used_up else "no_matching_interaction",
            "message": str(error),
            "request": f"{request.method} {request.uri}",
            "closest": [
                {
                    "interaction": candidate.index,
                    "method": candidate.request.method,
                    "uri": candidate.request.uri,
                    "differed": list(candidate.differed),
                    "differences": [difference.describe() for difference in candidate.differences],
                }
                for candidate in closest
            ],
        }
    }
    return web.json_response(
        document, status=MISS_STATUS, headers={INTERACTION_HEADER: "miss"}, dumps=_dumps
    )


def _dumps(value: object) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0
