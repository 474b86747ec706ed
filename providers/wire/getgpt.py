"""GetGpt: an AES-CBC encrypted JSON request; the reply is OpenAI-style ``data:`` lines.

The request body is ``{"signature": hex(ciphertext) + key + iv}`` (see
:mod:`providers.wire.signature`). Each call has fresh key material and a fresh UUID; both sources
are injectable so golden tests can pin the exact bytes.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from providers.errors import InvalidRequestError, MalformedReplyError, TruncatedStreamError
from providers.wire import signature
from providers.wire.common import (
    ORIGINAL_ROLES,
    ChatRequest,
    Decoding,
    Framing,
    Messages,
    ReceivedRequest,
    UpstreamCodec,
    WireRequest,
    dumps_like_python,
    header_differences,
    limit_nesting_except,
    loads_request_json,
    parse_json_object,
    reject_unless_original,
    require_messages,
)
from providers.wire.lines import RequestsLineSplitter
from providers.wire.openai_chunks import DONE, delta_content, encode_events
from providers.wire.sse import SSELineDecoder, StreamStart

SITE = "https://chat.getgpt.world"
MODEL = "gpt-3.5-turbo"
#: Plaintext keys in the original's order, with the defaults it used.
PLAINTEXT_DEFAULTS: dict[str, Any] = {
    "frequency_penalty": 0,
    "max_tokens": 4000,
    "presence_penalty": 0,
    "temperature": 1,
    "top_p": 1,
}
PLAINTEXT_KEYS = (
    "messages",
    "frequency_penalty",
    "max_tokens",
    "model",
    "presence_penalty",
    "temperature",
    "top_p",
    "stream",
    "uuid",
)
BROWSER_HEADERS: tuple[tuple[str, str], ...] = (
    ("Referer", f"{SITE}/"),
    (
        "user-agent",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/114.0.0.0 Safari/537.36",
    ),
)
LEGACY_LINE_READ_SIZE = 512  # requests' iter_lines() reads iter_content(512)
#: Plaintext options the original sent as numbers (the caller's, or the defaults above).
NUMBER_OPTIONS = ("frequency_penalty", "presence_penalty", "temperature", "top_p")
#: Exact types: a bool is not a number here. None too: the original passed a caller's
#: ``temperature=None`` through as null, which OpenAI's API read as "the default".
_NUMBER_TYPES = frozenset({int, float, type(None)})
#: str(uuid.uuid4()), as the original made it: lowercase hex in the 8-4-4-4-12 layout.
_UUID_MATCH = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}").fullmatch


class GetGptCodec(UpstreamCodec):
    name = "GetGpt"
    site_url = SITE
    api_base = SITE
    chat_path = "/api/chat/stream"
    success_status = 201  # what the independent C++ client required
    reply_content_type = "text/event-stream"
    browser_headers = BROWSER_HEADERS

    def __init__(
        self,
        *,
        new_uuid: Callable[[], str] = lambda: str(uuid.uuid4()),
        randbytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self._new_uuid = new_uuid
        self._randbytes = randbytes

    def plaintext(self, messages: Messages, options: Mapping[str, Any]) -> bytes:
        """The JSON the original encrypted; the model is fixed whatever the caller asked."""
        fields = {key: options.get(key, default) for key, default in PLAINTEXT_DEFAULTS.items()}
        return dumps_like_python(
            {
                "messages": [dict(message) for message in messages],
                "frequency_penalty": fields["frequency_penalty"],
                "max_tokens": fields["max_tokens"],
                "model": MODEL,
                "presence_penalty": fields["presence_penalty"],
                "temperature": fields["temperature"],
                "top_p": fields["top_p"],
                "stream": True,
                "uuid": self._new_uuid(),
            }
        )

    def build_request(
        self, model: str, messages: Messages, options: Mapping[str, Any]
    ) -> WireRequest:
        key_hex, iv_hex = signature.new_key_material(self._randbytes)
        sealed = signature.encrypt_signature(
            self.plaintext(messages, options), key_hex=key_hex, iv_hex=iv_hex
        )
        headers = (("Content-Type", "application/json"), *BROWSER_HEADERS)
        return WireRequest(
            "POST", self.chat_path, headers, dumps_like_python({"signature": sealed})
        )

    def parse_request(self, request: ReceivedRequest, *, strict: bool = True) -> ChatRequest:
        data = parse_json_object(request.body)
        if "signature" not in data:
            raise InvalidRequestError(
                "missing field 'signature'", code="missing_field", field="signature"
            )
        if data["signature"] is None:
            raise InvalidRequestError(
                '{"signature": null}: the client stopped encrypting its request (a later '
                "GetGpt adapter did this); the real service could not serve it",
                code="signature_null",
                field="signature",
            )
        if len(data) != 1:
            limit_nesting_except(data, ("signature",), "", 1)  # ignored beside the signature
        # A real server just used the 16 key/IV characters as bytes; only the strict fake insists
        # they look like the lowercase hex the original client always produced.
        plaintext = signature.decrypt_signature(data["signature"], strict_key_chars=strict)
        # Everything up to a usable plaintext is one stage with one answer (no padding oracle):
        # the precise reason is kept on the error for the journal, not sent to the client.
        try:
            # The text decrypt_signature checked to be UTF-8. json.loads of the bytes would guess
            # the encoding from the first bytes and take UTF-16 or UTF-32 (valid UTF-8 too, NULs
            # and all), which a real server reading the plaintext as UTF-8 never did.
            inner = loads_request_json(plaintext.decode("utf-8"), "plaintext")
            if not isinstance(inner, dict):
                raise ValueError("plaintext is not a JSON object")
            missing = [key for key in PLAINTEXT_KEYS if key not in inner]
            if missing:
                raise ValueError(f"plaintext lacks {missing}")
            messages = require_messages(inner["messages"], roles=ORIGINAL_ROLES if strict else None)
        except InvalidRequestError as exc:
            if exc.code == "not_like_original":
                raise  # a strict-mode difference, named like the others below
            raise signature.signature_error(f"decrypted plaintext unusable: {exc}") from None
        except ValueError as exc:
            raise signature.signature_error(f"decrypted plaintext unusable: {exc}") from None
        if strict:
            problems = header_differences(request, BROWSER_HEADERS)
            if len(data) != 1:
                problems.append(f"body fields are {list(data)}, expected only 'signature'")
            if tuple(inner) != PLAINTEXT_KEYS:
                problems.append(
                    f"plaintext keys are {list(inner)}, expected {list(PLAINTEXT_KEYS)}"
                )
            if inner["model"] != MODEL or inner["stream"] is not True:
                problems.append(f'plaintext must have "model": "{MODEL}" and "stream": true')
            problems += _option_problems(inner)
            reject_unless_original(problems)
        else:
            # Lenient: any option values, kept unchecked, so only their nesting is limited.
            limit_nesting_except(inner, ("messages",), "plaintext", 1)
        options = {key: inner[key] for key in PLAINTEXT_KEYS if key != "messages"}
        return ChatRequest(
            model=str(inner["model"]), messages=messages, options=options, plaintext=plaintext
        )

    def encode_reply(self, pieces: Sequence[str], framing: Framing = Framing()) -> list[bytes]:
        return encode_events(pieces, framing, model=MODEL)

    def new_decoder(self, decoding: Decoding = "correct") -> DataLineDecoder | LegacyGetGptDecoder:
        return DataLineDecoder() if decoding == "correct" else LegacyGetGptDecoder()


def _option_problems(inner: dict[str, Any]) -> list[str]:
    """Strict mode: option values of a type the original client could not have sent."""
    numbers = _NUMBER_TYPES
    max_tokens = inner["max_tokens"]
    request_uuid = inner["uuid"]
    if (
        type(inner["frequency_penalty"]) in numbers
        and type(inner["presence_penalty"]) in numbers
        and type(inner["temperature"]) in numbers
        and type(inner["top_p"]) in numbers
        and (max_tokens is None or (type(max_tokens) is int and max_tokens > 0))
        and type(request_uuid) is str
        and _UUID_MATCH(request_uuid) is not None
    ):
        return []  # what every request of the original passes; the details below cost more
    problems = [
        f"plaintext {key} is {inner[key]!r}, expected a number or null"
        for key in NUMBER_OPTIONS
        if type(inner[key]) not in numbers
    ]
    if max_tokens is not None and (type(max_tokens) is not int or max_tokens < 1):
        problems.append(
            f"plaintext max_tokens is {max_tokens!r}, expected a positive integer or null"
        )
    if type(request_uuid) is not str or _UUID_MATCH(request_uuid) is None:
        problems.append(
            f"plaintext uuid is {request_uuid!r}, expected a UUID string such as "
            "'0e7c2b8a-3f4d-4e1a-9b6c-5d8e7f1a2b3c'"
        )
    return problems


class DataLineDecoder:
    """Correct decoding: every ``data:`` line is one chunk; stop at ``[DONE]``; EOF before it is
    a :class:`TruncatedStreamError` carrying the text so far."""

    def __init__(self) -> None:
        self._lines = SSELineDecoder(errors="strict")
        self._start = StreamStart()
        self._text: list[str] = []
        self.done = False

    def feed(self, data: bytes) -> list[str | None]:
        self._start.keep(data)
        return self._handle(self._lines.feed(data))

    def finish(self) -> list[str | None]:
        pieces = self._handle(self._lines.finish())
        if not self.done:
            malformed = self._start.not_an_event_stream("GetGpt")
            if malformed is not None:
                raise malformed
            where = "inside a line" if self._lines.partial else "without data: [DONE]"
            raise TruncatedStreamError(f"GetGpt stream ended {where}", partial="".join(self._text))
        return pieces

    def _handle(self, lines: list[str]) -> list[str | None]:
        pieces: list[str | None] = []
        for line in lines:
            if self.done or not line.startswith("data:"):
                continue  # blank separators, comments; nothing after [DONE] counts
            self._start.saw_data = True
            payload = line[6:] if line.startswith("data: ") else line[5:]
            if payload == DONE:
                self.done = True
                continue
            content = delta_content(payload)
            if content:
                self._text.append(content)
                pieces.append(content)
        return pieces


class LegacyGetGptDecoder:
    """The original: requests' ``iter_lines()``; lines containing ``content`` are split on
    ``data: `` and element 1 parsed; ``delta.content`` yielded even when null; [DONE] ignored."""

    done = False

    def __init__(self) -> None:
        self._lines = RequestsLineSplitter()

    def feed(self, data: bytes) -> list[str | None]:
        pieces: list[str | None] = []
        for start in range(0, len(data), LEGACY_LINE_READ_SIZE):
            pieces += _legacy_lines(self._lines.feed(data[start : start + LEGACY_LINE_READ_SIZE]))
        return pieces

    def finish(self) -> list[str | None]:
        return _legacy_lines(self._lines.finish())


def _legacy_lines(lines: list[bytes]) -> list[str | None]:
    pieces: list[str | None] = []
    for line in lines:
        if b"content" not in line:
            continue
        try:
            chunk = json.loads(line.decode("utf-8").split("data: ")[1])
            pieces.append(chunk["choices"][0]["delta"]["content"])
        except (ValueError, IndexError, KeyError, TypeError) as exc:
            raise MalformedReplyError(
                f"legacy GetGpt decoding crashed: {type(exc).__name__}: {exc}"
            ) from exc
    return pieces


CODEC = GetGptCodec()
