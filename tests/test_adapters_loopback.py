"""Every adapter end to end over a real loopback socket, through its sync and its async door.

The server is the raw-socket oracle in tests/rawhttp.py, so the chunk framing is exactly what
each test writes; expected texts are computed here from first principles, never by our codecs.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from typing import Any

import aiohttp
import pytest
import requests

from providers import AI365VIP, PROVIDERS, Aivvm, CodeLinkAva, GetGpt, Provider
from providers.errors import (
    AccessDeniedError,
    ConnectError,
    LocalProtocolError,
    MalformedReplyError,
    ModelNotSupportedError,
    RateLimitedError,
    StreamResetError,
    TruncatedStreamError,
    UpstreamHTTPError,
    UpstreamTimeoutError,
)
from providers.transport import Timeouts
from tests.fakes_support import SSE, SUCCESS_STATUS
from tests.rawhttp import RawReply, raw_server

MESSAGES = [{"role": "user", "content": "Say something"}]
TEXT = "Привет, мир! 👋 ok"
SSE_PROVIDERS = tuple(PROVIDERS[name] for name in SSE)
ALL = tuple(PROVIDERS.values())


def sse_line(content: str | None) -> bytes:
    delta = {} if content is None else {"content": content}
    chunk = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta}]}
    return b"data: " + json.dumps(chunk, ensure_ascii=False).encode() + b"\n\n"


def body_for(provider: type[Provider], pieces: Sequence[str], done: bool = True) -> bytes:
    if provider in SSE_PROVIDERS:
        return b"".join(sse_line(p) for p in pieces) + (b"data: [DONE]\n\n" if done else b"")
    return "".join(pieces).encode()


def split_at(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    edges = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges) if b > a]


def reply(provider: type[Provider], chunks: Sequence[bytes], **kwargs: Any) -> RawReply:
    kind = "text/event-stream" if provider in SSE_PROVIDERS else "text/plain; charset=utf-8"
    status = SUCCESS_STATUS[provider.__name__]
    return RawReply(status=status, headers=[("Content-Type", kind)], chunks=chunks, **kwargs)


def run_sync(provider: type[Provider], url: str, **kwargs: Any) -> list[str]:
    kwargs.setdefault("timeout", 10)
    return list(provider.create_completion("", MESSAGES, base_url=url, **kwargs))


async def run_async(provider: type[Provider], url: str, **kwargs: Any) -> list[str]:
    kwargs.setdefault("timeout", 10)
    agen = provider.create_async_generator("", MESSAGES, base_url=url, **kwargs)
    return [piece async for piece in agen]


async def collect(door: str, provider: type[Provider], url: str, **kwargs: Any) -> list[str]:
    """Run one call through the sync or the async door."""
    if door == "sync":
        return run_sync(provider, url, **kwargs)
    return await run_async(provider, url, **kwargs)


def every_byte(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


@pytest.mark.parametrize("provider", ALL, ids=lambda p: p.__name__)
def test_sync_door_decodes_text_split_everywhere(provider: type[Provider]) -> None:
    body = body_for(provider, ["Привет, ", "мир! 👋", " ok"])
    with raw_server(reply(provider, every_byte(body))) as server:
        assert "".join(run_sync(provider, server.url)) == TEXT


@pytest.mark.parametrize("provider", ALL, ids=lambda p: p.__name__)
async def test_async_door_decodes_text_split_everywhere(provider: type[Provider]) -> None:
    body = body_for(provider, ["Привет, ", "мир! 👋", " ok"])
    with raw_server(reply(provider, every_byte(body))) as server:
        assert "".join(await run_async(provider, server.url)) == TEXT


@pytest.mark.parametrize("provider", ALL, ids=lambda p: p.__name__)
def test_stream_false_gives_one_piece(provider: type[Provider]) -> None:
    with raw_server(reply(provider, [body_for(provider, ["a", "b"])])) as server:
        pieces = list(provider.create_completion("", MESSAGES, stream=False, base_url=server.url))
    assert pieces == ["ab"]


def test_aivvm_legacy_mojibake_exactly_where_a_character_is_split() -> None:
    data = "да".encode()  # d0 b4 d0 b0
    with raw_server(reply(Aivvm, split_at(data, [1]))) as server:
        legacy = run_sync(Aivvm, server.url, decoding="legacy")
        correct = run_sync(Aivvm, server.url)
    # A lone lead byte and a piece starting with a continuation byte are both invalid UTF-8,
    # so the original fell back to unicode-escape, which maps each byte to U+00XX.
    # The second piece (b4 d0 b0) starts with a continuation byte, so all of it is mojibake.
    assert legacy == ["\xd0", "\xb4\xd0\xb0"]
    assert "".join(correct) == "да"


def test_aivvm_legacy_interprets_backslash_escapes_in_a_broken_piece() -> None:
    with raw_server(reply(Aivvm, [b"a\\nb\xd0", b"\xb4"])) as server:
        assert "".join(run_sync(Aivvm, server.url, decoding="legacy")) == "a\nb\xd0\xb4"


def test_getgpt_legacy_crashes_on_content_containing_data_prefix() -> None:
    body = body_for(GetGpt, ["see data: here"])
    with raw_server(reply(GetGpt, [body])) as server:
        with pytest.raises(MalformedReplyError, match="legacy GetGpt decoding crashed"):
            run_sync(GetGpt, server.url, decoding="legacy")
        assert run_sync(GetGpt, server.url) == ["see data: here"]


def test_getgpt_legacy_yields_none_for_a_null_content_delta() -> None:
    null_delta = b'data: {"choices": [{"delta": {"content": null}}]}\n\n'
    body = sse_line("a") + null_delta + b"data: [DONE]\n\n"
    with raw_server(reply(GetGpt, [body])) as server:
        legacy: list[str | None] = list(run_sync(GetGpt, server.url, decoding="legacy"))
        assert legacy == ["a", None]
        assert run_sync(GetGpt, server.url) == ["a"]


def test_getgpt_legacy_reads_past_done_and_correct_stops() -> None:
    body = sse_line("a") + b"data: [DONE]\n\n" + sse_line("AFTER")
    with raw_server(reply(GetGpt, [body])) as server:
        assert run_sync(GetGpt, server.url, decoding="legacy") == ["a", "AFTER"]
        assert run_sync(GetGpt, server.url) == ["a"]


async def test_codelinkava_last_line_without_newline() -> None:
    body = sse_line("a") + sse_line("b").rstrip(b"\n")
    with raw_server(reply(CodeLinkAva, [body])) as server:
        with pytest.raises(MalformedReplyError, match="legacy CodeLinkAva decoding crashed"):
            await run_async(CodeLinkAva, server.url, decoding="legacy")
        with pytest.raises(TruncatedStreamError) as caught:
            await run_async(CodeLinkAva, server.url)
    assert caught.value.partial == "a"


@pytest.mark.parametrize("provider", SSE_PROVIDERS, ids=lambda p: p.__name__)
async def test_nothing_after_done_and_missing_done_is_truncation(provider: type[Provider]) -> None:
    after = body_for(provider, ["x"]) + sse_line("AFTER")
    missing = body_for(provider, ["x", "y"], done=False)
    with raw_server(reply(provider, [after]), reply(provider, [missing])) as server:
        assert await run_async(provider, server.url) == ["x"]
        with pytest.raises(TruncatedStreamError, match="without data: \\[DONE\\]") as caught:
            await run_async(provider, server.url)
    assert caught.value.partial == "xy"


NOT_A_STREAM = [
    pytest.param(b'{"error": {"message": "model overloaded"}}', "application/json", id="json"),
    pytest.param(b"<!DOCTYPE html><title>Just a moment...</title>", "text/html", id="html"),
]


@pytest.mark.parametrize(("body", "kind"), NOT_A_STREAM)
@pytest.mark.parametrize("door", ["sync", "async"])
@pytest.mark.parametrize("provider", SSE_PROVIDERS, ids=lambda p: p.__name__)
async def test_a_success_that_is_not_an_event_stream_is_malformed_not_truncated(
    provider: type[Provider], door: str, body: bytes, kind: str
) -> None:
    not_a_stream = RawReply(
        status=SUCCESS_STATUS[provider.__name__], headers=[("Content-Type", kind)], chunks=[body]
    )
    said = f"{provider.__name__} reply is not an event stream: .* it began: '{body[:20].decode()}"
    with raw_server(not_a_stream) as server, pytest.raises(MalformedReplyError, match=said):
        await collect(door, provider, server.url)


CUT_BEFORE_ANY_TEXT = [
    pytest.param(b"", id="nothing"),
    pytest.param(b": keep-alive\n\n", id="a-comment"),
    pytest.param(b"\xef\xbb\xbf: keep-alive\n\n", id="bom-and-comment"),
    pytest.param(b"da", id="inside-the-field-name"),
    pytest.param(b'data: {"choices": [{"delta": {"cont', id="inside-the-first-line"),
    pytest.param(b"event: message\nid: 1\nretry: 10\n", id="fields-without-data"),
]


@pytest.mark.parametrize("body", CUT_BEFORE_ANY_TEXT)
@pytest.mark.parametrize("provider", SSE_PROVIDERS, ids=lambda p: p.__name__)
async def test_an_event_stream_cut_before_any_text_is_still_truncation(
    provider: type[Provider], body: bytes
) -> None:
    cut = reply(provider, [body] if body else [])
    with raw_server(cut) as server, pytest.raises(TruncatedStreamError) as caught:
        await run_async(provider, server.url)
    assert caught.value.partial == ""


def test_ai365vip_legacy_yields_lines() -> None:
    with raw_server(reply(AI365VIP, [b"one\ntw", b"o\nthree"])) as server:
        assert run_sync(AI365VIP, server.url, decoding="legacy") == ["one\n", "two\n", "three"]


@pytest.mark.parametrize("provider", ALL, ids=lambda p: p.__name__)
@pytest.mark.parametrize("door", ["sync", "async"])
async def test_http_errors_are_typed(provider: type[Provider], door: str) -> None:
    replies = [
        RawReply(status=500, reason="Internal Server Error", chunks=[b"Error"]),
        RawReply(
            status=403,
            reason="Forbidden",
            headers=[("Content-Type", "text/html")],
            chunks=[b"<title>Access denied | chat.aivvm.com used Cloudflare</title>"],
        ),
        RawReply(status=429, reason="Too Many", headers=[("Retry-After", "7")], chunks=[b"slow"]),
    ]
    with raw_server(*replies) as server:
        with pytest.raises(UpstreamHTTPError) as plain:
            await collect(door, provider, server.url)
        assert (plain.value.status, plain.value.body_excerpt) == (500, "Error")
        assert type(plain.value) is UpstreamHTTPError
        with pytest.raises(AccessDeniedError, match="Access denied"):
            await collect(door, provider, server.url)
        with pytest.raises(RateLimitedError) as limited:
            await collect(door, provider, server.url)
        assert limited.value.retry_after == 7.0


@pytest.mark.parametrize("provider", ALL, ids=lambda p: p.__name__)
@pytest.mark.parametrize("door", ["sync", "async"])
async def test_reset_mid_stream_is_a_stream_reset(provider: type[Provider], door: str) -> None:
    broken = reply(provider, [body_for(provider, ["partial"])[:12]], terminate=False)
    with raw_server(broken) as server, pytest.raises(StreamResetError, match="broke while reading"):
        await collect(door, provider, server.url)


@pytest.mark.parametrize("door", ["sync", "async"])
@pytest.mark.parametrize("provider", ALL, ids=lambda p: p.__name__)
async def test_silent_server_times_out_and_says_which_deadline(
    provider: type[Provider], door: str
) -> None:
    slow = reply(provider, [b"x"], delay_before_head=3)
    timeouts = Timeouts(connect=5, read=0.3, total=10)
    said = (
        r"timed out talking to .*: waited 0\.3 s for the reply to start without receiving a "
        r"byte \(the read timeout\) \(pass timeout= to allow more; deadlines now: connect 5 s, "
        r"read 0\.3 s, total 10 s\)"
    )
    with raw_server(slow) as server, pytest.raises(UpstreamTimeoutError, match=said):
        await collect(door, provider, server.url, timeout=timeouts)


@pytest.mark.parametrize("provider", ALL, ids=lambda p: p.__name__)
async def test_nothing_listening_is_a_connect_error(provider: type[Provider]) -> None:
    with raw_server() as server:
        url = server.url
    with pytest.raises(ConnectError, match="could not connect"):
        run_sync(provider, url)
    with pytest.raises(ConnectError, match="could not connect"):
        await run_async(provider, url)


@pytest.mark.parametrize("provider", ALL, ids=lambda p: p.__name__)
def test_unknown_model_fails_before_any_request(provider: type[Provider]) -> None:
    with raw_server() as server:
        with pytest.raises(ModelNotSupportedError, match="does not support model 'gpt-9'"):
            provider.create_completion("gpt-9", MESSAGES, base_url=server.url)
        with pytest.raises(ValueError, match="gpt-9"):
            provider.create_async_generator("gpt-9", MESSAGES, base_url=server.url)
        assert server.requests == []


#: A URL nothing is sent to: every call below fails before it would connect.
NOWHERE = "http://127.0.0.1:9"
BAD_ARGUMENTS = [
    pytest.param({"timeout": 0}, "above 0", id="timeout-zero"),  # aiohttp: no limit at all
    pytest.param({"timeout": -1}, "above 0", id="timeout-negative"),
    pytest.param({"timeout": float("inf")}, "finite", id="timeout-inf"),
    pytest.param({"timeout": float("nan")}, "finite", id="timeout-nan"),
    pytest.param({"timeout": "5"}, "number of seconds", id="timeout-str"),
    pytest.param({"timeout": (1, 2)}, "Timeouts", id="timeout-requests-tuple"),
    pytest.param({"timeout": True}, "number of seconds", id="timeout-bool"),
    pytest.param({"messages": None}, "non-empty list", id="messages-none"),
    pytest.param({"messages": []}, "non-empty list", id="messages-empty"),
    pytest.param({"messages": "hi"}, "non-empty list", id="messages-str"),
    pytest.param({"messages": ["hi"]}, r"messages\[0\] must be a dict", id="message-str"),
    pytest.param(
        {"messages": [{"role": "user", "content": "a"}, {"content": "b"}]},
        r"messages\[1\]\['role'\] must be a string",
        id="message-without-role",
    ),
    pytest.param(
        {"messages": [{"role": "user", "content": 5}]},
        r"messages\[0\]\['content'\] must be a string",
        id="message-content-int",
    ),
    pytest.param({"session": "x"}, "session= must be a", id="session-str"),
]


@pytest.mark.parametrize(("arguments", "message"), BAD_ARGUMENTS)
@pytest.mark.parametrize("provider", ALL, ids=lambda p: p.__name__)
def test_bad_arguments_are_a_local_protocol_error_before_any_request(
    provider: type[Provider], arguments: dict[str, Any], message: str
) -> None:
    arguments = dict(arguments)  # the parameter is shared by every provider's run
    messages = arguments.pop("messages", MESSAGES)
    with raw_server() as server:
        with pytest.raises(LocalProtocolError, match=message):
            provider.create_completion("", messages, base_url=server.url, **arguments)
        with pytest.raises(LocalProtocolError, match=message):
            provider.create_async_generator("", messages, base_url=server.url, **arguments)
        assert server.requests == []


@pytest.mark.parametrize("provider", ALL, ids=lambda p: p.__name__)
async def test_a_session_of_the_other_library_is_refused(provider: type[Provider]) -> None:
    """requests- and aiohttp-based adapters each take their own library's session only."""
    wrong: object
    if provider.native_async:
        wrong = requests.Session()
        expected = "aiohttp.client.ClientSession"
    else:
        wrong = aiohttp.ClientSession()
        expected = "requests.sessions.Session"
    try:
        with pytest.raises(LocalProtocolError, match=f"session= must be a {expected}"):
            provider.create_async_generator(
                "", MESSAGES, base_url="http://127.0.0.1:9", session=wrong
            )
    finally:
        if isinstance(wrong, aiohttp.ClientSession):
            await wrong.close()
        else:
            wrong.close()


