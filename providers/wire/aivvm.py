"""Aivvm: JSON request, reply streamed as raw UTF-8 text with no framing and no end marker."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from providers.wire import chatbot_ui
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
    reject_unless_original,
)
from providers.wire.text import Utf8StreamDecoder, legacy_aivvm_decode_piece

SITE = "https://chat.aivvm.com"
DEFAULT_SYSTEM_PROMPT = (
    "You are ChatGPT, a large language model trained by OpenAI. "
    "Follow the user's instructions carefully. Respond using markdown."
)
#: id → display name, as the site's /api/models listed them.
MODELS: dict[str, str] = {
    "gpt-3.5-turbo": "GPT-3.5",
    "gpt-3.5-turbo-0613": "GPT-3.5-0613",
    "gpt-3.5-turbo-16k": "GPT-3.5-16K",
    "gpt-3.5-turbo-16k-0613": "GPT-3.5-16K-0613",
    "gpt-4": "GPT-4",
    "gpt-4-0613": "GPT-4-0613",
    "gpt-4-32k": "GPT-4-32K",
    "gpt-4-32k-0613": "GPT-4-32K-0613",
}
# Everything the original sent besides content-type and content-length, in its order.
BROWSER_HEADERS: tuple[tuple[str, str], ...] = (
    ("accept", "text/event-stream"),
    ("accept-language", "en-US,en;q=0.9"),
    ("sec-ch-ua", '"Chrome";v="117", "Not;A=Brand";v="8", "Chromium";v="117"'),
    ("sec-ch-ua-mobile", "?0"),
    ("sec-ch-ua-platform", '"Windows"'),
    ("sec-fetch-dest", "empty"),
    ("sec-fetch-mode", "cors"),
    ("sec-fetch-site", "same-origin"),
    ("sec-gpc", "1"),
    ("referrer", f"{SITE}/"),  # sic: the original's header was literally named "referrer"
    (
        "user-agent",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/117.0.0.0 Safari/537.36",
    ),
)


class AivvmCodec(UpstreamCodec):
    name = "Aivvm"
    site_url = SITE
    api_base = SITE
    chat_path = "/api/chat"
    models_path = "/api/models"
    browser_headers = BROWSER_HEADERS

    def build_request(
        self, model: str, messages: Messages, options: Mapping[str, Any]
    ) -> WireRequest:
        body = dumps_like_python(
            {
                "model": {"id": model, "name": MODELS[model]},
                "messages": [dict(message) for message in messages],
                "key": "",
                "prompt": options.get("system_message", DEFAULT_SYSTEM_PROMPT),
                "temperature": options.get("temperature", 0.7),
            }
        )
        headers = (
            *BROWSER_HEADERS[:2],
            ("content-type", "application/json"),
            ("content-length", str(len(body))),
            *BROWSER_HEADERS[2:],
        )
        return WireRequest("POST", self.chat_path, headers, body)

    def parse_request(self, request: ReceivedRequest, *, strict: bool = True) -> ChatRequest:
        data, model, messages = chatbot_ui.parse_body(
            request,
            models=MODELS,
            model_example='{"id": "gpt-4", "name": "GPT-4"}',
            roles=ORIGINAL_ROLES if strict else None,
        )
        if strict:
            problems = header_differences(request, BROWSER_HEADERS)
            if model.get("name") != MODELS[model["id"]]:
                problems.append(
                    f"model.name is {model.get('name')!r}, expected {MODELS[model['id']]!r}"
                )
            if len(model) != 2:
                problems.append(f"model fields are {list(model)}, expected ['id', 'name']")
            problems += chatbot_ui.key_order_problems(data)
            reject_unless_original(problems)
        else:
            limit_nesting_except(model, ("id",), "model", 2)  # unchecked beside the id
        return chatbot_ui.chat_request(data, model, messages)

    def encode_reply(self, pieces: Sequence[str], framing: Framing = Framing()) -> list[bytes]:
        return chatbot_ui.encode_text(pieces, framing)

    def new_decoder(self, decoding: Decoding = "correct") -> RawTextDecoder | LegacyAivvmDecoder:
        return RawTextDecoder() if decoding == "correct" else LegacyAivvmDecoder()

    def models_reply(self) -> bytes:
        """Body of ``POST /api/models``: the model list the site offered."""
        return dumps_like_python([{"id": key, "name": name} for key, name in MODELS.items()])


class RawTextDecoder:
    """Correct decoding of a raw UTF-8 text stream: characters split across chunks survive."""

    done = False

    def __init__(self) -> None:
        self._utf8 = Utf8StreamDecoder()

    def feed(self, data: bytes) -> list[str | None]:
        text = self._utf8.feed(data)
        return [text] if text else []

    def finish(self) -> list[str | None]:
        text = self._utf8.finish()
        return [text] if text else []


class LegacyAivvmDecoder:
    """The original: each piece (≤ 4096 bytes) as UTF-8, else as ``unicode-escape`` (mojibake)."""

    done = False

    def feed(self, data: bytes) -> list[str | None]:
        return [legacy_aivvm_decode_piece(data)]

    def finish(self) -> list[str | None]:
        return []


CODEC = AivvmCodec()
