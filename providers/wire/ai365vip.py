"""AI365VIP: the conversation flattened into one user message; reply is raw text read by lines."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from providers.errors import MalformedReplyError
from providers.wire import chatbot_ui
from providers.wire.aivvm import RawTextDecoder
from providers.wire.common import (
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
    reject_unless_original,
)
from providers.wire.lines import AiohttpLineSplitter

SITE = "https://chat.ai365vip.com"
MODELS = ("gpt-3.5-turbo", "gpt-3.5-turbo-16k", "gpt-4o")
SYSTEM_PROMPT = "You are a helpful assistant."
MODEL_CARD = {"name": "GPT-3.5", "maxLength": 3000, "tokenLimit": 2048}
BROWSER_HEADERS: tuple[tuple[str, str], ...] = (
    ("accept", "*/*"),
    ("accept-language", "en-US,en;q=0.9"),
    ("content-type", "application/json"),
    ("origin", SITE),
    ("referer", f"{SITE}/en"),
    ("sec-ch-ua", '"Chromium";v="127", "Not)A;Brand";v="99"'),
    ("sec-ch-ua-arch", '"x86"'),
    ("sec-ch-ua-bitness", '"64"'),
    ("sec-ch-ua-full-version", '"127.0.6533.119"'),
    ("sec-ch-ua-full-version-list", '"Chromium";v="127.0.6533.119", "Not)A;Brand";v="99.0.0.0"'),
    ("sec-ch-ua-mobile", "?0"),
    ("sec-ch-ua-model", '""'),
    ("sec-ch-ua-platform", '"Linux"'),
    ("sec-ch-ua-platform-version", '"4.19.276"'),
    ("sec-fetch-dest", "empty"),
    ("sec-fetch-mode", "cors"),
    ("sec-fetch-site", "same-origin"),
    (
        "user-agent",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/127.0.0.0 Safari/537.36",
    ),
)


def flatten_conversation(messages: Messages) -> str:
    """The original's prompt: one message as is; several as ``Role: content`` lines + ``Assistant:``.

    >>> flatten_conversation([{"role": "user", "content": "hi"}])
    'hi'
    >>> flatten_conversation([{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}])
    'System: be brief\\nUser: hi\\nAssistant:'
    """  # noqa: E501
    if len(messages) <= 1:
        return messages[0]["content"] if messages else ""
    lines = [f"{message['role'].capitalize()}: {message['content']}" for message in messages]
    return "\n".join(lines) + "\nAssistant:"


class AI365VIPCodec(UpstreamCodec):
    name = "AI365VIP"
    site_url = SITE
    api_base = SITE
    chat_path = "/api/chat"
    browser_headers = tuple(pair for pair in BROWSER_HEADERS if pair[0] != "content-type")

    def build_request(
        self, model: str, messages: Messages, options: Mapping[str, Any]
    ) -> WireRequest:
        body = dumps_like_python(
            {
                "model": {"id": model, **MODEL_CARD},
                "messages": [{"role": "user", "content": flatten_conversation(messages)}],
                "key": "",
                "prompt": SYSTEM_PROMPT,
                "temperature": 1,
            }
        )
        return WireRequest("POST", self.chat_path, BROWSER_HEADERS, body)

    def parse_request(self, request: ReceivedRequest, *, strict: bool = True) -> ChatRequest:
        data, model, messages = chatbot_ui.parse_body(
            request,
            models=MODELS,
            model_example='{"id": "gpt-4o", "name": "GPT-3.5", ...}',
        )
        if strict:
            problems = header_differences(request, self.browser_headers)
            card = {key: model.get(key) for key in MODEL_CARD}
            if card != MODEL_CARD:
                problems.append(f"model card is {card}, expected {MODEL_CARD}")
            if len(model) != 1 + len(MODEL_CARD):
                problems.append(f"model fields are {list(model)}, expected id, {list(MODEL_CARD)}")
            if len(messages) != 1 or messages[0]["role"] != "user":
                problems.append("messages must be one user message (the flattened conversation)")
            problems += chatbot_ui.key_order_problems(data)
            reject_unless_original(problems)
        else:
            limit_nesting_except(model, ("id",), "model", 2)  # unchecked beside the id
        return chatbot_ui.chat_request(data, model, messages)

    def encode_reply(self, pieces: Sequence[str], framing: Framing = Framing()) -> list[bytes]:
        return chatbot_ui.encode_text(pieces, framing)

    def new_decoder(self, decoding: Decoding = "correct") -> RawTextDecoder | LegacyLineDecoder:
        return RawTextDecoder() if decoding == "correct" else LegacyLineDecoder()


class LegacyLineDecoder:
    """The original: ``async for chunk in response.content`` (lines), each strict UTF-8."""

    done = False

    def __init__(self) -> None:
        self._lines = AiohttpLineSplitter()

    def feed(self, data: bytes) -> list[str | None]:
        return [_decode_line(line) for line in self._lines.feed(data) if line]

    def finish(self) -> list[str | None]:
        return [_decode_line(line) for line in self._lines.finish() if line]


def _decode_line(line: bytes) -> str:
    try:
        return line.decode()
    except UnicodeDecodeError as exc:
        raise MalformedReplyError(f"legacy AI365VIP decoding crashed: {exc}") from exc


CODEC = AI365VIPCodec()
