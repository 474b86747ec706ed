"""A tiny codec for testing the generic fake-upstream machinery without any real provider.

Requests are ``{"model": ..., "messages": [...]}`` plus optional fields; strict mode requires the
browser header ``X-Dummy: yes``. Replies are SSE-like frames ``data: <piece>\\n\\n`` followed by
``data: [DONE]\\n\\n`` (the framing options ``done`` and ``crlf`` are honoured).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from providers.errors import InvalidRequestError
from providers.wire.common import (
    ChatRequest,
    Decoding,
    Framing,
    Messages,
    ReceivedRequest,
    ReplyDecoder,
    UpstreamCodec,
    WireRequest,
    dumps_like_python,
    header_differences,
    parse_json_object,
    require_messages,
)

MODELS = ("dummy-1", "dummy-2")


class DummyCodec(UpstreamCodec):
    name = "Dummy"
    site_url = "https://dummy.example"
    api_base = "https://api.dummy.example"
    chat_path = "/api/chat"
    success_status = 200
    reply_content_type = "text/event-stream"
    browser_headers = (("X-Dummy", "yes"),)

    def build_request(
        self, model: str, messages: Messages, options: Mapping[str, Any]
    ) -> WireRequest:
        body = {"model": model, "messages": [dict(m) for m in messages], **options}
        headers = (("Content-Type", "application/json"), *self.browser_headers)
        return WireRequest("POST", self.chat_path, headers, dumps_like_python(body))

    def parse_request(self, request: ReceivedRequest, *, strict: bool = True) -> ChatRequest:
        data = parse_json_object(request.body)
        messages = require_messages(data.get("messages"))
        model = data.get("model")
        if model not in MODELS:
            raise InvalidRequestError(
                f"unknown model {model!r}", code="unknown_model", field="model"
            )
        if strict:
            problems = header_differences(request, self.browser_headers)
            if problems:
                raise InvalidRequestError(
                    "; ".join(problems), status=403, code="not_a_browser", field="headers"
                )
        options = {k: v for k, v in data.items() if k not in ("model", "messages")}
        return ChatRequest(str(model), messages, options)

    def encode_reply(self, pieces: Sequence[str], framing: Framing = Framing()) -> list[bytes]:
        end = "\r\n" if framing.crlf else "\n"
        frames = [f"data: {piece}{end}{end}" for piece in pieces]
        if framing.done != "missing":
            frames.append(f"data: [DONE]{end}{end}")
        return [frame.encode(framing.text_encoding) for frame in frames]

    def new_decoder(self, decoding: Decoding = "correct") -> ReplyDecoder:
        raise NotImplementedError("the dummy codec is only used to drive fakes")


CODEC = DummyCodec()
