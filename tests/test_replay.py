"""The replay server by example: chunk boundaries, framing and headers, play order, misses, and
GetGpt's encrypted requests matched by plaintext (replay server and plain vcrpy alike)."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest
import requests
import vcr
from vcr.errors import CannotOverwriteExistingCassetteException

from cassettes import yamlio
from cassettes.getgpt_matcher import getgpt_body, register_getgpt, tapedeck_matcher
from cassettes.model import (
    Cassette,
    Interaction,
    Provenance,
    RecordedRequest,
    RecordedResponse,
    chunks_from_sizes,
)
from cassettes.replay import MISS_STATUS, ReplayServer
from providers import GetGpt
from providers.errors import NoMatchingInteractionError, UpstreamHTTPError
from providers.wire import getgpt, signature
from tests._rawclient import build_request, exchange
from tests.aiohttp_chunks import aiohttp_chunks
from tests.transport_writes import record_writes

ORIGIN = "http://127.0.0.1:8103"
SSE = 'data: {"choices":[{"delta":{"content":"h\u00e9"}}]}\n\ndata: [DONE]\n\n'.encode()
CHUNKED = {"Content-Type": ["text/event-stream"], "Transfer-Encoding": ["chunked"]}


def post(path: str, body: dict[str, object]) -> RecordedRequest:
    data = json.dumps(body).encode()
    return RecordedRequest("POST", ORIGIN + path, {"Content-Type": ["application/json"]}, data)


def streamed(body: bytes, sizes: list[int], status: int = 200) -> RecordedResponse:
    return RecordedResponse(status, "OK", dict(CHUNKED), body, chunks_from_sizes(sizes))


@pytest.fixture
def cassette() -> Cassette:
    cut_inside_e_acute = SSE.index(b"\xc3") + 1
    return Cassette(
        (
            Interaction(
                post("/api/chat", {"q": "one"}),
                streamed(SSE, [cut_inside_e_acute, 3, len(SSE) - cut_inside_e_acute - 3]),
            ),
            Interaction(post("/api/chat", {"q": "two"}), streamed(b"second", [6])),
            Interaction(post("/api/chat", {"q": "one"}), streamed(b"again", [2, 3])),
        ),
        Provenance(ORIGIN, "2024-05-01T00:00:00Z", "0.1.0", "fake"),
    )


async def test_chunks_come_back_cut_where_they_were_recorded(cassette: Cassette) -> None:
    async with ReplayServer(cassette) as server:
        status, chunks = await aiohttp_chunks(server.url + "/api/chat", b'{"q": "one"}')
    assert status == 200
    assert chunks == list(cassette.interactions[0].response.chunk_bytes())
    assert chunks[0].endswith(b"\xc3")  # the split character arrives split


def test_requests_sees_the_same_chunks_over_chunked_transfer(cassette: Cassette) -> None:
    with ReplayServer(cassette) as server:
        reply = requests.post(server.url + "/api/chat", data=b'{"q":"one"}', stream=True)
        chunks = list(reply.raw.read_chunked(decode_content=False))
    assert reply.headers["Transfer-Encoding"] == "chunked"
    assert chunks == list(cassette.interactions[0].response.chunk_bytes())


async def test_at_speed_zero_a_reply_is_one_send_of_the_same_bytes(
    cassette: Cassette, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Played chunk by chunk (speed > 0) and in one burst (speed 0): the same head, framing and
    # chunks, Date aside; only the number of sends differs.
    writes = record_writes(monkeypatch)
    request = build_request("/api/chat", b'{"q": "one"}')
    replies = []
    for speed in (1e6, 0.0):
        async with ReplayServer(cassette, speed=speed) as server:
            replies.append(await exchange(server.port, request, deadline=5))
    paced, burst = replies
    recorded = list(cassette.interactions[0].response.chunk_bytes())
    assert paced.chunks == burst.chunks == recorded
    assert (paced.complete, burst.complete) == (True, True)
    date = re.compile(rb"\r\nDate: [^\r]*")
    assert date.sub(b"", paced.raw) == date.sub(b"", burst.raw)
    per_chunk, together = writes.replies()
    assert len(per_chunk) >= len(recorded)  # a send per chunk at least
    assert together == [burst.raw]


@pytest.mark.parametrize(
    ("method", "request_line"),
    [("GET", b"GET / HTTP/1.1"), ("CONNECT", b"CONNECT 127.0.0.1:8103 HTTP/1.1")],
    ids=["GET", "CONNECT"],
)
async def test_bursts_only_where_aiohttp_would_have_framed_a_body(
    method: str, request_line: bytes
) -> None:
    # A 2xx to CONNECT may carry no body (RFC 9110), so aiohttp drops the framing header; a
    # burst framed anyway would send chunk framing under no Transfer-Encoding.
    recorded = RecordedResponse(200, "OK", dict(CHUNKED), b"hello", chunks_from_sizes([2, 3]))
    cassette = Cassette((Interaction(RecordedRequest(method, ORIGIN + "/"), recorded),))
    request = request_line + b"\r\nHost: 127.0.0.1:8103\r\nConnection: close\r\n\r\n"
    raws = []
    for speed in (1e6, 0.0):
        async with ReplayServer(cassette, speed=speed) as server:
            raws.append((await exchange(server.port, request, deadline=1)).raw)
    assert [raw.split(b" ", 2)[1] for raw in raws] == [b"200", b"200"]  # played, both times
    date = re.compile(rb"\r\nDate: [^\r]*")
    assert date.sub(b"", raws[0]) == date.sub(b"", raws[1])


@pytest.mark.parametrize("speed", [0.0, 1.0])
async def test_a_request_line_of_another_http_version_is_a_505(
    cassette: Cassette, speed: float
) -> None:
    # aiohttp's parser lets HTTP/2.0 through; no recorded reply can be framed for it.
    request = build_request("/api/chat", b'{"q": "one"}', version="2.0")
    async with ReplayServer(cassette, speed=speed) as server:
        reply = await exchange(server.port, request, deadline=5)
        assert server.misses == []
    head, _, body = reply.raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/2.0 505 ")  # aiohttp echoes the request's version
    assert json.loads(body)["error"]["code"] == "http_version_not_supported"


def test_status_reason_and_headers_are_replayed_but_not_per_connection_ones() -> None:
    response = RecordedResponse(
        418,
        "I Am A Teapot",
        {
            "X-Many": ["a", "b"],
            "Content-Type": ["text/plain"],
            "Connection": ["close"],
            "Keep-Alive": ["timeout=5"],
            "Content-Length": ["999"],  # stale: replay states the length of the stored body
        },
        b"short",
        chunks_from_sizes([2, 3]),
    )
    cassette = Cassette((Interaction(RecordedRequest("GET", ORIGIN + "/t"), response),))
    with ReplayServer(cassette) as server:
        reply = requests.get(server.url + "/t", timeout=5)
    assert (reply.status_code, reply.reason, reply.content) == (418, "I Am A Teapot", b"short")
    assert reply.raw.headers.getlist("X-Many") == ["a", "b"]
    assert reply.headers["Content-Length"] == "5"
    assert "Transfer-Encoding" not in reply.headers
    assert reply.headers.get("Connection") != "close"
    assert reply.headers["X-Tapedeck-Interaction"] == "0"


def test_head_204_and_http10_clients_get_well_formed_answers() -> None:
    cassette = Cassette(
        (
            Interaction(RecordedRequest("GET", ORIGIN + "/x"), streamed(b"abcdef", [3, 3])),
            Interaction(
                RecordedRequest("HEAD", ORIGIN + "/x"),
                RecordedResponse(200, "OK", {"Content-Length": ["6"]}, b"", ()),
            ),
            Interaction(
                RecordedRequest("GET", ORIGIN + "/e"),
                RecordedResponse(204, "No Content", {}, b"", ()),
            ),
        )
    )
    with ReplayServer(cassette) as server:
        head = requests.head(server.url + "/x", timeout=5)
        empty = requests.get(server.url + "/e", timeout=5)
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
            raw.sendall(b"GET /x HTTP/1.0\r\nHost: a\r\n\r\n")
            answer = b"".join(iter(lambda: raw.recv(65536), b""))
    assert (head.status_code, head.headers["Content-Length"], head.content) == (200, "6", b"")
    assert (empty.status_code, empty.content) == (204, b"")
    # HTTP/1.0 has no chunked encoding: the same bytes, delimited by their length.
    assert answer.startswith(b"HTTP/1.0 200 OK\r\n")
    assert b"\r\nContent-Length: 6\r\n" in answer
    assert answer.endswith(b"\r\n\r\nabcdef")


def test_header_values_longer_than_aiohttps_default_limit_are_accepted() -> None:
    # Browser-like clients send long headers (cookies, client hints); aiohttp refuses a field
    # over 8 KiB unless told otherwise, which would make such a recording unreplayable.
    long_value = "v" * 20_000
    recorded = RecordedRequest("GET", ORIGIN + "/x", {"X-Long": [long_value]})
    cassette = Cassette((Interaction(recorded, streamed(b"ok", [2])),))
    with ReplayServer(cassette) as server:
        reply = requests.get(server.url + "/x", headers={"X-Long": long_value}, timeout=5)
    assert (reply.status_code, reply.content) == (200, b"ok")


def test_each_interaction_plays_once_in_order_and_unplayed_ones_are_listed(
    cassette: Cassette,
) -> None:
    with ReplayServer(cassette) as server:
        assert server.unplayed == [0, 1, 2]
        first = requests.post(server.url + "/api/chat", json={"q": "one"}, timeout=5)
        second = requests.post(server.url + "/api/chat", json={"q": "one"}, timeout=5)
        assert (first.content, second.content) == (SSE, b"again")
        assert server.played == (0, 2)
        assert server.unplayed == [1]
        assert server.describe_unplayed() == [f"#1 POST {ORIGIN}/api/chat"]
        third = requests.post(server.url + "/api/chat", json={"q": "one"}, timeout=5)
        assert third.status_code == MISS_STATUS
        assert third.json()["error"]["code"] == "interaction_already_played"
        assert len(server.take_misses()) == 1


def test_allow_repeats_plays_the_last_answer_again(cassette: Cassette) -> None:
    with ReplayServer(cassette, allow_repeats=True) as server:
        bodies = [
            requests.post(server.url + "/api/chat", json={"q": "two"}, timeout=5).content
            for _ in range(3)
        ]
    assert bodies == [b"second"] * 3
    assert server.misses == []


def test_a_miss_is_a_421_naming_the_closest_recordings_and_what_differed(
    cassette: Cassette,
) -> None:
    with ReplayServer(cassette) as server:
        reply = requests.post(server.url + "/api/chat?x=1", json={"q": "three"}, timeout=5)
        error = reply.json()["error"]
        assert reply.status_code == MISS_STATUS == 421
        assert reply.headers["X-Tapedeck-Interaction"] == "miss"
        assert error["code"] == "no_matching_interaction"
        assert [c["interaction"] for c in error["closest"]] == [0, 1, 2]
        assert error["closest"][0]["differed"] == ["query", "body"]
        assert "fields q" in error["closest"][0]["differences"][1]
        assert "three" in error["message"]
        # The same miss, kept for the test: raised in-process with the candidates as data.
        with pytest.raises(NoMatchingInteractionError, match="closest recorded") as raised:
            server.raise_misses()
        assert len(raised.value.candidates) == 3
        assert raised.value.candidates[0].startswith("#0 POST")
        assert server.misses == []


def test_an_adapter_sees_a_miss_as_an_http_error_it_cannot_mistake_for_a_recording(
    cassette: Cassette,
) -> None:
    with ReplayServer(cassette) as server:
        with pytest.raises(UpstreamHTTPError) as raised:
            list(
                GetGpt.create_completion(
                    "", [{"role": "user", "content": "x"}], base_url=server.url
                )
            )
        assert raised.value.status == MISS_STATUS
        assert len(server.take_misses()) == 1


def test_in_process_lookup_raises_and_marks_played(cassette: Cassette) -> None:
    server = ReplayServer(cassette)  # never started: lookup needs no socket
    assert server.lookup(post("/api/chat", {"q": "two"})).response.body == b"second"
    assert server.unplayed == [0, 2]
    with pytest.raises(
        NoMatchingInteractionError, match="#1 of the cassette, but each was already"
    ):
        server.lookup(post("/api/chat", {"q": "two"}))
    with pytest.raises(NoMatchingInteractionError, match=r"#1 POST .*\n.*body \(fields q\)"):
        server.lookup(post("/api/chat", {"q": "twenty"}))
    with pytest.raises(NoMatchingInteractionError, match="#0 POST"):
        server.lookup(post("/api/other", {"q": "one"}))


def test_a_cassette_file_is_loaded_and_named_in_errors(cassette: Cassette, tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    yamlio.save(cassette, path)
    with ReplayServer(path) as server:
        assert requests.post(server.url + "/api/chat", json={"q": "two"}).content == b"second"
        requests.post(server.url + "/nope", timeout=5)
        assert str(path) in str(server.take_misses()[0])
    assert server.path == str(path)


def test_speed_must_be_zero_or_positive(cassette: Cassette) -> None:
    for speed in (-1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="speed"):
            ReplayServer(cassette, speed=speed)


# -- GetGpt: bodies that differ on every call, matched by decrypted plaintext -----------------


def getgpt_request(prompt: str, *, key: str, iv: str, uuid: str, **options: object) -> bytes:
    codec = getgpt.GetGptCodec(new_uuid=lambda: uuid)
    plaintext = codec.plaintext([{"role": "user", "content": prompt}], options)
    sealed = signature.encrypt_signature(plaintext, key_hex=key, iv_hex=iv)
    return json.dumps({"signature": sealed}).encode()


def getgpt_reply(text: str) -> RecordedResponse:
    frames = getgpt.CODEC.encode_reply([text[:3], text[3:]])
    body = b"".join(frames)
    return RecordedResponse(
        201, "Created", dict(CHUNKED), body, chunks_from_sizes([len(f) for f in frames])
    )


def getgpt_cassette() -> Cassette:
    path = ORIGIN + getgpt.CODEC.chat_path
    headers = {"Content-Type": ["application/json"]}
    return Cassette(
        tuple(
            Interaction(
                RecordedRequest("POST", path, headers, getgpt_request(prompt, **material)),
                getgpt_reply(answer),
            )
            for prompt, answer, material in (
                ("first prompt", "Answer one", {"key": "0" * 16, "iv": "1" * 16, "uuid": "u-1"}),
                ("second prompt", "Answer two", {"key": "2" * 16, "iv": "3" * 16, "uuid": "u-2"}),
            )
        )
    )


def body_part(body: bytes) -> object:
    return getgpt_body(RecordedRequest("POST", ORIGIN + getgpt.CODEC.chat_path, {}, body))


def test_the_getgpt_part_ignores_key_iv_and_uuid_but_not_the_conversation() -> None:
    one = body_part(getgpt_request("hi", key="a" * 16, iv="b" * 16, uuid="x"))
    assert one == body_part(getgpt_request("hi", key="c" * 16, iv="d" * 16, uuid="y"))
    assert one != body_part(getgpt_request("ho", key="a" * 16, iv="b" * 16, uuid="x"))
    assert one != body_part(getgpt_request("hi", key="a" * 16, iv="b" * 16, uuid="x", top_p=0.5))
    assert isinstance(one, tuple)
    assert one[0] == "json"
    assert "uuid" not in json.loads(one[1])


def test_the_getgpt_part_decrypts_key_characters_leniently_and_falls_back_to_json() -> None:
    plaintext = getgpt.GetGptCodec(new_uuid=lambda: "u").plaintext(
        [{"role": "user", "content": "hi"}], {}
    )
    odd_key = "KEY-not-hex-123!"
    cipher = signature.encrypt_signature(plaintext, key_hex="0" * 16, iv_hex="0" * 16)
    # Re-encrypt by hand with non-hex key characters the strict fake would refuse.
    from Crypto.Cipher import AES
    from Crypto.Util.Padding import pad

    sealed = AES.new(odd_key.encode(), AES.MODE_CBC, iv=odd_key.encode()).encrypt(
        pad(plaintext, 16)
    )
    lenient = sealed.hex() + odd_key + odd_key
    assert body_part(json.dumps({"signature": lenient}).encode()) == body_part(
        json.dumps({"signature": cipher}).encode()
    )
    assert body_part(b'{"signature": null, "b": 1}') == ("json", '{"b":1,"signature":null}')
    assert body_part(b"not json") == ("bytes", b"not json")


@pytest.mark.parametrize(
    "order", [("first prompt", "second prompt"), ("second prompt", "first prompt")]
)
def test_two_getgpt_calls_replay_to_their_own_answers_in_either_order(
    order: tuple[str, str],
) -> None:
    expected = {"first prompt": "Answer one", "second prompt": "Answer two"}
    with ReplayServer(getgpt_cassette()) as server:
        for prompt in order:
            messages = [{"role": "user", "content": prompt}]
            text = "".join(GetGpt.create_completion("", messages, base_url=server.url))
            assert text == expected[prompt]
        assert server.unplayed == []


async def test_the_async_door_replays_getgpt_too() -> None:
    async with ReplayServer(getgpt_cassette()) as server:
        messages = [{"role": "user", "content": "second prompt"}]
        pieces = [p async for p in GetGpt.create_async_generator("", messages, base_url=server.url)]
    assert "".join(pieces) == "Answer two"
    assert server.unplayed == [0]


def test_a_getgpt_prompt_that_was_not_recorded_is_a_miss_on_messages() -> None:
    with ReplayServer(getgpt_cassette()) as server:
        with pytest.raises(UpstreamHTTPError):
            list(
                GetGpt.create_completion(
                    "", [{"role": "user", "content": "third"}], base_url=server.url
                )
            )
        (miss,) = server.take_misses()
    assert "body (fields messages)" in str(miss)


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_plain_vcrpy_matches_getgpt_with_the_registered_matchers(
    order: tuple[int, int], tmp_path: Path
) -> None:
    path = tmp_path / "getgpt.yaml"
    yamlio.save(getgpt_cassette(), path)
    prompts, answers = ["first prompt", "second prompt"], ["Answer one", "Answer two"]
    my_vcr = vcr.VCR(match_on=["tapedeck"], record_mode="none")
    assert "tapedeck_body" in register_getgpt(my_vcr)
    with my_vcr.use_cassette(str(path)):
        for index in order:
            messages = [{"role": "user", "content": prompts[index]}]
            # A loopback URL (vcrpy intercepts it; nothing listens there).
            text = "".join(GetGpt.create_completion("", messages, base_url="http://127.0.0.1:9"))
            assert text == answers[index]


def test_vcrpys_own_body_matcher_cannot_match_getgpt(tmp_path: Path) -> None:
    path = tmp_path / "getgpt.yaml"
    yamlio.save(getgpt_cassette(), path)
    messages = [{"role": "user", "content": "first prompt"}]
    with (
        vcr.use_cassette(str(path), record_mode="none", match_on=["method", "path", "body"]),
        pytest.raises(CannotOverwriteExistingCassetteException, match="body"),
    ):
        list(GetGpt.create_completion("", messages, base_url="http://127.0.0.1:9"))


def test_tapedeck_matcher_is_what_the_replay_server_uses() -> None:
    server = ReplayServer(getgpt_cassette())
    matcher = server.replayer.index.matcher
    request = RecordedRequest(
        "POST",
        ORIGIN + getgpt.CODEC.chat_path,
        {},
        getgpt_request("first prompt", key="9" * 16, iv="8" * 16, uuid="new"),
    )
    assert matcher.key(request) == tapedeck_matcher().key(getgpt_cassette().interactions[0].request)


# -- the pytest plugin, seen from a user's fresh test files ---------------------------------

pytest_plugins = ["pytester"]

USER_TESTS = """
import pytest
import requests

