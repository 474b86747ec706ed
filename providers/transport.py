"""Thin I/O shells: send one WireRequest, hand back the reply body chunk by chunk.

Two shells, one per HTTP library the originals used: requests for the synchronous upstreams,
aiohttp for the asynchronous ones. They know nothing about any upstream; status handling is the
codec layer's :func:`~providers.wire.common.raise_for_status`, and every foreign exception goes
through :func:`~providers.transport_errors.translate`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
import threading
import time
from collections.abc import AsyncGenerator, Generator
from dataclasses import dataclass

import aiohttp
import requests
import urllib3

from providers.errors import (
    LocalProtocolError,
    StreamResetError,
    TapedeckError,
    UpstreamTimeoutError,
)
from providers.transport_errors import Phase, translate
from providers.wire.common import WireRequest, raise_for_status

#: How much of a failed reply's body is read for the error message.
ERROR_BODY_LIMIT = 64 * 1024
OK_STATUSES = range(200, 300)  # what the originals' raise_for_status() accepted


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Deadlines in seconds. A harness must never hang, so all three are finite.

    ``connect`` bounds opening the connection, ``read`` bounds each wait for more bytes, and
    ``total`` bounds the whole call including a stream that keeps dripping.
    """

    connect: float = 10.0
    read: float = 60.0
    total: float = 300.0

    def __post_init__(self) -> None:
        for name in ("connect", "read", "total"):
            _require_seconds(getattr(self, name), f"Timeouts.{name}")

    @classmethod
    def coerce(cls, value: object) -> Timeouts:
        """``None`` → defaults; a number → every deadline (so ``timeout=5`` ends a call in ~5 s).

        Anything else is a :class:`~providers.errors.LocalProtocolError` at call time: a
        requests-style ``(connect, read)`` tuple, zero (aiohttp's "no limit"), infinity, NaN.
        """
        if value is None:
            return cls()
        if isinstance(value, Timeouts):
            return value
        seconds = _require_seconds(value, "timeout")
        return cls(connect=seconds, read=seconds, total=seconds)


def _require_seconds(value: object, name: str) -> float:
    """``value`` as a finite, positive number of seconds; LocalProtocolError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise LocalProtocolError(
            f"{name} must be a number of seconds (or providers.transport.Timeouts(connect=, "
            f"read=, total=) for separate deadlines), got {value!r}"
        )
    if not (value > 0 and math.isfinite(value)):
        # Zero means "no limit" to aiohttp and infinity overflows requests' timers: either way
        # a call could hang, which a harness must never do.
        raise LocalProtocolError(f"{name} must be a finite number of seconds above 0: {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True)
class HttpCall:
    """Everything a transport needs for one request."""

    provider: str
    url: str
    wire: WireRequest
    timeouts: Timeouts
    read_size: int = 4096
    proxy: str | None = None


def _translated(
    exc: BaseException, call: HttpCall, phase: Phase, *, read_timeout: float
) -> TapedeckError:
    """:func:`translate`, with a timeout message that says which deadline ran out."""
    error = translate(exc, provider=call.provider, url=call.url, phase=phase)
    if not isinstance(error, UpstreamTimeoutError) or isinstance(exc, TapedeckError):
        return error
    connecting = isinstance(
        exc,
        requests.ConnectTimeout
        | aiohttp.ConnectionTimeoutError
        | urllib3.exceptions.ConnectTimeoutError,
    )
    if connecting:
        what = f"could not connect within the connect timeout of {call.timeouts.connect:g} s"
    elif isinstance(
        exc, requests.RequestException | urllib3.exceptions.HTTPError | aiohttp.ServerTimeoutError
    ):
        # A read timeout: each wait for bytes, before the reply's head arrived or after.
        where = "for the reply to start" if phase == "connect" else "in the middle of the reply"
        what = f"waited {read_timeout:g} s {where} without receiving a byte (the read timeout"
        what += ")" if read_timeout == call.timeouts.read else ", capped by the total deadline)"
    else:
        return _past(call)  # aiohttp's total deadline raises a plain TimeoutError
    return _timed_out(call, what)


def _past(call: HttpCall) -> UpstreamTimeoutError:
    return _timed_out(
        call, f"the reply took longer than the total deadline of {call.timeouts.total:g} s"
    )


def _timed_out(call: HttpCall, what: str) -> UpstreamTimeoutError:
    return UpstreamTimeoutError(
        f"{call.provider}: timed out talking to {call.url}: {what} (pass timeout= to allow "
        f"more; deadlines now: connect {call.timeouts.connect:g} s, read "
        f"{call.timeouts.read:g} s, total {call.timeouts.total:g} s)"
    )


class Interrupter:
    """Lets another thread cut short a blocking read of :func:`stream_sync`.

    The async door of a requests-based adapter reads on a worker thread; when its consumer is
    cancelled, :meth:`fire` shuts the reply's socket down, which wakes the blocked ``recv`` at
    once (closing the socket would not, on Linux). Fired before the reply has arrived, it takes
    effect as soon as it does.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._response: requests.Response | None = None
        self._fired = False

    def attach(self, response: requests.Response) -> None:
        with self._lock:
            self._response = response
            fired = self._fired
        if fired:
            _shut_down(response)

    def fire(self) -> None:
        with self._lock:
            self._fired = True
            response = self._response
        if response is not None:
            _shut_down(response)


