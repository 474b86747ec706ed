"""Response scripts: what a fake answers to one chat request, as plain data. No I/O.

A :class:`ResponseScript` is set from Python, loaded from a scenario file or a control-endpoint
body (``from_dict``), or sent per request in the ``X-Tapedeck-Script`` header. A
:class:`ScriptQueue` hands out one script per accepted call: queued scripts first (call 1, call 2,
...), then the default.

``from_dict`` reads any well-typed script, so scripts round-trip as data. What could never go on
the wire is refused by :meth:`ResponseScript.check_sendable`, which the fakes apply when they
take a script from outside (:meth:`ResponseScript.load`: the header, ``POST
/__tapedeck__/script``) and again, for scripts set any other way, when they plan a reply: a
status that has no body (1xx, 204, 304), a header name that is no HTTP token or a value with a
control character (CR or LF would inject a header), a header the framing owns (Content-Length,
Transfer-Encoding), text the reply's encoding cannot encode, an encoding no web server sends
text in.

    >>> script = ResponseScript.from_dict({"text": "héllo", "chunking": "utf8"})
    >>> ResponseScript.from_dict(script.to_dict()) == script
    True
    >>> odd = ResponseScript(framing=Framing(text_encoding="cp437"))  # not sendable, still data
    >>> ResponseScript.from_dict(odd.to_dict()) == odd
    True
"""

from __future__ import annotations

import base64
import codecs
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal, get_args

from fake_upstreams.chunking import ChunkPlan
from fake_upstreams.faults import MAX_FAULT_SECONDS, Fault
from fake_upstreams.specdict import SpecReader
from providers.wire.common import ChatRequest, DoneMode, Framing
from providers.wire.http_fields import forbidden_in_value, is_header_name

HttpErrorKind = Literal["server-error", "cloudflare", "rate-limit"]
HTTP_ERROR_KINDS: tuple[HttpErrorKind, ...] = get_args(HttpErrorKind)
DONE_MODES: tuple[DoneMode, ...] = get_args(DoneMode)
_DEFAULT_FRAMING = Framing()
#: Statuses whose replies have no body (RFC 9110): a body sent after one is read by the client as
#: the start of the next response. (1xx are below the 200 the constructor allows.)
BODILESS_STATUSES = frozenset({204, 304})
#: Headers a fake writes from the reply's framing (chunked, or the length of an error page).
FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding"})
#: Encodings a reply's text may use (codec names as ``codecs.lookup`` gives them, so aliases
#: such as "latin-1" or "UTF8" are fine): the charsets web servers send text in. Left out on
#: purpose: the BOM-writing ones (utf-16, utf-32, utf-8-sig put a BOM before every frame, since
#: each frame is encoded on its own), and transformations that fail on ordinary text or are no
#: charset at all (idna refuses "a..b", punycode, utf-7, unicode_escape, rot13, ...).
TEXT_ENCODINGS = frozenset(
    {
        "utf-8",
        "utf-16-le",
        "utf-16-be",
        "utf-32-le",
        "utf-32-be",
        "ascii",
        *(f"iso8859-{part}" for part in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16)),
        *(f"cp{page}" for page in range(1250, 1259)),
        "koi8-r",
        "koi8-u",
        "shift_jis",
        "euc_jp",
        "euc_kr",
        "gb2312",
        "gbk",
        "gb18030",
        "big5",
    }
)
_SCRIPT_KEYS = (
    "text",
    "pieces",
    "raw",
    "chunking",
    "first_byte_delay",
    "chunk_delay",
    "chunk_delays",
    "framing",
    "status",
    "http_error",
    "retry_after",
    "fault",
    "headers",
)


class UnsendableScript(ValueError):
    """A script no fake can send; ``setting`` names the script key at fault ("headers[0]")."""

    def __init__(self, message: str, setting: str) -> None:
        super().__init__(message)
        self.setting = setting


