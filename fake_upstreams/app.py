"""The generic fake-upstream aiohttp app: one codec, its chat endpoint, scripts and a journal.

A chat request goes through, in order: method (405) → content encoding (415 in strict mode: the
originals never compressed) → body: size (413), unreadable (400, e.g. broken gzip in lenient
mode), too slow to arrive (408) → content type (415) → ``X-Tapedeck-Script`` header (400) →
``codec.parse_request`` (its own 4xx) → the response script (400 ``script_does_not_fit`` when it
cannot make a reply of this request) → :func:`~fake_upstreams.faults.send_reply`; before all of
them, 505 for an HTTP version other than 1.0 and 1.1. Every rejection is JSON
``{"error": {"code": ..., "message": ...}}`` with a 4xx (505 the one exception); the only other
5xx is ``fake_handler_error``, which means the harness itself is broken (the exception is kept
in the journal for the test).

Connections (aiohttp's options, set per app in :func:`make_app`): an idle keep-alive connection,
or one that never completes its request head, is closed after ``FakeState.idle_timeout``
seconds (aiohttp's own default is an hour, and thousands of forgotten sockets once exhausted the
file limit); a request body still arriving ``FakeState.request_timeout`` seconds after its head
gets 408 and the connection is closed. aiohttp answers requests it cannot parse (bad chunk size,
oversized or invalid header, bare LF, unsupported content coding such as br) itself, with a
text/plain 400 that never reaches these handlers or the journal; it no longer logs a traceback
for each, just one warning line (:data:`HTTP_PARSE_LOG`).

Control endpoints, on every fake:

- ``POST /__tapedeck__/script`` — a script dict (becomes the default, queue emptied) or
  ``{"queue": [...], "default": {...}}``; ``GET`` shows the current scripts.
- ``GET /__tapedeck__/journal`` — the journal as JSON; ``POST /__tapedeck__/reset`` — clear
  scripts and journal.
- Header ``X-Tapedeck-Script: <script JSON>`` on a chat request scripts that one reply. It does
  not use up a queued script, and the codec never sees it (strict mode does not complain). Sent
  more than once, it is a 400 ``bad_script_header``: no guessing which one was meant.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from aiohttp import hdrs, web
from aiohttp.http import HttpProcessingError
from multidict import CIMultiDict

from fake_upstreams.faults import client_gone, send_reply
from fake_upstreams.journal import Journal, Verdict, accepted
from fake_upstreams.lifecycle import SPOKEN_VERSIONS, version_not_supported
from fake_upstreams.reply import build_reply, plan_reply
from fake_upstreams.script import ResponseScript, ScriptQueue
from providers.errors import InvalidRequestError, SignatureError
from providers.wire.common import (
    ReceivedRequest,
    UpstreamCodec,
    header_differences,
    parse_json_object,
    reject_unless_original,
)
from providers.wire.signature import signature_failure_reason

Strictness = Literal["strict", "lenient"]
CONTROL_PREFIX = "/__tapedeck__"
SCRIPT_HEADER = "X-Tapedeck-Script"
DEFAULT_MAX_BODY = 1024 * 1024
#: Seconds an idle connection stays open: long enough to bound forgotten sockets (aiohttp's own
#: default is an hour), and twice aiohttp's client keep-alive (15 s), so a client reusing a
#: connection near its own limit never races the server closing it.
DEFAULT_IDLE_TIMEOUT = 30.0
#: Seconds a request body may take to arrive once its head is in: on loopback a 1 MiB body
#: takes milliseconds, so this only ends a client that stopped sending halfway.
DEFAULT_REQUEST_TIMEOUT = 30.0
#: The catch-all route, matched after every real one (see make_app).
UNROUTED_PATH = "/{unrouted:.*}"


@dataclass
class FakeState:
    """What a test can change on a running fake (shared with the server thread)."""

    strictness: Strictness = "strict"
    scripts: ScriptQueue = field(default_factory=ScriptQueue)
    journal: Journal = field(default_factory=Journal)
    #: Bodies above this many bytes get 413; read once, when the app is made.
    max_body_size: int = DEFAULT_MAX_BODY
    #: Seconds before an idle connection is closed; read once, when the app is made.
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    #: Seconds a request body may take to arrive (then 408).
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT

    def __post_init__(self) -> None:
        if self.strictness not in ("strict", "lenient"):
            raise ValueError(f"strictness must be 'strict' or 'lenient', got {self.strictness!r}")
        for name in ("idle_timeout", "request_timeout"):
            seconds = getattr(self, name)
            if not 0 < seconds < float("inf"):
                raise ValueError(f"{name} must be a positive number of seconds, got {seconds!r}")

    def reset(self) -> None:
        """Forget scripts and journal (strictness stays)."""
        self.scripts.reset()
        self.journal.clear()


STATE_KEY = web.AppKey("tapedeck_state", FakeState)
CODEC_KEY = web.AppKey("tapedeck_codec", UpstreamCodec)


def json_error(
    status: int, code: str, message: str, *, field: str = "", headers: dict[str, str] | None = None
) -> web.Response:
    """The one error shape of every fake: ``{"error": {"code", "message"[, "field"]}}``."""
    error = InvalidRequestError(message, status=status, code=code, field=field)
    return web.json_response(error.to_json(), status=status, headers=headers)


class _OneLineParseErrors(logging.Filter):
    """Turns aiohttp's traceback for a request it could not parse into one warning line.

    aiohttp answers such a request (bad chunk size, header too long, NUL in a header, ...) with
    a 400 of its own and logs "Error handling request" with the parser's traceback, at ERROR: a
    hostile client could fill a log with them, and nothing in the traceback is a harness bug.
    Every other record, a real unhandled exception included, passes unchanged.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            detail = " ".join(str(error.message).split())  # its messages span several lines
            where = record.getMessage()  # "Error handling request from <client address>"
            record.msg = "%s: answered %s, a request aiohttp could not parse: %s"
            record.args = (where, error.code, detail)
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