def _socket_of(response: requests.Response) -> socket.socket | None:
    """The reply's socket, as urllib3 2 keeps it (None if a version hides it elsewhere)."""
    connection = getattr(response.raw, "connection", None)  # urllib3 2's HTTPResponse
    sock = getattr(connection, "sock", None)
    return sock if isinstance(sock, socket.socket) else None


def _shut_down(response: requests.Response) -> None:
    sock = _socket_of(response)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def stream_sync(
    call: HttpCall,
    session: requests.Session | None = None,
    *,
    interrupter: Interrupter | None = None,
) -> Generator[bytes, None, None]:
    """POST with requests and yield the body as ``iter_content(read_size)`` delivers it.

    With chunked transfer encoding urllib3 delivers each HTTP chunk separately (split at
    ``read_size``), which is what the originals' decoders saw.
    """
    own_session = session is None
    active = session if session is not None else requests.Session()
    deadline = time.monotonic() + call.timeouts.total
    read_timeout = min(call.timeouts.read, call.timeouts.total)
    phase: Phase = "connect"
    capped = False  # whether the wait under way was shortened to the total deadline
    try:
        prepared = active.prepare_request(
            requests.Request(
                call.wire.method, call.url, data=call.wire.body, headers=dict(call.wire.headers)
            )
        )
        if call.wire.body_content_type:
            # Where requests' json= puts it: after Content-Length.
            prepared.headers["Content-Type"] = call.wire.body_content_type
        proxies = {"http": call.proxy, "https": call.proxy} if call.proxy else {}
        # As requests.post() does: honour the environment's proxy and CA settings.
        settings = active.merge_environment_settings(prepared.url, proxies, True, None, None)
        response = active.send(prepared, timeout=(call.timeouts.connect, read_timeout), **settings)
        with response:
            phase = "read"
            if interrupter is not None:
                interrupter.attach(response)
            if response.status_code not in OK_STATUSES:
                body = response.raw.read(ERROR_BODY_LIMIT, decode_content=True)
                raise_for_status(
                    call.provider,
                    response.status_code,
                    dict(response.headers),
                    body,
                    ok=OK_STATUSES,
                    url=call.url,
                )
            sock = _socket_of(response)
            for chunk in response.iter_content(chunk_size=call.read_size):
                if time.monotonic() > deadline:
                    raise _past(call)
                if chunk:
                    yield chunk
                remaining = deadline - time.monotonic()
                if sock is not None and remaining < read_timeout:
                    # The next wait for bytes may last only until the total deadline, so a reply
                    # that keeps dripping ends on time (not up to a read timeout late), as with
                    # aiohttp. The socket's timeout bounds each recv that urllib3 makes; once
                    # capped it stays so (the time left only shrinks).
                    if remaining <= 0:
                        raise _past(call)
                    capped = True
                    sock.settimeout(remaining)
    except TapedeckError:
        raise
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
        if capped and time.monotonic() >= deadline:
            raise _past(call) from exc  # the capped wait ran out: the total deadline
        raise _translated(exc, call, phase, read_timeout=read_timeout) from exc
    finally:
        if own_session:
            active.close()