@dataclass(frozen=True, slots=True)
class ResponseScript:
    """One reply. Content is ``text`` (cut into word pieces), or ``pieces`` (one frame each), or
    ``raw`` byte chunks that bypass the codec; with none of them, the reply echoes the request:
    ``"You said: <last user message>"``.

    ``chunk_delay`` is slept before every chunk after the first; ``chunk_delays[i]``, where given,
    replaces it before chunk ``i + 1``. ``status`` overrides the codec's success status;
    ``http_error`` replaces the reply with an error page as the real services sent them.
    """

    text: str | None = None
    pieces: tuple[str, ...] | None = None
    raw: tuple[bytes, ...] | None = None
    chunking: ChunkPlan = field(default_factory=ChunkPlan)
    first_byte_delay: float = 0.0
    chunk_delay: float = 0.0
    chunk_delays: tuple[float, ...] = ()
    framing: Framing = _DEFAULT_FRAMING
    status: int | None = None
    http_error: HttpErrorKind | None = None
    retry_after: int = 30
    fault: Fault | None = None
    headers: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        given = [name for name in ("text", "pieces", "raw") if getattr(self, name) is not None]
        if len(given) > 1:
            raise ValueError(f"a script takes only one of text, pieces, raw; got {given}")
        if self.status is not None and not 200 <= self.status <= 599:
            raise ValueError(f"script status must be 200..599, got {self.status}")
        if self.http_error is not None and self.http_error not in HTTP_ERROR_KINDS:
            raise ValueError(f"unknown http_error {self.http_error!r}")
        delays = (self.first_byte_delay, self.chunk_delay, *self.chunk_delays)
        if any(not 0.0 <= delay <= MAX_FAULT_SECONDS for delay in delays):
            raise ValueError(f"script delays must be between 0 and {MAX_FAULT_SECONDS:g} s")
        if self.retry_after < 0:
            raise ValueError("retry_after must be >= 0")

    def check_sendable(self) -> None:
        """Raise :class:`UnsendableScript` if no reply could be sent from this script.

        What can be known without a request (see the module docstring); what depends on the
        request (offsets beyond this reply's body, an echoed message the encoding cannot encode)
        is found when the reply is planned. Cheap for a script that changes none of it.
        """
        if self.status in BODILESS_STATUSES:
            raise UnsendableScript(
                f"script status {self.status} has no body (RFC 9110), but a fake's reply always "
                "has one: a client would read it as the start of the next response",
                "status",
            )
        for index, (name, value) in enumerate(self.headers):
            _check_header(name, value, f"headers[{index}]")
        encoding = self.framing.text_encoding
        if self.framing is not _DEFAULT_FRAMING:
            _check_text_encoding(encoding)
        texts = self.pieces if self.text is None else (self.text,)
        for index, text in enumerate(texts or ()):
            if not text.isascii():  # every encoding allowed encodes ASCII
                where = "text" if self.text is not None else f"pieces[{index}]"
                _check_encodable(text, encoding, where)

    @classmethod
    def load(cls, data: object) -> ResponseScript:
        """:meth:`from_dict`, then :meth:`check_sendable`: a script a fake takes from outside."""
        script = cls.from_dict(data)
        script.check_sendable()
        return script

    def text_pieces(self, chat: ChatRequest) -> list[str]:
        """The text pieces to encode (not used for ``raw`` scripts)."""
        if self.pieces is not None:
            return list(self.pieces)
        text = self.text if self.text is not None else f"You said: {chat.last_user_text}"
        return word_pieces(text)

    def delay_before(self, index: int) -> float:
        """Seconds to wait before chunk ``index`` (0 for the first: see ``first_byte_delay``)."""
        if index == 0:
            return 0.0
        if index - 1 < len(self.chunk_delays):
            return self.chunk_delays[index - 1]
        return self.chunk_delay

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data, leaving out every field that has its default value."""
        data: dict[str, Any] = {}
        if self.text is not None:
            data["text"] = self.text
        if self.pieces is not None:
            data["pieces"] = list(self.pieces)
        if self.raw is not None:
            data["raw"] = [_bytes_to_json(chunk) for chunk in self.raw]
        if self.chunking != ChunkPlan():
            data["chunking"] = self.chunking.to_dict()
        for name in ("first_byte_delay", "chunk_delay"):
            if getattr(self, name):
                data[name] = getattr(self, name)
        if self.chunk_delays:
            data["chunk_delays"] = list(self.chunk_delays)
        if self.framing != _DEFAULT_FRAMING:
            data["framing"] = framing_to_dict(self.framing)
        for name in ("status", "http_error"):
            if getattr(self, name) is not None:
                data[name] = getattr(self, name)
        if self.retry_after != 30:
            data["retry_after"] = self.retry_after
        if self.fault is not None:
            data["fault"] = self.fault.to_dict()
        if self.headers:
            data["headers"] = [list(pair) for pair in self.headers]
        return data

    @classmethod
    def from_dict(cls, data: object) -> ResponseScript:
        """Load a script; unknown keys and wrong types raise ``ValueError`` naming the key."""
        reader = SpecReader(data, "script", known=_SCRIPT_KEYS)
        raw = reader.items("raw")
        http_error = reader.choice("http_error", "server-error", HTTP_ERROR_KINDS)
        return cls(
            text=reader.text("text", "") if reader.has("text") else None,
            pieces=reader.texts("pieces"),
            raw=None if raw is None else tuple(_bytes_from_json(item) for item in raw),
            chunking=ChunkPlan.from_dict(reader.raw("chunking"))
            if reader.has("chunking")
            else ChunkPlan(),
            first_byte_delay=reader.number("first_byte_delay", 0.0, maximum=MAX_FAULT_SECONDS),
            chunk_delay=reader.number("chunk_delay", 0.0, maximum=MAX_FAULT_SECONDS),
            chunk_delays=reader.numbers("chunk_delays", maximum=MAX_FAULT_SECONDS) or (),
            framing=framing_from_dict(reader.raw("framing"))
            if reader.has("framing")
            else _DEFAULT_FRAMING,
            status=reader.integer("status", 0) if reader.has("status") else None,
            http_error=http_error if reader.has("http_error") else None,  # type: ignore[arg-type]
            retry_after=reader.integer("retry_after", 30, minimum=0),
            fault=Fault.from_dict(reader.raw("fault")) if reader.has("fault") else None,
            headers=_headers_from_json(reader.items("headers") or []),
        )


def word_pieces(text: str) -> list[str]:
    """Cut text after each run of whitespace: ``"You said: hi"`` → ``["You ", "said: ", "hi"]``."""
    return [piece for piece in re.findall(r"\S*\s*", text) if piece]


def framing_to_dict(framing: Framing) -> dict[str, Any]:
    """The framing options that differ from the defaults."""
    return {
        item.name: getattr(framing, item.name)
        for item in fields(framing)
        if getattr(framing, item.name) != getattr(_DEFAULT_FRAMING, item.name)
    }


def framing_from_dict(data: object) -> Framing:
    """Load framing options such as ``{"done": "missing", "crlf": true}``."""
    names = [item.name for item in fields(Framing)]
    reader = SpecReader(data, "framing", known=names)
    options: dict[str, Any] = {}
    for name in names:
        default = getattr(_DEFAULT_FRAMING, name)
        if name == "done":
            options[name] = reader.choice(name, default, DONE_MODES)
        elif isinstance(default, bool):
            options[name] = reader.flag(name, default)
        else:
            options[name] = reader.text(name, default)
    encoding = options["text_encoding"]
    try:
        codecs.lookup(encoding)
    except LookupError:  # a typo: no script could ever use it
        raise UnsendableScript(
            f"framing key 'text_encoding' names no codec: {encoding!r}", "framing.text_encoding"
        ) from None
    # Whether servers send text in it is ResponseScript.check_sendable's question: any real
    # codec round-trips as data.
    return Framing(**options)


def _check_text_encoding(encoding: str) -> None:
    """Raise :class:`UnsendableScript` unless ``encoding`` is one of :data:`TEXT_ENCODINGS`."""
    try:
        "".encode(encoding)
        name = codecs.lookup(encoding).name
    except LookupError:
        raise UnsendableScript(
            f"framing key 'text_encoding' names no codec: {encoding!r}", "framing.text_encoding"
        ) from None
    if name not in TEXT_ENCODINGS:
        raise UnsendableScript(
            f"framing key 'text_encoding' must be a charset web servers send text in (utf-8, "
            f"latin-1, cp1251, utf-16-le, ...), not {encoding!r}",
            "framing.text_encoding",
        )


def _check_header(name: str, value: str, where: str) -> None:
    if not is_header_name(name):
        raise UnsendableScript(
            f"script key 'headers': {name!r} is not a header name (an HTTP token: letters, "
            "digits and !#$%&'*+-.^_`|~)",
            where,
        )
    if name.lower() in FRAMING_HEADERS:
        raise UnsendableScript(
            f"script key 'headers': {name} is written by the fake from the reply's framing "
            "(chunked, or the length of an error page); a scripted one would contradict it",
            where,
        )
    forbidden = forbidden_in_value(value)
    if forbidden is not None:
        # CR or LF would end the header early or inject another; aiohttp refuses to send any
        # of these characters, which would cut the connection mid-reply.
        raise UnsendableScript(
            f"script key 'headers': the value of {name} holds {forbidden!r}, a control "
            f"character HTTP forbids in a header value: {value!r}",
            where,
        )
    if not value.isascii():
        _check_encodable(value, "utf-8", where)


def _check_encodable(text: str, encoding: str, where: str) -> None:
    try:
        text.encode(encoding)
    except UnicodeEncodeError as exc:
        bad = text[exc.start : exc.end]
        why = "lone surrogates are not Unicode text" if encoding == "utf-8" else "not in it"
        raise UnsendableScript(
            f"script key {where!r} cannot be encoded as {encoding}: {bad!r} at character "
            f"{exc.start} ({why})",
            where,
        ) from None


def _bytes_to_json(chunk: bytes) -> str | dict[str, str]:
    try:
        return chunk.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(chunk).decode("ascii")}


def _bytes_from_json(item: object) -> bytes:
    if isinstance(item, str):
        return item.encode("utf-8")
    reader = SpecReader(item, "raw chunk", known=("base64",))
    try:
        return base64.b64decode(reader.text("base64", ""), validate=True)
    except ValueError:
        raise ValueError(f"raw chunk {item!r} is not valid base64") from None


def _headers_from_json(items: Iterable[object]) -> tuple[tuple[str, str], ...]:
    pairs = []
    for item in items:
        if not (
            isinstance(item, list | tuple)
            and len(item) == 2
            and all(isinstance(part, str) for part in item)
        ):
            raise ValueError(
                f"script key 'headers' must hold [name, value] string pairs, got {item!r}"
            )
        pairs.append((item[0], item[1]))
    return tuple(pairs)


#: The default script. Scripts are immutable, so every queue shares this one: the plan cache
#: (keyed on the script object) then keeps the echo reply's plans across resets and tests.
_ECHO = ResponseScript()


class ScriptQueue:
    """Thread-safe: scripts per accepted call (first call, second call, ...), then ``default``."""

    def __init__(
        self, queue: Iterable[ResponseScript] = (), default: ResponseScript | None = None
    ) -> None:
        self._lock = threading.Lock()
        self._queue = list(queue)
        self._default = default or _ECHO
        self._calls = 0

    @property
    def calls(self) -> int:
        """How many scripts were handed out since the last reset."""
        with self._lock:
            return self._calls

    @property
    def pending(self) -> tuple[ResponseScript, ...]:
        with self._lock:
            return tuple(self._queue)

    @property
    def default(self) -> ResponseScript:
        with self._lock:
            return self._default

    def next(self) -> ResponseScript:
        """The script for the next call: the first queued one, else the default."""
        with self._lock:
            self._calls += 1
            return self._queue.pop(0) if self._queue else self._default

    def push(self, *scripts: ResponseScript) -> None:
        """Queue scripts for the next calls, after those already queued."""
        with self._lock:
            self._queue.extend(scripts)

    def replace(
        self, queue: Iterable[ResponseScript] = (), default: ResponseScript | None = None
    ) -> None:
        """Drop everything queued and the default; start counting calls again."""
        with self._lock:
            self._queue = list(queue)
            self._default = default or _ECHO
            self._calls = 0

    def reset(self) -> None:
        self.replace()

    def load(self, data: object) -> None:
        """Replace from ``{"queue": [...], "default": {...}}`` or one script dict (the default).

        Each script is taken with :meth:`ResponseScript.load`: one that could never be sent
        is refused here, before it replaces anything.
        """
        if isinstance(data, Mapping) and ("queue" in data or "default" in data):
            reader = SpecReader(data, "script queue", known=("queue", "default"))
            queue = [ResponseScript.load(item) for item in reader.items("queue") or []]
            default = reader.raw("default")
            self.replace(queue, None if default is None else ResponseScript.load(default))
        else:
            self.replace((), ResponseScript.load(data))

    def to_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "queue": [script.to_dict() for script in self._queue],
                "default": self._default.to_dict(),
                "calls": self._calls,
            }
