"""CodeLinkAva: plain JSON request (the model is never sent); reply is SSE ending in [DONE].

The site and the API live on different hosts: the browser headers name the site, the request
goes to the API host.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from providers.errors import InvalidRequestError, MalformedReplyError, TruncatedStreamError
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
    is_number,
    limit_nesting_except,
    parse_json_object,
    reject_unless_original,
    require_messages,
)
from providers.wire.lines import AiohttpLineSplitter
from providers.wire.openai_chunks import DONE, delta_content, encode_events
from providers.wire.sse import SSEDecoder, StreamStart

SITE = "https://ava-ai-ef611.web.app"
API = "https://ava-alpha-api.codelink.io"
REPLY_MODEL = "gpt-3.5-turbo"
#: The body fields whose values the fake checks; any other is an extra keyword argument.
CHECKED_KEYS = ("messages", "temperature", "stream")
BROWSER_HEADERS: tuple[tuple[str, str], ...] = (
    (
        "User-Agent",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/116.0.0.0 Safari/537.36",
    ),
    ("Accept", "*/*"),
    (
        "Accept-language",
        "en,fr-FR;q=0.9,fr;q=0.8,es-ES;q=0.7,es;q=0.6,en-US;q=0.5,am;q=0.4,de;q=0.3",
    ),
    ("Origin", SITE),
    ("Referer", f"{SITE}/"),
    ("Sec-Fetch-Dest", "empty"),
    ("Sec-Fetch-Mode", "cors"),
    ("Sec-Fetch-Site", "same-origin"),
)


class CodeLinkAvaCodec(UpstreamCodec):
    name = "CodeLinkAva"
    site_url = SITE
    api_base = API
    chat_path = "/api/chat"
    reply_content_type = "text/event-stream"
    browser_headers = BROWSER_HEADERS

    def build_request(
        self, model: str, messages: Messages, options: Mapping[str, Any]
    ) -> WireRequest:
        # Extra keyword arguments were merged into the body and override the defaults.
        body = dumps_like_python(
            {
                "messages": [dict(message) for message in messages],
                "temperature": 0.6,
                "stream": True,
                **options,
            }
        )
        # The original passed json=, so aiohttp added the content type after Content-Length.
        return WireRequest(
            "POST", self.chat_path, BROWSER_HEADERS, body, body_content_type="application/json"
        )

    def parse_request(self, request: ReceivedRequest, *, strict: bool = True) -> ChatRequest:
        data = parse_json_object(request.body)
        if "messages" not in data:
            raise InvalidRequestError(
                "missing field 'messages'", code="missing_field", field="messages"
            )
        messages = require_messages(data["messages"], roles=ORIGINAL_ROLES if strict else None)
        temperature = data.get("temperature", 0.6)
        if not is_number(temperature):
            raise InvalidRequestError(
                "'temperature' must be a number", code="bad_type", field="temperature"
            )
        if data.get("stream") is not True:
            raise InvalidRequestError(
                "'stream' must be true: this endpoint only streams", code="bad_type", field="stream"
            )
        if len(data) > 3 or (len(data) > 2 and "temperature" not in data):
            # The original merged the caller's extra keyword arguments in: kept as options,
            # unchecked, so only their nesting is limited.
            limit_nesting_except(data, CHECKED_KEYS, "", 1)
        if strict:
            problems = header_differences(request, BROWSER_HEADERS)
            if list(data)[:3] != ["messages", "temperature", "stream"]:
                problems.append(
                    f"body keys are {list(data)}, expected messages, temperature, stream"
                )
            reject_unless_original(problems)
        options = {key: value for key, value in data.items() if key != "messages"}
        return ChatRequest(model="", messages=messages, options=options)

    def encode_reply(self, pieces: Sequence[str], framing: Framing = Framing()) -> list[bytes]:
        return encode_events(pieces, framing, model=REPLY_MODEL)

    def new_decoder(
        self, decoding: Decoding = "correct"
    ) -> EventDecoder | LegacyCodeLinkAvaDecoder:
        return EventDecoder() if decoding == "correct" else LegacyCodeLinkAvaDecoder()


class EventDecoder:
    """Correct decoding: spec SSE events; stop at ``[DONE]``; EOF before it is truncation."""

    def __init__(self) -> None:
        self._events = SSEDecoder(errors="strict")
        self._start = StreamStart()
        self._text: list[str] = []
        self.done = False

    def feed(self, data: bytes) -> list[str | None]:
        pieces: list[str | None] = []
        self._start.keep(data)
        for event in self._events.feed(data):
            self._start.saw_data = True
            if self.done:
                break  # nothing after [DONE] is ever yielded
            if event.data == DONE:
                self.done = True
                break
            content = delta_content(event.data)
            if content:
                self._text.append(content)
                pieces.append(content)
        return pieces

    def finish(self) -> list[str | None]:
        if not self.done:
            cut = self._events.pending
            self._events.finish()
            malformed = self._start.not_an_event_stream("CodeLinkAva")
            if malformed is not None:
                raise malformed
            where = "inside an event" if cut else "without data: [DONE]"
            raise TruncatedStreamError(
                f"CodeLinkAva stream ended {where}", partial="".join(self._text)
            )
        return []


class LegacyCodeLinkAvaDecoder:
    """The original: lines; skip non-``data: ``; break at ``data: [DONE]``; parse
    ``json.loads(line[6:-1])`` (fails on a last line without a newline); yield non-empty
    ``delta.content``."""

    def __init__(self) -> None:
        self._lines = AiohttpLineSplitter()
        self.done = False

    def feed(self, data: bytes) -> list[str | None]:
        return self._handle(self._lines.feed(data))

    def finish(self) -> list[str | None]:
        return self._handle(self._lines.finish())

    def _handle(self, lines: list[bytes]) -> list[str | None]:
        pieces: list[str | None] = []
        for raw in lines:
            if self.done:
                break
            try:
                line = raw.decode()
                if not line.startswith("data: "):
                    continue
                if line.startswith("data: [DONE]"):
                    self.done = True
                    break
                content = json.loads(line[6:-1])["choices"][0]["delta"].get("content")
            except (ValueError, IndexError, KeyError, TypeError, AttributeError) as exc:
                raise MalformedReplyError(
                    f"legacy CodeLinkAva decoding crashed: {type(exc).__name__}: {exc}"
                ) from exc
            if content:
                pieces.append(content)
        return pieces


CODEC = CodeLinkAvaCodec()