@pytest.mark.parametrize("provider", [AI365VIP, CodeLinkAva], ids=lambda p: p.__name__)
async def test_the_sync_door_of_an_aiohttp_adapter_explains_why_it_takes_no_session(
    provider: type[Provider],
) -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(LocalProtocolError, match=r"works only with .*create_async_generator"):
            provider.create_completion("", MESSAGES, base_url=NOWHERE, session=session)


def test_get_model_rule() -> None:
    assert AI365VIP.get_model("") == "gpt-3.5-turbo"
    assert AI365VIP.get_model("gpt-3.5-turbo") == "gpt-3.5-turbo-16k"
    assert AI365VIP.get_model("gpt-4o") == "gpt-4o"
    assert Aivvm.get_model("gpt-4-32k") == "gpt-4-32k"


@pytest.mark.parametrize("provider", ALL, ids=lambda p: p.__name__)
def test_harness_keywords_never_reach_the_body(provider: type[Provider]) -> None:
    with raw_server(reply(provider, [body_for(provider, ["ok"])])) as server:
        list(
            provider.create_completion(
                "", MESSAGES, base_url=server.url, timeout=10, decoding="correct", proxy=None
            )
        )
    body = server.requests[0].body
    for word in (b"base_url", b"timeout", b"decoding", b"proxy"):
        assert word not in body


async def test_sync_adapter_called_from_a_running_loop_and_async_from_sync() -> None:
    with raw_server(reply(CodeLinkAva, [body_for(CodeLinkAva, ["a", "b"])])) as server:
        # create_completion of an async-native provider works even inside a running loop.
        assert run_sync(CodeLinkAva, server.url) == ["a", "b"]
    with raw_server(reply(Aivvm, [b"a", b"b"])) as server:
        assert "".join(await run_async(Aivvm, server.url)) == "ab"