HI = {"q": "one"}

@pytest.mark.tapedeck_cassette("cassettes/c.yaml")
def test_plays(cassette_server):
    reply = requests.post(cassette_server.url + "/api/chat", json=HI)
    assert reply.content.startswith(b"data: ")
    assert cassette_server.unplayed == [1, 2]

@pytest.mark.tapedeck_cassette("cassettes/c.yaml", allow_repeats=True)
async def test_async_and_repeats(cassette_server):
    url = cassette_server.url + "/api/chat"
    for _ in range(3):
        assert requests.post(url, json={"q": "two"}).content == b"second"

@pytest.mark.tapedeck_cassette("cassettes/c.yaml", strict=True)
def test_strict_fails_when_left_unplayed(cassette_server):
    requests.post(cassette_server.url + "/api/chat", json={"q": "two"})

@pytest.mark.tapedeck_cassette("cassettes/c.yaml")
def test_swallowed_miss_still_fails(cassette_server):
    try:
        requests.post(cassette_server.url + "/api/chat", json={"q": "nine"}).raise_for_status()
    except requests.HTTPError:
        pass  # code under test that hides errors

@pytest.mark.tapedeck_cassette("cassettes/c.yaml")
def test_claimed_miss_passes(cassette_server):
    assert requests.post(cassette_server.url + "/x").status_code == 421
    assert len(cassette_server.take_misses()) == 1

