"""The replay server's HTTP side: turn a request into a lookup, and a recording into bytes.

One handler takes every method and path (on aiohttp's low-level server). The request becomes a
:class:`~cassettes.model.RecordedRequest`, the :class:`~cassettes.replay.Replayer` finds its
interaction in constant time, and the recorded response goes back with its status, reason and
headers, and its body cut exactly where it was recorded: one ``StreamResponse.write`` per
recorded chunk, each handed to the socket at once, with chunked transfer encoding so a client can
see every boundary. With a speed factor ``F > 0`` each chunk waits until its recorded arrival
offset divided by ``F`` (measured from the moment the request arrived); the headers leave with
the first chunk, as they did when recorded. ``F = 0`` never sleeps.

Framing follows the recording: a response recorded with ``Content-Length`` and without chunked
transfer encoding is replayed with a ``Content-Length`` (of the body as stored, which scrubbing
may have changed), still one write per chunk; anything else is chunked. Headers that describe
one connection rather than the response (hop-by-hop ones, ``Transfer-Encoding``,
``Content-Length``) are not copied; aiohttp sets its own. A response without a ``Content-Type``
gets aiohttp's ``application/octet-stream``.

A request that matches nothing is answered with :data:`MISS_STATUS` and a JSON body naming the
closest recorded requests and which matcher differed (see the constant for why 421).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web
from multidict import CIMultiDict

from cassettes.matchers import Candidate
from cassettes.model import RecordedRequest, RecordedResponse
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
    """One request answered: the interaction played (None on a miss), what was sent, how long."""

    number: int | None
    method: str
    path: str
    status: int
    chunks: int
    size: int
    elapsed_ms: float
    error: NoMatchingInteractionError | None = None

    def describe(self) -> str:
        """``#3 POST /api/chat -> 200, 5 chunks, 812 B, 1.2 ms`` or ``miss POST /x -> 421: ...``."""
        if self.number is None:
            reason = str(self.error).splitlines()[0] if self.error else "no match"
            return f"miss {self.method} {self.path} -> {self.status}: {reason}"
        return (
            f"#{self.number} {self.method} {self.path} -> {self.status}, {self.chunks} chunk(s), "
            f"{self.size} B, {self.elapsed_ms:.1f} ms"
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
        replayer = self.replayer
        body = await request.read()
        recorded = replayer.request_from(
            request.method, request.raw_path, request.headers.items(), body
        )
        try:
            number, playable = replayer.lookup(recorded)
        except NoMatchingInteractionError as error:
            return self._answer_miss(request, recorded, error, started)
        response = _response_for(number, playable, request)
        try:
            await _play(request, response, playable, replayer.speed, started)
        finally:
            if replayer.on_event is not None:  # nobody listening: no event to build
                event = ReplayEvent(
                    number,
                    request.method,
                    request.raw_path,
                    response.status,
                    len(playable.pieces),
                    playable.size,
                    _ms_since(started),
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
        self.replayer.record_miss(error)
        response = _miss(recorded, error, closest)
        event = ReplayEvent(
            None, request.method, request.raw_path, response.status, 0, 0, _ms_since(started), error
        )
        self.replayer.emit(event)
        return response


def _response_for(number: int, playable: Playable, request: web.BaseRequest) -> web.StreamResponse:
    response = web.StreamResponse(
        status=playable.status, reason=playable.reason, headers=CIMultiDict(playable.headers)
    )
    response.headers[INTERACTION_HEADER] = str(number)
    if request.method == "HEAD" and not playable.pieces:
        response.content_length = playable.recorded_length or 0
    elif playable.length_framed or request.version < (1, 1):
        response.content_length = playable.size
    else:
        response.enable_chunked_encoding()
    return response


async def _play(
    request: web.BaseRequest,
    response: web.StreamResponse,
    playable: Playable,
    speed: float,
    started: float,
) -> None:
    try:
        for piece, offset in zip(playable.pieces, playable.offsets_s, strict=True):
            if speed > 0:
                delay = started + offset / speed - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            if not response.prepared:
                await response.prepare(request)
            await response.write(piece)
        if not response.prepared:
            await response.prepare(request)
        await response.write_eof()
    except ConnectionResetError:
        pass  # the client hung up mid-reply; nothing is left to send it


def _miss(
    request: RecordedRequest, error: NoMatchingInteractionError, closest: list[Candidate]
) -> web.Response:
    used_up = bool(closest) and not closest[0].differences
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
