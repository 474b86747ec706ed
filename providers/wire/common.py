"""What every upstream codec shares: request/response value types and the codec contract.

Nothing here does I/O. A codec turns a chat call into request bytes, request bytes back into a
chat call (for the fakes), reply text into reply frames (for the fakes) and reply bytes into text
(for the adapters). Adapters and fakes are thin shells around these pure functions.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
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


def parse_json_object(body: bytes, what: str = "request body") -> dict[str, Any]:
    """Decode a JSON object or raise an :class:`InvalidRequestError` that says what is wrong."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequestError(
            f"{what} is not UTF-8 (byte {exc.start})", code="body_not_utf8"
        ) from None
    try:
        value = loads_strict(text)
    except json.JSONDecodeError as exc:
        raise InvalidRequestError(
            f"{what} is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
            code="body_not_json",
        ) from None
    except RecursionError:
        # json.loads recurses per nesting level; a hostile body can exhaust the stack.
        raise InvalidRequestError(f"{what} nests JSON too deeply", code="body_too_deep") from None
    except ValueError as exc:
        # NaN/Infinity (refused by _reject_constant) and integers past Python's digit limit.
        raise InvalidRequestError(f"{what} is not JSON: {exc}", code="body_not_json") from None
    if not isinstance(value, dict):
        raise InvalidRequestError(
            f"{what} must be a JSON object, got {type(value).__name__}", code="body_not_object"
        )
    return value


def is_number(value: object) -> bool:
    """A JSON number: int or float, but not bool (which Python counts as an int)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _reject_constant(name: str) -> object:
    # Python's json accepts NaN and Infinity; JSON (and every real server) does not.
    raise ValueError(f"{name} is not a JSON value")


#: Shared by every strict parse: ``json.loads`` with a keyword argument builds a new decoder (and
#: its C scanner) per call, a measurable cost per request in a fake. A decoder keeps no state
#: from one call to the next, and json.loads itself shares one across threads the same way.
_STRICT_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
# The decoder's own scanner (C when the _json accelerator is there), called directly for
# documents with nothing around their value. typeshed does not declare JSONDecoder.scan_once,
# an attribute every JSONDecoder has had since Python 2.6.
_SCAN_VALUE: Callable[[str, int], tuple[Any, int]] = cast(Any, _STRICT_DECODER).scan_once


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


def _decode_document(text: str) -> Any:
    """``_STRICT_DECODER.decode(text)``, faster for a document with nothing around its value.

    What every client sends (the value from the first character to the last) goes straight to
    the C scanner that JSONDecoder.decode would call with the same index: the same value, without
    decode's Python frames and whitespace regexes (~0.6 µs, ~30% of a short body's parse).
    Anything else, and every error, takes the decoder's own path for its exact messages.
    """
    try:
        value, end = _SCAN_VALUE(text, 0)
    except StopIteration:
        pass
    else:
        if end == len(text):
            return value
    return _STRICT_DECODER.decode(text)


def require_messages(value: object, field_name: str = "messages") -> tuple[dict[str, str], ...]:
    """Validate an OpenAI-style message list: a list of {"role": str, "content": str}."""
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
        checked.append({"role": role, "content": content})
    return tuple(checked)


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