def test_needs_a_marker(cassette_server):
    pass

@pytest.mark.tapedeck_cassette("cassettes/missing.yaml")
def test_missing_file(cassette_server):
    pass

@pytest.mark.tapedeck_cassette("cassettes/c.yaml", sped=2)
def test_typo_in_option(cassette_server):
    pass
"""


def test_the_marker_and_fixture_in_a_fresh_test_file(
    pytester: pytest.Pytester, cassette: Cassette
) -> None:
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
    )
    yamlio.save(cassette, pytester.path / "cassettes" / "c.yaml")
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, failed=2, errors=3)
    result.stdout.fnmatch_lines_random(
        [
            "FAILED test_user.py::test_strict_fails_when_left_unplayed - *",
            "FAILED test_user.py::test_swallowed_miss_still_fails - *",
            "ERROR test_user.py::test_needs_a_marker - *",
            "ERROR test_user.py::test_missing_file - *",
            "ERROR test_user.py::test_typo_in_option - *",
            "*2 interaction(s) of *c.yaml were never played (strict=True):",
            "*#0 POST http://127.0.0.1:8103/api/chat",
            "E*NoMatchingInteractionError: no interaction in *c.yaml matches POST *",
            '*body (fields q): recorded {"q":"one"}, this request {"q":"nine"}',
            "*cassette_server needs a cassette: mark the test @pytest.mark.tapedeck_cassette*",
            "*no cassette at *missing.yaml or *missing.yaml",
            "*unknown keywords sped",
        ]
    )


def test_the_marker_is_registered(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.tapedeck_cassette(path, *, speed=0, *"])