#: The fakes' aiohttp request-handler logger (a child of aiohttp's, so its records still reach
#: aiohttp.server's handlers), with parse errors as one warning line each.
HTTP_PARSE_LOG = logging.getLogger("aiohttp.server.tapedeck")
HTTP_PARSE_LOG.addFilter(_OneLineParseErrors())


def make_app(
    codec: UpstreamCodec,
    state: FakeState | None = None,
    *,
    extra_routes: Iterable[web.AbstractRouteDef] = (),
) -> web.Application:
    """An app serving ``codec``'s chat endpoint, the control endpoints and ``extra_routes``.

    Extra handlers find the state as ``request.app[STATE_KEY]`` and should answer errors with
    :func:`json_error`.
    """
    state = state if state is not None else FakeState()
    # handler_args are aiohttp's public per-app options for its request handler (RequestHandler).
    handler_args = {"keepalive_timeout": state.idle_timeout, "logger": HTTP_PARSE_LOG}
    app = web.Application(client_max_size=state.max_body_size, handler_args=handler_args)
    app[STATE_KEY] = state
    app[CODEC_KEY] = codec
    app.router.add_post(codec.chat_path, _chat)
    app.router.add_routes(list(extra_routes))
    app.router.add_post(f"{CONTROL_PREFIX}/script", _set_script)
    app.router.add_get(f"{CONTROL_PREFIX}/script", _get_script)
    app.router.add_get(f"{CONTROL_PREFIX}/journal", _get_journal)
    app.router.add_post(f"{CONTROL_PREFIX}/reset", _reset)
    # Registered last, so aiohttp tries it only after every real route: it turns "no route" and
    # "wrong method" into the JSON shape. A route rather than a middleware because with any
    # middleware at all aiohttp runs every request through two more coroutines, a measurable
    # share of a short reply (tapedeck bench). The 413 of a too-large body is answered where
    # the body is read.
    app.router.add_route("*", UNROUTED_PATH, _unrouted)
    return app


