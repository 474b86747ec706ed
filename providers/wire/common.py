"""What every upstream codec shares: request/response value types and the codec contract.

Nothing here does I/O. A codec turns a chat call into request bytes, request bytes back into a
chat call (for the fakes), reply text into reply frames (for the fakes) and reply bytes into text
(for the adapters). Adapters and fakes are thin shells around these pure functions.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from math import isinf
from typing import Any, ClassVar, Literal, Protocol, cast

from multidict import CIMultiDict, CIMultiDictProxy

from providers.errors import (
    AccessDeniedError,
    InvalidRequestError,
    RateLimitedError,
    UpstreamHTTPError,
)

Message = Mapping[str, str]
Messages = Sequence[Message]

#: "correct" decodes incrementally and stops at the end marker; "legacy" reproduces byte for byte
#: what the original adapter did, corruption and crashes included.
Decoding = Literal["correct", "legacy"]
DECODINGS: tuple[Decoding, ...] = ("correct", "legacy")


@dataclass(frozen=True, slots=True)
class WireRequest:
    """A request exactly as the original client put it on the wire (minus library defaults).

    ``headers`` keeps the original's names, case and order; ``body`` is the exact bytes.
    ``body_content_type`` is set when the original let its HTTP library add the content type
    for a ``json=`` body (after Content-Length) instead of sending it as an explicit header.
    """

    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    body_content_type: str | None = None

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value
        if wanted == "content-type":
            return self.body_content_type
        return None


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    """A request as a server saw it. Header names are compared case-insensitively."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        for key, value in self.headers.items():
            if key.lower() == wanted:
                return value
        return None


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A parsed chat request, the same shape for all four upstreams.

    ``model`` is what the request named ('' when the upstream never sends one), ``messages`` the
    conversation as sent (AI365VIP's is already flattened into one user message), ``options`` the
    remaining body fields in wire order, and ``plaintext`` the decrypted body for GetGpt.
    """

    model: str
    messages: tuple[dict[str, str], ...]
    options: Mapping[str, Any] = field(default_factory=dict)
    plaintext: bytes | None = None

    @property
    def last_user_text(self) -> str:
        for message in reversed(self.messages):
            if message.get("role") == "user":
                return message.get("content", "")
        return ""


DoneMode = Literal["once", "missing", "twice", "then-content"]


@dataclass(frozen=True, slots=True)
class Framing:
    """How a fake frames reply text. Raw-text upstreams ignore everything but ``text_encoding``."""

    done: DoneMode = "once"
    crlf: bool = False
    keepalive_comments: bool = False
    role_first_delta: bool = False
    empty_first_delta: bool = False
    finish_chunk: bool = False
    last_line_newline: bool = True
    text_encoding: str = "utf-8"


class ReplyDecoder(Protocol):
    """Incremental reply decoder: feed bytes as they arrive, collect text pieces.

    ``feed`` returns the pieces completed by this data (legacy GetGpt may yield ``None``, as the
    original did). ``finish`` is called at end of stream: it flushes what is buffered and raises
    :class:`~providers.errors.TruncatedStreamError` if the stream ended where it must not.
    ``done`` turns true once the end marker was seen; nothing after it is ever returned.
    """

    @property
    def done(self) -> bool: ...

    def feed(self, data: bytes) -> list[str | None]: ...

    def finish(self) -> list[str | None]: ...


def dumps_like_python(obj: object) -> bytes:
    """``json.dumps`` with its defaults (', ' and ': ' separators, ASCII escapes), as bytes.

    All four originals serialised this way (directly, or through requests'/aiohttp's ``json=``).
    """
    return json.dumps(obj).encode("ascii")


def header_differences(received: ReceivedRequest, expected: Sequence[tuple[str, str]]) -> list[str]:
    """Every expected browser header that is missing or has another value, one line each."""
    problems = []
    lookup = _first_header_lookup(received.headers)
    for name, value in expected:
        got = lookup(name)
        if got is None:
            problems.append(f"missing header {name!r} (expected {value!r})")
        elif got != value:
            problems.append(f"header {name!r} is {got!r}, expected {value!r}")
    return problems


def reject_unless_original(problems: Sequence[str]) -> None:
    """Raise one ``not_like_original`` error naming every difference, if there are any.

    The strict fakes' one answer to a request the original client could not have sent.
    """
    if problems:
        raise InvalidRequestError(
            "request differs from the original client: " + "; ".join(problems),
            code="not_like_original",
        )


def _first_header_lookup(headers: Mapping[str, str]) -> Callable[[str], str | None]:
    """``name -> value`` of the first header with that name, compared as ``str.lower()`` does.

    That is :meth:`ReceivedRequest.header`'s rule, without scanning every header per name: a
    fake runs this on every request. aiohttp's (CI)MultiDict already looks names up by
    ``str.lower()`` and returns the first match, in C; any other mapping is lowered once.
    """
    if type(headers) in (CIMultiDictProxy, CIMultiDict):
        return headers.get
    first: dict[str, str] = {}
    for key, value in headers.items():
        first.setdefault(key.lower(), value)
    return lambda name: first.get(name.lower())


def raise_for_status(
    provider: str,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    ok: Sequence[int] = (200,),
    url: str = "",
) -> None:
    """Turn a non-success reply into the matching :class:`UpstreamHTTPError` subclass."""
    if status in ok:
        return
    if status == 429:
        retry_after = _retry_after(headers)
        raise RateLimitedError(provider, status, body, url, retry_after=retry_after)
    if status == 403 or b"Access denied" in body[:4096]:
        raise AccessDeniedError(provider, status, body, url)
    raise UpstreamHTTPError(provider, status, body, url)


def _retry_after(headers: Mapping[str, str]) -> float | None:
    for key, value in headers.items():
        if key.lower() == "retry-after":
            try:
                return float(value)
            except ValueError:
                return None
    return None


#: The deepest nesting of arrays and objects a fake accepts in a request body, the body itself
#: being level 1. The originals sent three levels (body, messages, one message) and no chat client
#: comes near ten, so 64 leaves ample room for any honest extra field. It must stay well below the
#: ~1000 levels where Python runs out of recursion: json.loads fails there, and the journal's
#: encoder, running deeper in a handler's stack, failed on bodies the parser had still accepted.
MAX_JSON_DEPTH = 64
#: The chat roles of OpenAI's API in 2023, which these services forwarded to: the originals passed
#: a caller's messages through unchanged, so any of them may reach a strict fake, nothing else.
ORIGINAL_ROLES = frozenset({"system", "user", "assistant", "function"})
_MESSAGE_KEYS = ("role", "content")


def parse_json_object(body: bytes, what: str = "request body") -> dict[str, Any]:
    """Decode a JSON object or raise an :class:`InvalidRequestError` that says what is wrong.

    The JSON rules are :func:`loads_request_json`'s.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequestError(
            f"{what} is not UTF-8 (byte {exc.start})", code="body_not_utf8"
        ) from None
    value = loads_request_json(text, what)
    if not isinstance(value, dict):
        raise InvalidRequestError(
            f"{what} must be a JSON object, got {type(value).__name__}", code="body_not_object"
        )
    return value


