"""From a response script to the exact bytes a fake will write. Pure, no I/O.

:func:`plan_reply` decides status, headers, the list of chunks (one HTTP chunk each) and the delay
before each; :mod:`fake_upstreams.faults` then puts them on the wire.

Planning is pure, and a fake answers the same script many times (the default script of a test,
a benchmark's thousands of replies), so plans are memoised in a small LRU (:class:`PlanCache`).
Building a plan costs far more than sending it for long replies (every word encoded, a JSON
object serialised per SSE event), and a plan is immutable, so sharing one changes nothing.
"""

from __future__ import annotations

import html
import json
import threading
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from fake_upstreams.chunking import frame_boundaries
from fake_upstreams.faults import Fault
from fake_upstreams.script import HttpErrorKind, ResponseScript, UnsendableScript
from providers.errors import InvalidRequestError
from providers.wire.common import ChatRequest, UpstreamCodec


class ScriptDoesNotFit(InvalidRequestError):
    """The script cannot make a reply to this request: 400 ``script_does_not_fit``.

    ``field`` names the script setting: chunk offsets beyond this reply's body, an echoed
    message the framing's text encoding cannot encode, or (for a script set from Python or a
    scenario, not checked when it was loaded) anything :meth:`ResponseScript.check_sendable`
    refuses. A 4xx rather than the 500 of a harness bug: the test chose the script.
    """

    def __init__(self, message: str, setting: str) -> None:
        super().__init__(
            f"the response script does not fit this reply: {message}",
            code="script_does_not_fit",
            field=setting,
        )


@dataclass(frozen=True, slots=True)
class PlannedReply:
    """Everything a fake sends for one request.

    ``delays[i]`` is slept before chunk ``i``; ``first_byte_delay`` before the headers. A reply
    that is not ``chunked`` is sent with a Content-Length (the scripted HTTP error pages).
    """

    status: int
    headers: tuple[tuple[str, str], ...]
    chunks: tuple[bytes, ...]
    chunked: bool = True
    first_byte_delay: float = 0.0
    delays: tuple[float, ...] = ()
    fault: Fault | None = None

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)

    def with_chunks(self, chunks: Sequence[bytes], delay: float) -> PlannedReply:
        """The same reply cut differently, with ``delay`` before every chunk but the first."""
        return replace(self, chunks=tuple(chunks), delays=(0.0,) + (delay,) * (len(chunks) - 1))


def plan_reply(script: ResponseScript, codec: UpstreamCodec, chat: ChatRequest) -> PlannedReply:
    """What to send for ``chat`` under ``script`` (memoised: the same as :func:`build_reply`)."""
    return PLANS.plan(script, codec, chat)


def build_reply(
    script: ResponseScript,
    codec: UpstreamCodec,
    chat: ChatRequest,
    *,
    script_checked: bool = False,
) -> PlannedReply:
    """What to send for ``chat`` under ``script``, planned afresh (no cache).

    Raises :class:`ScriptDoesNotFit` when the script cannot make this reply. ``script_checked``
    skips :meth:`ResponseScript.check_sendable` for a script that passed it already (one taken
    with :meth:`ResponseScript.load`).
    """
    if not script_checked:
        try:
            script.check_sendable()
        except UnsendableScript as error:
            raise ScriptDoesNotFit(str(error), error.setting) from None
    if script.http_error is not None:
        status, headers, body = error_page(
            script.http_error, _api_host(codec), retry_after=script.retry_after
        )
        return PlannedReply(
            status=script.status or status,
            headers=_merge_headers(headers, script.headers),
            chunks=(body,),
            chunked=False,
            first_byte_delay=script.first_byte_delay,
            fault=script.fault,
        )
    if script.raw is not None:
        frames = list(script.raw)
    else:
        try:
            frames = codec.encode_reply(script.text_pieces(chat), script.framing)
        except UnicodeEncodeError as error:
            raise _unencodable(script, error) from None
    try:
        chunks = script.chunking.split(b"".join(frames), frame_boundaries(frames))
    except ValueError as error:  # explicit offsets beyond this body
        raise ScriptDoesNotFit(f"chunking: {error}", "chunking.offsets") from None
    return PlannedReply(
        status=script.status or codec.success_status,
        headers=_merge_headers((("Content-Type", codec.reply_content_type),), script.headers),
        chunks=tuple(chunks),
        first_byte_delay=script.first_byte_delay,
        delays=tuple(script.delay_before(index) for index in range(len(chunks))),
        fault=script.fault,
    )


def _unencodable(script: ResponseScript, error: UnicodeEncodeError) -> ScriptDoesNotFit:
    text = error.object if isinstance(error.object, str) else ""
    bad = text[error.start : error.end]
    echoed = script.text is None and script.pieces is None
    source = "the echoed message" if echoed else "the scripted text"
    return ScriptDoesNotFit(
        f"framing.text_encoding {script.framing.text_encoding!r} cannot encode {source}: "
        f"{bad!r} at character {error.start} of {text[:60]!r}",
        "framing.text_encoding",
    )