async def stream_async(
    call: HttpCall, session: aiohttp.ClientSession | None = None
) -> AsyncGenerator[bytes, None]:
    """POST with aiohttp and yield the body as it arrives, one HTTP chunk (or part) at a time."""
    timeout = aiohttp.ClientTimeout(
        total=call.timeouts.total, connect=call.timeouts.connect, sock_read=call.timeouts.read
    )
    own_session = session is None
    active = session if session is not None else aiohttp.ClientSession(timeout=timeout)
    phase: Phase = "connect"
    try:
        async with active.request(
            call.wire.method,
            call.url,
            data=_async_body(call.wire),
            headers=list(call.wire.headers),
            proxy=call.proxy,
            timeout=timeout,
        ) as response:
            phase = "read"
            if response.status not in OK_STATUSES:
                body = await response.content.read(ERROR_BODY_LIMIT)
                raise_for_status(
                    call.provider,
                    response.status,
                    dict(response.headers),
                    body,
                    ok=OK_STATUSES,
                    url=call.url,
                )
            async for data in _read_chunks(response, call):
                yield data
    except TapedeckError:
        raise
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise _translated(exc, call, phase, read_timeout=call.timeouts.read) from exc
    finally:
        if own_session:
            await active.close()


#: How often a reader waiting for bytes checks that the connection is still there.
_LIVENESS_POLL = 0.25


def _connection_gone(response: aiohttp.ClientResponse) -> bool:
    connection = response.connection
    transport = None if connection is None else connection.transport
    return transport is None or transport.is_closing()


async def _read_chunks(
    response: aiohttp.ClientResponse, call: HttpCall
) -> AsyncGenerator[bytes, None]:
    """``iter_chunks`` with a liveness check.

    aiohttp 3.14 closes the connection on malformed chunked framing without failing the body
    reader (and drops its read timer), so a plain read would wait for the total deadline. Waiting
    in short slices lets the loop notice the dead connection, and enforce the read timeout itself.
    """
    reader = response.content
    last_data = time.monotonic()
    while True:
        poll = asyncio.timeout(_LIVENESS_POLL)
        try:
            async with poll:
                data, end_of_http_chunk = await reader.readchunk()
        except TimeoutError:
            if not poll.expired():
                # aiohttp's own deadline (total, or its stored sock_read error), not our poll:
                # it must reach the caller. Taken for a poll it would be retried, and a spent
                # total timer raises again without awaiting, so the loop would spin, starving
                # the event loop until the read timeout and ignoring the total deadline.
                raise
            if reader.at_eof():
                return
            if _connection_gone(response):
                raise _cut(call, "the connection closed mid-reply (malformed framing?)") from None
            if time.monotonic() - last_data > call.timeouts.read:
                raise _timed_out(
                    call,
                    f"waited {call.timeouts.read:g} s in the middle of the reply without "
                    "receiving a byte (the read timeout)",
                ) from None
            continue
        except RuntimeError as exc:
            # aiohttp's reader says "Connection closed." as a bare RuntimeError.
            if not _connection_gone(response):
                raise
            raise _cut(call, str(exc)) from exc
        if not data and not end_of_http_chunk:
            return  # end of stream
        if data:
            last_data = time.monotonic()
            yield data


def _cut(call: HttpCall, detail: str) -> StreamResetError:
    return StreamResetError(
        f"{call.provider}: the connection to {call.url} broke while reading the reply: {detail}"
    )


def _async_body(wire: WireRequest) -> bytes | aiohttp.BytesPayload:
    if wire.body_content_type is None:
        return wire.body
    # A payload carrying its own type makes aiohttp add Content-Type where json= did.
    return aiohttp.BytesPayload(wire.body, content_type=wire.body_content_type)