def loads_request_json(text: str, what: str = "request body") -> Any:
    """Decode the JSON text of a request as a real server would; InvalidRequestError otherwise.

    :func:`loads_strict`'s rules (no NaN or Infinity, no byte order mark), and a number too
    large for a float (``1e999``, which Python silently makes ``inf``) is refused as well: a fake
    would keep it, and its journal could not be JSON any more. The check is a ``parse_float``
    hook, which the C scanner calls for float literals only, so a body without one pays nothing
    and a body with one pays a Python call (~0.1 µs) per literal. Nesting deeper than
    :data:`MAX_JSON_DEPTH` is refused where a codec meets a value whose shape it does not check
    (:func:`limit_nesting`): a walk of every body would cost every request.
    """
    try:
        return _decode_document(text, _SCAN_REQUEST_VALUE, _REQUEST_DECODER)
    except _NumberOverflow as exc:
        raise InvalidRequestError(f"{what} holds {exc}", code="body_not_json") from None
    except json.JSONDecodeError as exc:
        if text.startswith("\ufeff"):
            message = f"{what} starts with a byte order mark (U+FEFF), which JSON forbids"
        else:
            message = f"{what} is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        raise InvalidRequestError(message, code="body_not_json") from None
    except RecursionError:
        # json.loads recurses per nesting level; a hostile body can exhaust the stack.
        raise InvalidRequestError(
            f"{what} nests arrays and objects more than {MAX_JSON_DEPTH} levels deep",
            code="body_too_deep",
        ) from None
    except ValueError as exc:
        # NaN/Infinity (refused by _reject_constant) and integers past Python's digit limit.
        raise InvalidRequestError(f"{what} is not JSON: {exc}", code="body_not_json") from None


