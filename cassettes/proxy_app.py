"""The recording proxy's aiohttp app: one handler for every method and path.

Each request is read whole (request bodies are small JSON), then, as the session's
:class:`~cassettes.recorder.Recorder` decides, replayed from the cassette (one write per
recorded chunk, as fast as possible: the full replay server is :mod:`cassettes.replay`),
refused, or forwarded. A forwarded request's response is relayed by :func:`cassettes.relay.relay`
as it arrives, chunk by chunk, and recorded once it completed; the cassette's write is queued,
never awaited, so the next request on a keep-alive connection does not wait for the disk.

Errors the client gets from the proxy itself, all JSON ``{"error": {"code", "message"}}``, with
a message naming the target; nothing is recorded for them:

- 502 ``upstream_unreachable``: the target could not be reached (refused, unresolvable);
- 502 ``upstream_bad_response``: it closed the connection, or sent something that is not an
  HTTP response head;
- 504 ``upstream_timeout``: it sent no response head in time;
- 409 ``record_mode_<mode>``: no recording matches and the mode does not record;
- 505 ``http_version_not_supported``: a request line of another version than HTTP/1.1 or 1.0.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp import web

from cassettes.http_headers import (
    decode_pairs,
    forwarded_request_headers,
    recorded_request_headers,
    replay_headers,
)
from cassettes.model import Interaction, RecordedRequest
from cassettes.recorder import Event, EventKind, Recorder
from cassettes.relay import RelaySettings, recorded_response, relay
from cassettes.replay_http import version_not_supported_answer
from cassettes.scrub import scrub_request
from cassettes.tee import ChunkTee

__all__ = ["MAX_REQUEST_BODY", "PROXY_KEY", "ProxyState", "make_proxy_app"]

#: Request bodies up to this size are accepted (aiohttp's default is 1 MiB).
MAX_REQUEST_BODY = 64 * 1024 * 1024


class ProxyState:
    """What every handler of one proxy shares."""

    def __init__(self, recorder: Recorder, target: str, settings: RelaySettings) -> None:
        self.recorder = recorder
        self.target = target.rstrip("/")
        self.settings = settings
        self.session: aiohttp.ClientSession | None = None
        #: Forwarded requests not finished yet: a future set when each ends, and its task.
        #: aiohttp stops tracking a handler whose client hung up, but its relay goes on
        #: recording, so stopping the proxy waits for these itself.
        self.forwards: dict[asyncio.Future[None], asyncio.Task[Any] | None] = {}


PROXY_KEY = web.AppKey("tapedeck_proxy", ProxyState)


def make_proxy_app(state: ProxyState) -> web.Application:
    """The proxy's app: every method and path goes to one handler."""
    app = web.Application(client_max_size=MAX_REQUEST_BODY)
    app[PROXY_KEY] = state
    app.router.add_route("*", "/{tail:.*}", _handle)
    app.cleanup_ctx.append(_client_session)
    return app


async def _client_session(app: web.Application) -> AsyncIterator[None]:
    state = app[PROXY_KEY]
    # Forward exactly what the client sent: no cookie jar, no auto-added headers, no
    # decompression, no environment proxies, no redirects followed.
    connector = aiohttp.TCPConnector(limit=0, enable_cleanup_closed=True)
    state.session = aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
        auto_decompress=False,
        trust_env=False,
        timeout=aiohttp.ClientTimeout(
            total=None,
            connect=state.settings.connect_timeout,
            sock_read=state.settings.head_timeout,
        ),
    )
    yield
    await state.session.close()


async def _handle(request: web.Request) -> web.StreamResponse:
    unspoken = version_not_supported_answer(request, "the recording proxy")
    if unspoken is not None:
        return unspoken  # before reading: nothing is forwarded or recorded for it
    state = request.app[PROXY_KEY]
    body = await request.read()
    pairs = decode_pairs(request.raw_headers)
    recorded = RecordedRequest(
        request.method,
        state.settings.record_base + request.raw_path,
        recorded_request_headers(pairs),
        body if request.body_exists else None,
    )
    recorder = state.recorder
    decision = recorder.decide(recorded)
    if decision.action == "play" and decision.interaction is not None:
        return await _play(request, decision.interaction)
    if decision.action == "refuse":
        recorder.note(Event("refused", request.method, _shown_path(request), 409))
        return _error(409, f"record_mode_{recorder.mode}", decision.message)
    done = asyncio.get_running_loop().create_future()
    state.forwards[done] = asyncio.current_task()
    try:
        return await _forward(request, state, recorded, pairs)
    finally:
        del state.forwards[done]
        done.set_result(None)


