"""The generic fake-upstream aiohttp app: one codec, its chat endpoint, scripts and a journal.

A chat request goes through, in order: method (405) → body size (413) → content type (415) →
``X-Tapedeck-Script`` header (400) → ``codec.parse_request`` (its own 4xx) → the response script
→ :func:`~fake_upstreams.faults.send_reply`. Every rejection is JSON
``{"error": {"code": ..., "message": ...}}`` with a 4xx; the only 5xx is ``fake_handler_error``,
which means the harness itself is broken (the exception is kept in the journal for the test).

Control endpoints, on every fake:

- ``POST /__tapedeck__/script`` — a script dict (becomes the default, queue emptied) or
  ``{"queue": [...], "default": {...}}``; ``GET`` shows the current scripts.
- ``GET /__tapedeck__/journal`` — the journal as JSON; ``POST /__tapedeck__/reset`` — clear
  scripts and journal.
- Header ``X-Tapedeck-Script: <script JSON>`` on a chat request scripts that one reply. It does
  not use up a queued script, and the codec never sees it (strict mode does not complain).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from aiohttp import web
from multidict import CIMultiDict

from fake_upstreams.faults import client_gone, send_reply
from fake_upstreams.journal import Journal, Verdict, accepted
from fake_upstreams.reply import build_reply, plan_reply
from fake_upstreams.script import ResponseScript, ScriptQueue
from providers.errors import InvalidRequestError
from providers.wire.common import ReceivedRequest, UpstreamCodec, parse_json_object

Strictness = Literal["strict", "lenient"]
CONTROL_PREFIX = "/__tapedeck__"
SCRIPT_HEADER = "X-Tapedeck-Script"
DEFAULT_MAX_BODY = 1024 * 1024
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

    def __post_init__(self) -> None:
        if self.strictness not in ("strict", "lenient"):
            raise ValueError(f"strictness must be 'strict' or 'lenient', got {self.strictness!r}")

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
    app = web.Application(client_max_size=state.max_body_size)
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
            reply = build_reply(script, codec, chat)
        journal.judge(index, accepted(reply.status), chat=chat, script=script)
        response, outcome = await send_reply(request, reply)
        journal.finish(index, outcome)
        return response
    except InvalidRequestError as error:
        if index is not None:
            journal.judge(index, Verdict(False, error.status, error.code, str(error)))
        return web.json_response(error.to_json(), status=error.status)
    except asyncio.CancelledError:
        # aiohttp cancels the handler when the client goes away (with handler_cancellation) and
        # when the server shuts down with a reply still running.
        if index is not None:
            journal.finish(index, "client-disconnected" if client_gone(request) else "cancelled")
        raise
    except Exception as error:
        return _handler_failed(request, index, error)


async def _intake(request: web.Request) -> tuple[int, bytes]:
    """Read and journal the request, then the checks every endpoint shares: size (413), type (415).

    Returns the journal ticket and the body; a rejection is journaled by the caller.
    """
    journal = request.app[STATE_KEY].journal
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        index = journal.open_raw(request.method, request.raw_path, request.raw_headers, b"")
        error = _too_large(request)
        journal.judge(index, Verdict(False, error.status, error.code, str(error)))
        raise error from None
    index = journal.open_raw(request.method, request.raw_path, request.raw_headers, body)
    try:
        _check_content_type(request)
    except InvalidRequestError as error:
        journal.judge(index, Verdict(False, error.status, error.code, str(error)))
        raise
    return index, body


def json_endpoint(path: str, reply: Callable[[], bytes]) -> web.RouteDef:
    """A POST endpoint answering fixed JSON after the shared checks; its body must be an object.

    Used for side endpoints such as Aivvm's ``/api/models``, so they are as strict, and as
    visible in the journal, as the chat endpoint.
    """

    async def handler(request: web.Request) -> web.StreamResponse:
        journal = request.app[STATE_KEY].journal
        index: int | None = None
        try:
            index, body = await _intake(request)
            # The script header means nothing here, but a malformed one is a client bug that
            # the chat endpoint reports too; accepting it silently would hide that.
            _script_override(request)
            parse_json_object(body)
        except InvalidRequestError as error:
            if index is not None:
                journal.judge(index, Verdict(False, error.status, error.code, str(error)))
            return web.json_response(error.to_json(), status=error.status)
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
    if request.writer.output_size > 0:
        # Part of a reply is out already: another status line would corrupt it, so just cut.
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
        return ResponseScript.from_dict(json.loads(value))
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
        state.scripts.load(json.loads(await request.read()))
    except web.HTTPRequestEntityTooLarge:
        too_large = _too_large(request)
        return web.json_response(too_large.to_json(), status=too_large.status)
    except (ValueError, RecursionError) as error:
        return json_error(400, "bad_script", str(error))
    return web.json_response({"ok": True, "scripts": state.scripts.to_dict()})


async def _get_script(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE_KEY].scripts.to_dict())


async def _get_journal(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE_KEY].journal.to_json())


async def _reset(request: web.Request) -> web.Response:
    request.app[STATE_KEY].reset()
    return web.json_response({"ok": True})