def limit_nesting(value: object, where: str, level: int) -> None:
    """Raise ``body_too_deep`` if ``value`` takes the request past :data:`MAX_JSON_DEPTH` levels.

    ``level`` is the nesting level of the object or array holding ``value`` (the body itself is
    level 1). Codecs call this for the values whose shape they do not check — extra fields they
    ignore or keep as options — since every checked part of a request is shallow by its shape.
    Iterative, so a value nested right up to Python's recursion limit is measured too.
    """
    if not isinstance(value, dict | list):
        return
    pending: list[tuple[object, int]] = [(value, level + 1)]
    while pending:
        container, depth = pending.pop()
        if depth > MAX_JSON_DEPTH:
            raise InvalidRequestError(
                f"request nests arrays and objects more than {MAX_JSON_DEPTH} levels deep "
                f"(in {where})",
                code="body_too_deep",
                field=where,
            )
        items = container.values() if isinstance(container, dict) else cast(list[Any], container)
        pending.extend((item, depth + 1) for item in items if isinstance(item, dict | list))


def limit_nesting_except(
    data: Mapping[str, Any], checked: Sequence[str], where: str, level: int
) -> None:
    """:func:`limit_nesting` for each value of ``data`` (at ``level``) but those ``checked``."""
    for key, item in data.items():
        if key not in checked:
            limit_nesting(item, f"{where}.{key}" if where else key, level)