async def _forward(
    request: web.Request, state: ProxyState, recorded: RecordedRequest, pairs: list[tuple[str, str]]
) -> web.StreamResponse:
    assert state.session is not None  # made by the app's startup
    started = time.perf_counter()
    url = state.target + request.raw_path
    try:
        upstream = await state.session.request(
            request.method,
            url,
            headers=forwarded_request_headers(pairs),
            data=recorded.body,
            allow_redirects=False,
        )
    except (aiohttp.ClientError, TimeoutError, OSError) as error:
        return _no_response(request, state, error)
    tee = ChunkTee(started)
    try:
        outcome = await relay(request, upstream, tee, state.settings)
    except asyncio.CancelledError:
        # Only a shutdown cancels the handler (no handler cancellation on client hang-ups): a
        # body that went through whole is still recorded (written by stop()), nothing else is.
        if tee.complete:
            _record(state, request, recorded, upstream, tee)
        else:
            state.recorder.note(_event("cut", request, upstream.status, tee, detail="stopped"))
        raise
    finally:
        upstream.close()  # a no-op after a complete body was read and released
    if tee.complete:
        # Not awaited: the next request on this keep-alive connection must not wait for the
        # file (an fsync); the writer thread saves in order and stop() waits for it.
        _record(state, request, recorded, upstream, tee)
    else:
        state.recorder.note(_event("cut", request, upstream.status, tee, detail=outcome.cut))
    return outcome.response


def _no_response(
    request: web.Request, state: ProxyState, error: BaseException
) -> web.StreamResponse:
    """502 (504 for a timeout) naming the target: it sent no usable response head."""
    if isinstance(error, TimeoutError) and not isinstance(error, OSError):
        status, code, what = 504, "upstream_timeout", "timed out waiting for"
    elif isinstance(error, aiohttp.ClientConnectorError):
        status, code, what = 502, "upstream_unreachable", "cannot reach"
    else:  # closed without answering, or answered something that is not HTTP
        status, code, what = 502, "upstream_bad_response", "got no valid response from"
    message = (
        f"tapedeck record: {what} the target {state.target} ({request.method} "
        f"{_shown_path(request)}): {type(error).__name__}: {error or 'no detail'}"
    )
    state.recorder.note(Event("unreachable", request.method, _shown_path(request), detail=message))
    return _error(status, code, message)


def _record(
    state: ProxyState,
    request: web.Request,
    recorded: RecordedRequest,
    upstream: aiohttp.ClientResponse,
    tee: ChunkTee,
) -> None:
    """Keep the finished exchange (scrubbed), queue the cassette's write, report it."""
    kept = state.recorder.add(Interaction(recorded, recorded_response(upstream, tee)))
    if kept is not None:
        state.recorder.persist_soon()
    kind: EventKind = "recorded" if kept is not None else "dropped"
    state.recorder.note(_event(kind, request, upstream.status, tee))


async def _play(request: web.Request, interaction: Interaction) -> web.StreamResponse:
    """The recorded response, one write per recorded chunk, as fast as possible."""
    recorded = interaction.response
    response = web.StreamResponse(status=recorded.status, reason=recorded.reason or None)
    for name, value in replay_headers(recorded.headers):
        response.headers.add(name, value)
    length = recorded.header("content-length")
    if length is not None and length.isdigit() and int(length) == len(recorded.body):
        response.content_length = len(recorded.body)
    else:
        response.enable_chunked_encoding()
    kind: EventKind = "replayed"
    try:
        await response.prepare(request)
        for piece in recorded.chunk_bytes():
            await response.write(piece)
        await response.write_eof()
    except ConnectionError:
        kind = "client-gone"
    request.app[PROXY_KEY].recorder.note(
        Event(
            kind,
            request.method,
            _shown_path(request),
            recorded.status,
            len(recorded.body),
            len(recorded.plan),
        )
    )
    return response


def _event(
    kind: EventKind,
    request: web.Request,
    status: int,
    tee: ChunkTee,
    *,
    detail: str = "",
) -> Event:
    elapsed_ms = (time.perf_counter() - tee.started) * 1000
    path = _shown_path(request)
    return Event(kind, request.method, path, status, tee.size, tee.chunks, elapsed_ms, detail)


def _shown_path(request: web.Request) -> str:
    """The path and query for progress output, scrubbed like the cassette (logs leak too)."""
    if not request.query_string:
        return request.raw_path
    policy = request.app[PROXY_KEY].recorder.policy
    return scrub_request(RecordedRequest(request.method, request.raw_path), policy).uri


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)
