"""Golden request bytes: every adapter sends exactly what the original client sent.

Two independent checks per provider:
1. the codec's request equals literal header lists (tests/wire_literals.py) and body bytes
   written out by hand from docs/PROTOCOLS.md (escapes and all), and
2. on a raw socket, the adapter's whole request (request line, header lines in order, body) is
   byte-identical to the one produced by an original-style call: the same HTTP library used the
   way the original code used it (``requests.post(headers=..., data=/json=...)``,
   ``ClientSession(headers=...).post(json=...)``).
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import aiohttp
import pytest
import requests

from providers import AI365VIP, Aivvm, CodeLinkAva, GetGpt
from providers.wire.common import UpstreamCodec
from providers.wire.getgpt import GetGptCodec
from tests import aes_oracle as oracle
from tests.rawhttp import RawReply, raw_server
from tests.wire_literals import ORIGINAL_HEADERS

MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Привет, как дела? 👋"},
]
ESCAPED_USER = (
    r"\u041f\u0440\u0438\u0432\u0435\u0442, \u043a\u0430\u043a "
    r"\u0434\u0435\u043b\u0430? \ud83d\udc4b"
)
MESSAGES_JSON = (
    '[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "'
    + ESCAPED_USER
    + '"}]'
)

AIVVM_BODY = (
    '{"model": {"id": "gpt-4", "name": "GPT-4"}, "messages": ' + MESSAGES_JSON + ', "key": "", '
    '"prompt": "You are ChatGPT, a large language model trained by OpenAI. Follow the '
    'user\'s instructions carefully. Respond using markdown.", "temperature": 0.7}'
).encode()
# Aivvm's original counted its own body into a content-length right after content-type.
AIVVM_HEADERS = [
    *ORIGINAL_HEADERS["Aivvm"][:3],
    ("content-length", str(len(AIVVM_BODY))),
    *ORIGINAL_HEADERS["Aivvm"][3:],
]

AI365_BODY = (
    '{"model": {"id": "gpt-4o", "name": "GPT-3.5", "maxLength": 3000, "tokenLimit": 2048}, '
    '"messages": [{"role": "user", "content": "System: Be brief.\\nUser: '
    + ESCAPED_USER
    + '\\nAssistant:"}], "key": "", "prompt": "You are a helpful assistant.", "temperature": 1}'
).encode()
AI365_HEADERS = list(ORIGINAL_HEADERS["AI365VIP"])

CODELINK_BODY = (
    '{"messages": ' + MESSAGES_JSON + ', "temperature": 0.2, "stream": true, "top_p": 0.5}'
).encode()
CODELINK_SESSION_HEADERS = list(ORIGINAL_HEADERS["CodeLinkAva"])

GETGPT_UUID = "123e4567-e89b-42d3-a456-426614174000"
GETGPT_PLAINTEXT = (
    '{"messages": ' + MESSAGES_JSON + ', "frequency_penalty": 0, "max_tokens": 4000, '
    '"model": "gpt-3.5-turbo", "presence_penalty": 0, "temperature": 1, "top_p": 1, '
    '"stream": true, "uuid": "' + GETGPT_UUID + '"}'
).encode()
GETGPT_HEADERS = list(ORIGINAL_HEADERS["GetGpt"])


def _fixed_bytes(values: list[bytes]) -> Any:
    queue = list(values)
    return lambda n: queue.pop(0)


def _pinned_getgpt_codec() -> GetGptCodec:
    return GetGptCodec(
        new_uuid=lambda: GETGPT_UUID,
        randbytes=_fixed_bytes([bytes.fromhex(oracle.KEY_CHARS), bytes.fromhex(oracle.IV_CHARS)]),
    )


class PinnedGetGpt(GetGpt):
    codec: ClassVar[UpstreamCodec] = GetGptCodec(new_uuid=lambda: GETGPT_UUID)


# -- 1. codec output against the literals ---------------------------------------------------


def test_aivvm_request_literal() -> None:
    wire = Aivvm.codec.build_request("gpt-4", MESSAGES, {})
    assert (wire.method, wire.path) == ("POST", "/api/chat")
    assert wire.body == AIVVM_BODY
    assert list(wire.headers) == AIVVM_HEADERS


def test_aivvm_options_override_prompt_and_temperature() -> None:
    wire = Aivvm.codec.build_request("gpt-4", MESSAGES, {"system_message": "S", "temperature": 1})
    body = json.loads(wire.body)
    assert (body["prompt"], body["temperature"]) == ("S", 1)
    assert list(body) == ["model", "messages", "key", "prompt", "temperature"]


def test_ai365vip_request_literal() -> None:
    wire = AI365VIP.codec.build_request("gpt-4o", MESSAGES, {})
    assert wire.body == AI365_BODY
    assert list(wire.headers) == AI365_HEADERS


def test_ai365vip_single_message_is_sent_as_is() -> None:
    wire = AI365VIP.codec.build_request("gpt-4o", [{"role": "user", "content": "hi"}], {})
    assert json.loads(wire.body)["messages"] == [{"role": "user", "content": "hi"}]


def test_codelinkava_request_literal_with_merged_kwargs() -> None:
    wire = CodeLinkAva.codec.build_request("", MESSAGES, {"temperature": 0.2, "top_p": 0.5})
    assert wire.body == CODELINK_BODY
    assert list(wire.headers) == CODELINK_SESSION_HEADERS
    assert wire.body_content_type == "application/json"


def test_getgpt_request_literal_and_independent_ciphertext() -> None:
    wire = _pinned_getgpt_codec().build_request("gpt-3.5-turbo", MESSAGES, {})
    assert list(wire.headers) == GETGPT_HEADERS
    expected = b'{"signature": "' + oracle.seal(GETGPT_PLAINTEXT).encode() + b'"}'
    assert wire.body == expected


def test_getgpt_model_is_fixed_and_uuid_fresh() -> None:
    codec = GetGptCodec()
    first = json.loads(codec.plaintext(MESSAGES, {}))
    second = json.loads(codec.plaintext(MESSAGES, {}))
    assert first["model"] == second["model"] == "gpt-3.5-turbo"
    assert first["uuid"] != second["uuid"]


# -- 2. on the wire, against original-style calls ------------------------------------------

OK_REPLY = RawReply(chunks=[b"ok"])
SSE_DONE = RawReply(
    headers=[("Content-Type", "text/event-stream")],
    chunks=[b'data: {"choices":[{"delta":{"content":"ok"}}]}\n\n', b"data: [DONE]\n\n"],
)


def test_aivvm_on_the_wire_matches_original_requests_call() -> None:
    with raw_server(OK_REPLY) as server:
        requests.post(
            server.url + "/api/chat",
            headers=dict(AIVVM_HEADERS),
            data=AIVVM_BODY.decode(),
            stream=True,
            timeout=10,
        ).close()
        text = "".join(Aivvm.create_completion("gpt-4", MESSAGES, stream=True, base_url=server.url))
    assert text == "ok"
    original, ours = server.requests
    assert ours.head == original.head
    assert ours.body == original.body == AIVVM_BODY


def test_getgpt_on_the_wire_matches_original_requests_call() -> None:
    sealed = oracle.seal(GETGPT_PLAINTEXT)
    with raw_server(SSE_DONE) as server:
        requests.post(
            server.url + "/api/chat/stream",
            headers=dict(GETGPT_HEADERS),
            json={"signature": sealed},
            stream=True,
            timeout=10,
        ).close()

        class Pinned(GetGpt):
            codec: ClassVar[UpstreamCodec] = _pinned_getgpt_codec()

        text = "".join(Pinned.create_completion("", MESSAGES, base_url=server.url))
    assert text == "ok"
    original, ours = server.requests
    assert ours.head == original.head
    assert ours.body == original.body


@pytest.mark.parametrize(
    ("provider", "headers", "body", "path", "json_body"),
    [
        (AI365VIP, AI365_HEADERS, AI365_BODY, "/api/chat", "ai365"),
        (CodeLinkAva, CODELINK_SESSION_HEADERS, CODELINK_BODY, "/api/chat", "codelink"),
    ],
)
async def test_async_adapters_on_the_wire_match_original_aiohttp_call(
    provider: Any, headers: list[tuple[str, str]], body: bytes, path: str, json_body: str
) -> None:
    reply = SSE_DONE if provider is CodeLinkAva else OK_REPLY
    with raw_server(reply) as server:
        async with (
            aiohttp.ClientSession(headers=dict(headers)) as session,
            session.post(server.url + path, json=json.loads(body)) as response,
        ):
            await response.read()
        kwargs: dict[str, Any] = {"base_url": server.url}
        model = "gpt-4o" if provider is AI365VIP else ""
        if provider is CodeLinkAva:
            kwargs.update(temperature=0.2, top_p=0.5)
        pieces = [
            piece async for piece in provider.create_async_generator(model, MESSAGES, **kwargs)
        ]
    assert "".join(pieces) == "ok"
    original, ours = server.requests
    assert ours.head == original.head
    assert ours.body == original.body == body