async def _chat(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    codec = request.app[CODEC_KEY]
    journal = state.journal
    index: int | None = None
    try:
        index, body = await _intake(request)
        override = _script_override(request)
        received = ReceivedRequest(request.method, request.path, _codec_headers(request), body)
        chat = codec.parse_request(received, strict=state.strictness == "strict")
        if override is None:
            script = state.scripts.next()
            reply = plan_reply(script, codec, chat)
        else:
            # A header script is a new object on every request, so the plan cache (keyed on
            # the script object) could never hit: plan it directly instead of churning the cache.
            script = override
            reply = build_reply(script, codec, chat, script_checked=True)
        journal.judge(index, accepted(reply.status), chat=chat, script=script)
        response, outcome = await send_reply(request, reply)
        journal.finish(index, outcome)
        return response
    except InvalidRequestError as error:
        return await _rejected(request, index, error)
    except asyncio.CancelledError:
        # aiohttp cancels the handler when the client goes away (with handler_cancellation) and
        # when the server shuts down with a reply still running.
        if index is not None:
            journal.finish(index, "client-disconnected" if client_gone(request) else "cancelled")
        raise
    except Exception as error:
        return _handler_failed(request, index, error)


async def _rejected(
    request: web.Request, index: int | None, error: InvalidRequestError
) -> web.StreamResponse:
    """Journal a rejection (if the request was journaled) and answer it as JSON."""
    journal = request.app[STATE_KEY].journal
    if index is not None:
        message = str(error)
        if isinstance(error, SignatureError) and signature_failure_reason(error):
            # The client gets one answer for every decrypt failure; the journal gets the reason.
            message = f"{message} ({signature_failure_reason(error)})"
        journal.judge(index, Verdict(False, error.status, error.code, message))
    response = web.json_response(error.to_json(), status=error.status)
    if error.status in _CLOSING_STATUSES:
        response.force_close()
    if error.status == 408:
        # The rest of the body may still trickle in, and aiohttp would keep reading it for up
        # to 10 s (its lingering close) before closing: send the answer now and close at once.
        with contextlib.suppress(ConnectionError):  # the client left first: nothing to answer
            await response.prepare(request)
            await response.write_eof()
        if request.transport is not None:
            request.transport.close()  # after the answer: close() sends what is queued first
    return response


#: Rejections after which the connection cannot carry another request: a body still arriving
#: (408), or a protocol the fake does not speak (505).
_CLOSING_STATUSES = frozenset({408, 505})


async def _intake(request: web.Request) -> tuple[int, bytes]:
    """Read and journal the request, then the checks every endpoint shares.

    Content encoding (415 in strict mode), body size (413), body unreadable (400), slow body
    (408), content type (415). Returns the journal ticket and the body; a rejection is journaled
    here when it comes before the ticket, by the caller after.
    """
    state = request.app[STATE_KEY]
    journal = state.journal
    try:
        if request.version not in SPOKEN_VERSIONS:
            # Refused first, before a queued script is used up or a delay slept for a reply
            # that could not be framed.
            raise version_not_supported(request, "the fake")
        # An istr key: the cheapest lookup a CIMultiDict has (a request pays for it).
        if hdrs.CONTENT_ENCODING in request.headers and state.strictness == "strict":
            raise _encoded_body(request)
        # Inline rather than `await _read_body(...)`: one coroutine less per request (measured).
        if request.content.is_eof():
            body = await request.read()  # already complete (every short request): no timer
        else:
            async with asyncio.timeout(state.request_timeout):
                body = await request.read()
    except _BODY_ERRORS as error:
        rejection = _body_rejection(request, error, state.request_timeout)
        index = journal.open_raw(request.method, request.raw_path, request.raw_headers, b"")
        journal.judge(index, Verdict(False, rejection.status, rejection.code, str(rejection)))
        raise rejection from None
    index = journal.open_raw(request.method, request.raw_path, request.raw_headers, body)
    try:
        _check_content_type(request)
    except InvalidRequestError as error:
        journal.judge(index, Verdict(False, error.status, error.code, str(error)))
        raise
    return index, body


#: What reading a request body can raise, each made a rejection by _body_rejection.
_BODY_ERRORS = (
    InvalidRequestError,
    web.HTTPRequestEntityTooLarge,
    web.RequestPayloadError,
    TimeoutError,
)


async def _read_body(request: web.Request, seconds: float) -> bytes:
    """The whole body, or InvalidRequestError: too large (413), unreadable (400), too slow (408).

    The control endpoint's read; the chat endpoints read inline in :func:`_intake`, the same way.
    """
    try:
        async with asyncio.timeout(seconds):
            return await request.read()
    except _BODY_ERRORS as error:
        raise _body_rejection(request, error, seconds) from None


def _body_rejection(
    request: web.Request, error: BaseException, seconds: float
) -> InvalidRequestError:
    """The rejection for an error raised while the body was read (see _BODY_ERRORS)."""
    if isinstance(error, InvalidRequestError):
        return error
    if isinstance(error, web.HTTPRequestEntityTooLarge):
        return _too_large(request)
    if isinstance(error, TimeoutError):
        return InvalidRequestError(
            f"request body did not arrive within {seconds:g} s of its headers",
            status=408,
            code="request_timeout",
        )
    # RequestPayloadError, from aiohttp's body parser: a content coding that does not decode
    # (lenient mode lets aiohttp decompress), chunked framing broken after the head, a cut body.
    cause = error.__cause__ or error
    detail = " ".join(str(getattr(cause, "message", cause)).split())
    return InvalidRequestError(
        f"request body could not be read: {detail}", code="bad_body_encoding"
    )


def _encoded_body(request: web.Request) -> InvalidRequestError:
    coding = request.headers.get(hdrs.CONTENT_ENCODING, "")
    return InvalidRequestError(
        f"Content-Encoding {coding!r}: the original clients never compressed a request, so a "
        "strict fake takes none (lenient mode decodes gzip and deflate)",
        status=415,
        code="unsupported_content_encoding",
        field="content-encoding",
    )


def json_endpoint(path: str, reply: Callable[[], bytes]) -> web.RouteDef:
    """A POST endpoint answering fixed JSON after the shared checks; its body must be an object.

    Used for side endpoints such as Aivvm's ``/api/models``, so they are as strict, and as
    visible in the journal, as the chat endpoint: in strict mode that includes the codec's
    browser headers, which the original client sent on every request to its site.
    """

    async def handler(request: web.Request) -> web.StreamResponse:
        state = request.app[STATE_KEY]
        journal = state.journal
        index: int | None = None
        try:
            index, body = await _intake(request)
            # The script header means nothing here, but a malformed one is a client bug that
            # the chat endpoint reports too; accepting it silently would hide that.
            _script_override(request)
            parse_json_object(body)
            if state.strictness == "strict":
                received = ReceivedRequest(
                    request.method, request.path, _codec_headers(request), body
                )
                browser_headers = request.app[CODEC_KEY].browser_headers
                reject_unless_original(header_differences(received, browser_headers))
        except InvalidRequestError as error:
            return await _rejected(request, index, error)
        except Exception as error:
            return _handler_failed(request, index, error)
        journal.judge(index, accepted(200))
        journal.finish(index, "completed")
        return web.Response(body=reply(), content_type="application/json")

    return web.post(path, handler)


def _handler_failed(
    request: web.Request, index: int | None, error: Exception
) -> web.StreamResponse:
    journal = request.app[STATE_KEY].journal
    if index is None:
        index = journal.open_raw(request.method, request.raw_path, request.raw_headers, b"")
    journal.fail(index, error)
    writer = request.writer
    # Part of a reply is out already, or a prepare that failed half-way (on a header aiohttp
    # refused, say) had already switched this request's writer to chunked framing: another
    # response would be mis-framed (a Content-Length head over a chunked body, stray bytes left
    # on a keep-alive connection), so just cut. ``chunked`` is StreamWriter's public flag.
    if writer.output_size > 0 or getattr(writer, "chunked", False):
        if request.transport is not None:
            request.transport.abort()
        return web.StreamResponse()
    message = f"the fake's handler failed (a Tapedeck bug): {type(error).__name__}: {error}"
    return json_error(500, "fake_handler_error", message)


def _check_content_type(request: web.Request) -> None:
    given = request.headers.get("Content-Type")
    if given is None:
        raise InvalidRequestError(
            "missing Content-Type header (expected application/json)",
            status=415,
            code="unsupported_media_type",
            field="content-type",
        )
    if given == "application/json":
        return  # what every client sends; the full parse below would say the same, slower
    if request.content_type.lower() != "application/json":
        raise InvalidRequestError(
            f"Content-Type must be application/json, got {given!r}",
            status=415,
            code="unsupported_media_type",
            field="content-type",
        )


def _codec_headers(request: web.Request) -> Mapping[str, str]:
    """The headers minus ``X-Tapedeck-Script``, which the codec must never see.

    Copied only when that header is there: most requests do without the copy.
    """
    headers = request.headers
    if SCRIPT_HEADER not in headers:
        return headers
    return CIMultiDict(
        (name, value) for name, value in headers.items() if name.lower() != "x-tapedeck-script"
    )


def _script_override(request: web.Request) -> ResponseScript | None:
    value = request.headers.get(SCRIPT_HEADER)
    if value is None:
        return None
    try:
        count = len(request.headers.getall(SCRIPT_HEADER))
        if count > 1:  # which one was meant? Neither is used rather than a guess.
            raise ValueError(f"it was sent {count} times; send one script")
        if not value.isascii():
            # aiohttp decodes header bytes as UTF-8, keeping bytes that are not as surrogates.
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise ValueError(f"byte {exc.start} of the header value is not UTF-8") from None
        return ResponseScript.load(json.loads(value))
    except (ValueError, RecursionError) as error:  # JSONDecodeError is a ValueError
        raise InvalidRequestError(
            f"{SCRIPT_HEADER} header is not a valid script: {error}",
            code="bad_script_header",
            field=SCRIPT_HEADER,
        ) from None


async def _unrouted(request: web.Request) -> web.Response:
    """What aiohttp would answer with a bare 404 or 405, as JSON: no endpoint, or wrong method."""
    path = request.path
    allowed = _allowed_methods(request)
    headers = None
    if allowed:
        status, code = 405, "method_not_allowed"
        message = f"method {request.method} not allowed on {path}; use {allowed}"
        headers = {"Allow": allowed}
    else:
        codec = request.app[CODEC_KEY]
        status, code = 404, "not_found"
        message = f"no endpoint at {path}; {codec.name} serves POST {codec.chat_path}"
    if not path.startswith(CONTROL_PREFIX):
        journal = request.app[STATE_KEY].journal
        index = journal.open_raw(request.method, request.raw_path, request.raw_headers, b"")
        journal.judge(index, Verdict(False, status, code, message))
    return json_error(status, code, message, headers=headers)


def _allowed_methods(request: web.Request) -> str:
    """The ``Allow`` value for the request's path, as aiohttp writes it ('' if no such path).

    Only fixed paths are served besides the catch-all, so a path matches a resource exactly when
    it equals the resource's canonical path (compared as aiohttp does, on ``path_safe``).
    """
    path = request.rel_url.path_safe
    methods = {
        route.method
        for resource in request.app.router.resources()
        if resource.canonical == path and resource.canonical != UNROUTED_PATH
        for route in resource
    }
    return ",".join(sorted(methods))


def _too_large(request: web.Request) -> InvalidRequestError:
    return InvalidRequestError(
        f"request body is larger than {request.app[STATE_KEY].max_body_size} bytes",
        status=413,
        code="body_too_large",
    )


async def _set_script(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    try:
        state.scripts.load(json.loads(await _read_body(request, state.request_timeout)))
    except InvalidRequestError as error:
        return web.json_response(error.to_json(), status=error.status)
    except (ValueError, RecursionError) as error:
        return json_error(400, "bad_script", str(error))
    return web.json_response({"ok": True, "scripts": state.scripts.to_dict()})


async def _get_script(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE_KEY].scripts.to_dict())


async def _get_journal(request: web.Request) -> web.Response:
    # Never fails on what the journal holds (see Journal.to_json_text).
    text = request.app[STATE_KEY].journal.to_json_text()
    return web.Response(text=text, content_type="application/json")


async def _reset(request: web.Request) -> web.Response:
    request.app[STATE_KEY].reset()
    return web.json_response({"ok": True})