def is_number(value: object) -> bool:
    """A JSON number: int or float, but not bool (which Python counts as an int)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _reject_constant(name: str) -> object:
    # Python's json accepts NaN and Infinity; JSON (and every real server) does not.
    raise ValueError(f"{name} is not a JSON value")


class _NumberOverflow(ValueError):
    """A JSON number too large for a float."""


def _finite_float(text: str) -> float:
    """``float(text)``, refusing a literal that overflows (``1e999``) instead of making it inf."""
    value = float(text)
    if isinf(value):
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise _NumberOverflow(f"the number {shown}, too large for a float (it overflows)")
    return value


#: Shared by every strict parse: ``json.loads`` with a keyword argument builds a new decoder (and
#: its C scanner) per call, a measurable cost per request in a fake. A decoder keeps no state
#: from one call to the next, and json.loads itself shares one across threads the same way.
_STRICT_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
# The decoder's own scanner (C when the _json accelerator is there), called directly for
# documents with nothing around their value. typeshed does not declare JSONDecoder.scan_once,
# an attribute every JSONDecoder has had since Python 2.6.
_SCAN_VALUE: Callable[[str, int], tuple[Any, int]] = cast(Any, _STRICT_DECODER).scan_once
#: The same for requests a fake receives: also refuses floats that overflow.
_REQUEST_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)
_SCAN_REQUEST_VALUE: Callable[[str, int], tuple[Any, int]] = cast(Any, _REQUEST_DECODER).scan_once


def loads_strict(text: str | bytes) -> Any:
    """``json.loads`` that refuses NaN/Infinity like a real JSON parser.

    Exactly ``json.loads(text, parse_constant=...)``: the same input checks and errors.
    """
    if isinstance(text, str):
        if text.startswith("\ufeff"):
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
        return _decode_document(text)
    if isinstance(text, bytes | bytearray):
        # As json.loads reads bytes: UTF-8/16/32 told apart by the first bytes, no BOM check.
        return _decode_document(text.decode(json.detect_encoding(text), "surrogatepass"))
    return json.loads(text, parse_constant=_reject_constant)  # its TypeError for anything else


def _decode_document(
    text: str,
    scan: Callable[[str, int], tuple[Any, int]] = _SCAN_VALUE,
    decoder: json.JSONDecoder = _STRICT_DECODER,
) -> Any:
    """``decoder.decode(text)``, faster for a document with nothing around its value.

    What every client sends (the value from the first character to the last) goes straight to
    the C scanner that JSONDecoder.decode would call with the same index: the same value, without
    decode's Python frames and whitespace regexes (~0.6 µs, ~30% of a short body's parse).
    Anything else, and every error, takes the decoder's own path for its exact messages.
    """
    try:
        value, end = scan(text, 0)
    except StopIteration:
        pass
    else:
        if end == len(text):
            return value
    return decoder.decode(text)


def require_messages(
    value: object, field_name: str = "messages", *, roles: Collection[str] | None = None
) -> tuple[dict[str, str], ...]:
    """Validate an OpenAI-style message list: a list of {"role": str, "content": str}.

    ``value`` is the body's field ``field_name`` (nesting level 2). Role and content must be
    Unicode text: a JSON escape can carry a lone surrogate (``"\\ud800"``), which no UTF-8 reply
    echoing it, and no journal, can hold. Fields beside role and content are ignored, within
    :data:`MAX_JSON_DEPTH`. With ``roles`` (strict mode: :data:`ORIGINAL_ROLES`), any other role
    is ``not_like_original``; checked here, in the loop every request runs anyway.
    """
    if not isinstance(value, list):
        raise InvalidRequestError(
            f"{field_name!r} must be a list of messages", code="bad_messages", field=field_name
        )
    if not value:
        raise InvalidRequestError(
            f"{field_name!r} must not be empty", code="bad_messages", field=field_name
        )
    checked = []
    for index, message in enumerate(value):
        if not isinstance(message, dict):
            where = f"{field_name}[{index}]"
            raise InvalidRequestError(
                f"{where} must be an object", code="bad_messages", field=where
            )
        role = message.get("role")
        content = message.get("content")
        if not (isinstance(role, str) and isinstance(content, str)):
            key = "content" if isinstance(role, str) else "role"
            where = f"{field_name}[{index}].{key}"
            raise InvalidRequestError(f"{where} must be a string", code="bad_messages", field=where)
        # ASCII text (all the originals sent: they escaped everything else) holds no surrogate.
        if not (content.isascii() and role.isascii()):
            _require_unicode(message, f"{field_name}[{index}]")
        if len(message) != 2:
            limit_nesting_except(message, _MESSAGE_KEYS, f"{field_name}[{index}]", 3)
        if roles is not None and role not in roles:
            where = f"{field_name}[{index}].role"
            raise InvalidRequestError(
                f"request differs from the original client: {where} is {role!r} (the original "
                f"sent only {', '.join(sorted(roles))})",
                code="not_like_original",
                field=where,
            )
        checked.append({"role": role, "content": content})
    return tuple(checked)


def _require_unicode(message: Mapping[str, str], where: str) -> None:
    for key in _MESSAGE_KEYS:
        text = message[key]
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            field_path = f"{where}.{key}"
            raise InvalidRequestError(
                f"{field_path} is not Unicode text: character {exc.start} is a lone surrogate "
                f"({text[exc.start]!r}, an unpaired \\ud800-\\udfff escape)",
                code="bad_messages",
                field=field_path,
            ) from None


class UpstreamCodec(ABC):
    """The wire contract of one upstream, shared by its adapter and its fake."""

    #: Provider name as users write it ("Aivvm").
    name: ClassVar[str]
    #: The site the browser was on (Origin/Referer); also the API host except for CodeLinkAva.
    site_url: ClassVar[str]
    #: Scheme and host of the chat API on the real internet.
    api_base: ClassVar[str]
    #: Path of the chat endpoint.
    chat_path: ClassVar[str]
    #: Status the real service answered a good chat request with.
    success_status: ClassVar[int] = 200
    #: Content type of a successful reply.
    reply_content_type: ClassVar[str] = "text/plain; charset=utf-8"
    #: Headers the original browser-like client always sent (strict fakes require them).
    browser_headers: ClassVar[tuple[tuple[str, str], ...]]

    @abstractmethod
    def build_request(
        self, model: str, messages: Messages, options: Mapping[str, Any]
    ) -> WireRequest:
        """The request the original client sent for this call (``model`` already resolved)."""

    @abstractmethod
    def parse_request(self, request: ReceivedRequest, *, strict: bool = True) -> ChatRequest:
        """Check a request as the real service would; raise InvalidRequestError naming the fault."""

    @abstractmethod
    def encode_reply(self, pieces: Sequence[str], framing: Framing = Framing()) -> list[bytes]:
        """Reply frames (logical units: a text piece, an SSE event) for the given text pieces."""

    @abstractmethod
    def new_decoder(self, decoding: Decoding = "correct") -> ReplyDecoder:
        """A fresh incremental decoder for one reply stream."""