class PlanCache:
    """A bounded, thread-safe LRU of planned replies.

    The key is exactly what :func:`build_reply` reads: the script and the codec *objects* (by
    identity, so two scripts that compare equal but differ in a value's type, ``1`` and ``True``,
    never share a plan), the codec's status, content type and API host, and, only for the echo
    script, the last user message. Plans bigger than ``max_bytes`` are not kept, and the least
    recently used ones go once more than ``max_entries`` or ``max_bytes`` are held. Entries keep
    their script and codec alive, so an identity can never be reused while it is a key.
    """

    def __init__(self, *, max_entries: int = 128, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._plans: OrderedDict[Hashable, tuple[PlannedReply, int, object, object]] = OrderedDict()
        self._bytes = 0

    def plan(self, script: ResponseScript, codec: UpstreamCodec, chat: ChatRequest) -> PlannedReply:
        """The plan :func:`build_reply` gives, from the cache when it holds it."""
        echo = None
        if _echoes(script):
            echo = chat.last_user_text
            if type(echo) is not str:  # a str subclass may format itself differently
                return build_reply(script, codec, chat)
        key = (
            id(script),
            id(codec),
            codec.success_status,
            codec.reply_content_type,
            codec.api_base,
            echo,
        )
        with self._lock:
            found = self._plans.get(key)
            if found is not None:
                self._plans.move_to_end(key)
                return found[0]
        reply = build_reply(script, codec, chat)
        self._keep(key, reply, script, codec)
        return reply

    def clear(self) -> None:
        with self._lock:
            self._plans.clear()
            self._bytes = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._plans)

    def _keep(
        self, key: Hashable, reply: PlannedReply, script: ResponseScript, codec: UpstreamCodec
    ) -> None:
        size = sum(len(chunk) for chunk in reply.chunks)
        if size > self.max_bytes or self.max_entries < 1:
            return
        with self._lock:
            old = self._plans.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._plans[key] = (reply, size, script, codec)
            self._bytes += size
            while len(self._plans) > self.max_entries or self._bytes > self.max_bytes:
                _, (_, dropped, _, _) = self._plans.popitem(last=False)
                self._bytes -= dropped


def _echoes(script: ResponseScript) -> bool:
    """Whether the plan depends on the request (the echo reply); nothing else in it does."""
    no_content = script.text is None and script.pieces is None and script.raw is None
    return no_content and script.http_error is None


#: The cache behind :func:`plan_reply`, shared by every fake in the process.
PLANS = PlanCache()


def error_page(
    kind: HttpErrorKind, host: str, *, retry_after: int = 30
) -> tuple[int, tuple[tuple[str, str], ...], bytes]:
    """Status, headers and body of an upstream failure as the real services sent it.

    ``server-error`` is the chatbot-ui route's ``500`` with the body ``Error``; ``cloudflare`` a
    ``403`` "Access denied | <host> used Cloudflare to restrict access" HTML page; ``rate-limit`` a
    ``429`` with ``Retry-After``.
    """
    if kind == "server-error":
        return 500, (("Content-Type", "text/plain;charset=UTF-8"),), b"Error"
    if kind == "cloudflare":
        headers = (("Content-Type", "text/html; charset=UTF-8"), ("Server", "cloudflare"))
        return 403, headers, _cloudflare_page(host).encode("utf-8")
    body = {"error": {"code": "rate_limited", "message": "Too Many Requests"}}
    headers = (
        ("Content-Type", "application/json; charset=utf-8"),
        ("Retry-After", str(retry_after)),
    )
    return 429, headers, json.dumps(body).encode("ascii")


def _cloudflare_page(host: str) -> str:
    title = f"Access denied | {html.escape(host)} used Cloudflare to restrict access"
    return (
        '<!DOCTYPE html>\n<html lang="en-US">\n<head>\n'
        f'<title>{title}</title>\n<meta charset="UTF-8">\n</head>\n<body>\n'
        "<h1>Error 1020</h1>\n<h2>Access denied</h2>\n"
        f"<p>The owner of this website ({html.escape(host)}) has banned your access "
        "based on your browser's signature.</p>\n"
        "<p>Performance &amp; security by Cloudflare</p>\n</body>\n</html>\n"
    )


def _api_host(codec: UpstreamCodec) -> str:
    return urlsplit(codec.api_base).hostname or codec.api_base


def _merge_headers(
    base: Sequence[tuple[str, str]], extra: Sequence[tuple[str, str]]
) -> tuple[tuple[str, str], ...]:
    """``extra`` headers win over ``base`` headers of the same name (case-insensitive)."""
    overridden = {name.lower() for name, _ in extra}
    return tuple(pair for pair in base if pair[0].lower() not in overridden) + tuple(extra)
