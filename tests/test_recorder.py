"""The recording proxy in-process: streaming as it arrives, exact chunks, scrubbing, modes, errors.

Chunk boundaries are checked with the raw-socket client (tests/_rawclient.py), which parses the
chunked framing itself, against plans written out literally here (``raw`` scripts: one chunk
per piece), never against anything the proxy computed.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import shutil
import socket
import statistics
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from cassettes import yamlio
from cassettes.cassette_writer import CassetteWriter
from cassettes.lint import lint_file
from cassettes.model import Cassette, Interaction, Provenance, RecordedRequest, RecordedResponse
from cassettes.proxy import RecordingProxy
from cassettes.recorder import Recorder, RecordMode
from cassettes.replay import ReplayServer
from cassettes.scrub import ScrubPolicy
from cassettes.tee import ChunkTee
from fake_upstreams.faults import Fault
from fake_upstreams.registry import build_server
from fake_upstreams.script import ResponseScript
from fake_upstreams.server import FakeServer
from providers import PROVIDERS
from providers.errors import CassetteError, TapedeckError
from tests._rawclient import RawResponse, build_request, exchange
from tests.wire_literals import AIVVM_HI_BODY
from tools import record_cmd
from tools.make_library import make_library

LIBRARY = Path(__file__).resolve().parent.parent / "cassettes" / "library"
JSON = (("Content-Type", "application/json"),)


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


async def _post(
    url: str, body: bytes = AIVVM_HI_BODY, path: str = "/api/chat", **kw: object
) -> RawResponse:
    headers = kw.pop("headers", JSON)
    assert isinstance(headers, tuple)
    return await exchange(_port(url), build_request(path, body, headers), deadline=10.0)


def _recorder(path: Path, mode: RecordMode = "all", **kw: object) -> Recorder:
    return Recorder(path, target_url="http://127.0.0.1:0", source="fake", mode=mode, **kw)  # type: ignore[arg-type]


@pytest.fixture
async def aivvm() -> AsyncIterator[FakeServer]:
    async with build_server("Aivvm", strictness="lenient") as fake:
        yield fake


# -- streaming: as it arrives, exact boundaries -------------------------------------------------


async def test_a_request_line_of_another_http_version_is_a_505_and_not_recorded(
    aivvm: FakeServer, tmp_path: Path
) -> None:
    # aiohttp's parser lets "HTTP/2.0" through; the relay could not frame the reply for it
    # (aiohttp raised: a 500 with a traceback), so the proxy refuses it before forwarding.
    path = tmp_path / "c.yaml"
    request = build_request("/api/chat", AIVVM_HI_BODY, JSON, version="2.0")
    async with RecordingProxy(_recorder(path), aivvm.url) as proxy:
        reply = await exchange(_port(proxy.url), request, deadline=10.0)
    head, _, body = reply.raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/2.0 505 ")  # aiohttp echoes the request's version
    assert json.loads(body)["error"]["code"] == "http_version_not_supported"
    assert len(aivvm.state.journal) == 0
    assert not path.exists()


async def test_client_gets_first_chunk_before_upstream_sends_the_second(
    aivvm: FakeServer, tmp_path: Path
) -> None:
    pieces = (b"first ", b"second ", b"third")
    aivvm.state.scripts.push(ResponseScript(raw=pieces, chunk_delay=0.5))
    async with RecordingProxy(_recorder(tmp_path / "c.yaml"), aivvm.url) as proxy:
        reply = await _post(proxy.url)
    assert reply.complete
    assert reply.chunks == list(pieces)
    # The fake sleeps 0.5 s before each later chunk: a proxy that buffered would deliver the
    # first chunk together with the others, a second or more after sending.
    assert reply.chunk_times[0] < 0.4
    assert reply.chunk_times[1] - reply.chunk_times[0] > 0.4


async def test_exact_chunk_boundaries_and_bytes_reach_client_and_cassette(
    aivvm: FakeServer, tmp_path: Path
) -> None:
    euro = "€".encode()
    pieces = (
        b"da",
        b"ta: {}\n\n",
        b"x" + euro[:1],
        euro[1:],
        b"\x00\xff binary",
        b"y" * 300_000,  # arrives in many socket reads: must stay one chunk
        b"!",
    )
    aivvm.state.scripts.push(ResponseScript(raw=pieces, chunk_delay=0.02))
    path = tmp_path / "c.yaml"
    async with RecordingProxy(_recorder(path), aivvm.url) as proxy:
        reply = await _post(proxy.url)
    assert reply.complete
    assert reply.chunks == list(pieces)
    (interaction,) = yamlio.load(path).interactions
    response = interaction.response
    assert response.body == b"".join(pieces)
    assert list(response.chunk_bytes()) == list(pieces)
    offsets = response.plan.offsets_ms
    gaps = [later - earlier for earlier, later in itertools.pairwise(offsets)]
    assert min(gaps) >= 15.0  # each chunk was timed when it arrived, 20 ms apart
    assert response.header("Transfer-Encoding") == "chunked"


async def test_time_to_first_byte_through_proxy_is_close_to_direct(
    aivvm: FakeServer, tmp_path: Path
) -> None:
    """Measured in the same run, alternating; a ratio with a generous bound, never a tight one."""
    aivvm.state.scripts.replace(default=ResponseScript(raw=(b"x", b"y"), first_byte_delay=0.02))
    direct: list[float] = []
    proxied: list[float] = []
    async with RecordingProxy(_recorder(tmp_path / "c.yaml"), aivvm.url) as proxy:
        for _ in range(12):
            for url, times in ((aivvm.url, direct), (proxy.url, proxied)):
                reply = await _post(url)
                assert reply.complete
                times.append(reply.chunk_times[0])
    ratio = statistics.median(proxied) / statistics.median(direct)
    direct_ms, proxied_ms = statistics.median(direct) * 1000, statistics.median(proxied) * 1000
    print(f"TTFB median direct {direct_ms:.2f} ms, proxied {proxied_ms:.2f} ms, ratio {ratio:.3f}")
    assert statistics.median(proxied) < 3 * statistics.median(direct) + 0.05


async def test_a_slow_cassette_write_never_delays_the_next_request_on_a_keep_alive_connection(
    aivvm: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = yamlio.write_atomic

    def slow_write(path: Path, data: bytes) -> None:
        time.sleep(0.5)  # an fsync on a slow disk
        real_write(path, data)

    monkeypatch.setattr(yamlio, "write_atomic", slow_write)
    aivvm.state.scripts.replace(default=ResponseScript(raw=(b"a", b"b")))
    path = tmp_path / "c.yaml"
    firsts: list[float] = []
    connector = aiohttp.TCPConnector(limit=1)  # one connection: requests follow each other on it
    async with (
        RecordingProxy(_recorder(path), aivvm.url) as proxy,
        aiohttp.ClientSession(connector=connector) as session,
    ):
        for _ in range(3):
            started = time.monotonic()
            url = proxy.url + "/api/chat"
            async with session.post(url, data=AIVVM_HI_BODY, headers=dict(JSON)) as reply:
                await reply.content.readany()
                firsts.append(time.monotonic() - started)
                await reply.read()
    assert max(firsts) < 0.3, firsts
    assert len(yamlio.load(path)) == 3  # stopping waited for the writes


# -- scrubbing -----------------------------------------------------------------------------------

SECRETS = {
    "auth": "Bearer abcdefghijklmnopqrstuvwxyz012345",
    "api_key_header": "hdr-key-9f8e7d6c5b4a",
    "custom_header": "custom-secret-value-42",
    "query_key": "qry-key-0123456789",
    "query_token": "qry-token-abcdef123456",
    "body_key": "sk-abcdefghijklmnopqrstuv0123",
    "body_password": "hunter2-but-longer",
    "set_cookie": "sessid-1a2b3c4d5e6f7g8h",
    "response_token": "resp-token-zyxwvu987654",
    "echo": "echoed-secret-in-body",
}


async def _secret_upstream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Set-Cookie": f"session={SECRETS['set_cookie']}; Path=/; HttpOnly",
            "X-Auth-Token": SECRETS["response_token"],
        }
    )
    response.enable_chunked_encoding()
    await response.prepare(request)
    await response.write(b'data: {"content": "hello"}\n\n')
    token = json.dumps({"access_token": SECRETS["response_token"], "note": "ok"}).encode()
    await response.write(b"data: " + token + b"\n\n")
    await response.write(f"data: your password was {SECRETS['body_password']}\n\n".encode())
    await response.write_eof()
    return response


async def test_planted_secrets_never_reach_the_cassette_file(tmp_path: Path) -> None:
    app = web.Application()
    app.router.add_post("/v1/chat", _secret_upstream)
    path = tmp_path / "secrets.yaml"
    policy = ScrubPolicy.with_names("X-Custom", keep=["max_tokens"])
    body = json.dumps(
        {
            "api_key": SECRETS["body_key"],
            "nested": {"password": SECRETS["body_password"]},
            "max_tokens": 100,
            "messages": [{"role": "user", "content": f"remember {SECRETS['echo']}"}],
        }
    ).encode()
    headers = (
        ("Content-Type", "application/json"),
        ("Authorization", SECRETS["auth"]),
        ("X-Api-Key", SECRETS["api_key_header"]),
        ("X-Custom", SECRETS["custom_header"]),
        ("Cookie", f"sessid={SECRETS['set_cookie']}"),
    )
    query = f"/v1/chat?api_key={SECRETS['query_key']}&token={SECRETS['query_token']}&page=2"
    async with FakeServer(app) as upstream:
        recorder = _recorder(path, policy=policy)
        async with RecordingProxy(recorder, upstream.url) as proxy:
            reply = await _post(proxy.url, body, path=query, headers=headers)
    assert reply.complete
    assert SECRETS["response_token"].encode() in reply.body
    text = path.read_text("ascii")
    for name, secret in SECRETS.items():
        if name != "echo":
            assert secret not in text, f"{name} leaked into the cassette"
    assert "<scrubbed>" in text
    assert "page=2" in text
    assert "max_tokens" in text
    assert lint_file(path) == []
    (interaction,) = yamlio.load(path).interactions
    plan = interaction.response.plan
    assert sum(plan.sizes) == len(interaction.response.body)
    assert len(plan) == 3


# -- hop-by-hop headers ------------------------------------------------------------------------


async def test_hop_by_hop_headers_are_not_forwarded_and_the_body_is_asked_uncompressed(
    tmp_path: Path,
) -> None:
    seen: list[list[tuple[str, str]]] = []

    async def upstream_handler(request: web.Request) -> web.Response:
        seen.append([(k, v) for k, v in request.headers.items()])
        return web.Response(body=b"ok", headers={"Keep-Alive": "timeout=5", "X-End": "1"})

    app = web.Application()
    app.router.add_post("/x", upstream_handler)
    path = tmp_path / "c.yaml"
    headers = (
        ("Content-Type", "application/json"),
        ("Keep-Alive", "timeout=5"),
        ("X-Hop", "1"),
        ("Connection", "X-Hop"),  # the raw client adds "Connection: close" too
        ("TE", "trailers"),
        ("Accept-Encoding", "gzip"),
        ("X-End-To-End", "kept"),
    )
    async with FakeServer(app) as upstream, RecordingProxy(_recorder(path), upstream.url) as proxy:
        reply = await _post(proxy.url, b"{}", path="/x", headers=headers)
        upstream_port = _port(upstream.url)
    assert reply.status == 200
    assert reply.body == b"ok"
    assert reply.header("X-End") == "1"
    assert reply.header("Keep-Alive") is None
    received = {name.lower(): value for name, value in seen[0]}
    assert received["accept-encoding"] == "identity"
    assert received["x-end-to-end"] == "kept"
    assert received["host"] == f"127.0.0.1:{upstream_port}"
    assert not {"keep-alive", "x-hop", "te"} & received.keys()
    request = yamlio.load(path).interactions[0].request
    assert request.header("Accept-Encoding") == "gzip"  # what the client sent
    assert request.header("Host") is None
    assert request.header("X-Hop") is None


# -- record modes ------------------------------------------------------------------------------


def _aivvm_interaction(uri: str, text: bytes) -> Interaction:
    request = RecordedRequest("POST", uri, {"Content-Type": ["application/json"]}, AIVVM_HI_BODY)
    response = RecordedResponse.whole(200, "OK", {"Content-Type": ["text/plain"]}, text)
    return Interaction(request, response)


def _seed_cassette(path: Path, *texts: bytes) -> bytes:
    provenance = Provenance("http://127.0.0.1:0", "2024-01-01T00:00:00Z", "test", "fake")
    interactions = tuple(_aivvm_interaction("http://x/api/chat", t) for t in texts)
    yamlio.save(Cassette(interactions, provenance), path)
    return path.read_bytes()


OTHER_BODY = AIVVM_HI_BODY.replace(b'"hi"', b'"something else"')


async def test_once_records_a_new_cassette_then_only_replays(
    aivvm: FakeServer, tmp_path: Path
) -> None:
    path = tmp_path / "once.yaml"
    aivvm.state.scripts.push(ResponseScript(raw=(b"recorded ", b"answer")))
    async with RecordingProxy(_recorder(path, "once"), aivvm.url) as proxy:
        first = await _post(proxy.url)
    assert first.chunks == [b"recorded ", b"answer"]
    assert len(yamlio.load(path)) == 1
    saved = path.read_bytes()
    journal_before = len(aivvm.state.journal)
    async with RecordingProxy(_recorder(path, "once"), aivvm.url) as proxy:
        replayed = await _post(proxy.url)
        refused = await _post(proxy.url, OTHER_BODY)
    assert replayed.status == 200
    assert replayed.chunks == [b"recorded ", b"answer"]
    assert refused.status == 409
    error = json.loads(refused.body)["error"]
    assert error["code"] == "record_mode_once"
    assert "'once'" in error["message"]
    assert len(aivvm.state.journal) == journal_before  # the target saw neither request
    assert path.read_bytes() == saved


async def test_new_episodes_replays_known_and_appends_new(
    aivvm: FakeServer, tmp_path: Path
) -> None:
    path = tmp_path / "episodes.yaml"
    _seed_cassette(path, b"old answer")
    aivvm.state.scripts.push(ResponseScript(raw=(b"new ", b"answer")))
    async with RecordingProxy(_recorder(path, "new_episodes"), aivvm.url) as proxy:
        known = await _post(proxy.url)
        new = await _post(proxy.url, OTHER_BODY)
    assert known.body == b"old answer"
    assert new.chunks == [b"new ", b"answer"]
    assert len(aivvm.state.journal) == 1
    bodies = [i.response.body for i in yamlio.load(path).interactions]
    assert bodies == [b"old answer", b"new answer"]


async def test_none_never_records_and_needs_a_cassette(aivvm: FakeServer, tmp_path: Path) -> None:
    with pytest.raises(CassetteError, match="does not exist"):
        _recorder(tmp_path / "missing.yaml", "none")
    path = tmp_path / "none.yaml"
    saved = _seed_cassette(path, b"only answer")
    async with RecordingProxy(_recorder(path, "none"), aivvm.url) as proxy:
        known = await _post(proxy.url)
        again = await _post(proxy.url)  # each interaction plays once
        new = await _post(proxy.url, OTHER_BODY)
    assert known.body == b"only answer"
    assert again.status == 409
    assert "already played" in again.body.decode()
    assert new.status == 409
    assert json.loads(new.body)["error"]["code"] == "record_mode_none"
    assert len(aivvm.state.journal) == 0
    assert path.read_bytes() == saved


async def test_all_records_everything_and_replaces_the_cassette(
    aivvm: FakeServer, tmp_path: Path
) -> None:
    path = tmp_path / "all.yaml"
    saved = _seed_cassette(path, b"old one", b"old two")
    async with RecordingProxy(_recorder(path, "all"), aivvm.url):
        pass  # nothing recorded: the file is left alone
    assert path.read_bytes() == saved
    aivvm.state.scripts.push(ResponseScript(raw=(b"fresh",)))
    async with RecordingProxy(_recorder(path, "all"), aivvm.url) as proxy:
        reply = await _post(proxy.url)  # matches the old recording, forwarded anyway
    assert reply.body == b"fresh"
    assert len(aivvm.state.journal) == 1
    cassette = yamlio.load(path)
    assert [i.response.body for i in cassette.interactions] == [b"fresh"]
    assert cassette.provenance is not None
    assert cassette.provenance.source == "fake"


# -- upstream errors ---------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_unreachable_target_gets_502_naming_it_and_records_nothing(tmp_path: Path) -> None:
    target = f"http://127.0.0.1:{_closed_port()}"
    path = tmp_path / "c.yaml"
    recorder = _recorder(path)
    async with RecordingProxy(recorder, target) as proxy:
        reply = await _post(proxy.url)
    assert reply.status == 502
    error = json.loads(reply.body)["error"]
    assert reply.header("Content-Type") == "application/json; charset=utf-8"
    assert error["code"] == "upstream_unreachable"
    assert target in error["message"]
    assert not path.exists()
    assert recorder.stats.failed == 1


async def test_an_upstream_answering_garbage_gets_502_and_records_nothing(
    aivvm: FakeServer, tmp_path: Path
) -> None:
    aivvm.state.scripts.push(ResponseScript(fault=Fault("random-bytes", size=64, seed=3)))
    path = tmp_path / "c.yaml"
    async with RecordingProxy(_recorder(path), aivvm.url) as proxy:
        reply = await _post(proxy.url)
        target = aivvm.url
    assert reply.status == 502
    error = json.loads(reply.body)["error"]
    assert error["code"] == "upstream_bad_response"
    assert target in error["message"]
    assert not path.exists()


@pytest.mark.parametrize(
    ("fault", "exact"),
    [
        (Fault("truncate", after_bytes=9), True),
        (Fault("malformed-chunked", after_bytes=9), True),
        (Fault("stall", after_bytes=9, seconds=10.0), True),
        (Fault("reset-after", after_bytes=9), False),  # an RST may discard unread bytes
    ],
    ids=lambda value: value.kind if isinstance(value, Fault) else "",
)
async def test_upstream_cut_mid_stream_is_forwarded_as_a_cut_and_not_recorded(
    aivvm: FakeServer, tmp_path: Path, fault: Fault, exact: bool
) -> None:
    path = tmp_path / "c.yaml"
    saved = _seed_cassette(path, b"previous good answer")
    # The delay makes the head arrive alone, so the break comes after the proxy relayed it.
    script = ResponseScript(raw=(b"abcd", b"efgh", b"ijkl"), fault=fault, chunk_delay=0.05)
    aivvm.state.scripts.push(script)
    started = time.monotonic()
    recorder = _recorder(path, "new_episodes")
    async with RecordingProxy(recorder, aivvm.url, read_timeout=0.5) as proxy:
        reply = await _post(proxy.url, OTHER_BODY)
    # The fake sent abcd, efgh, i and broke off: the client gets that, and no final chunk.
    assert reply.status == 200
    assert not reply.complete
    if exact:
        assert reply.chunks == [b"abcd", b"efgh", b"i"]
    else:
        assert b"abcdefghi".startswith(reply.body)
    assert time.monotonic() - started < 5  # noticed at once, or after the 0.5 s read timeout
    assert recorder.stats.failed == 1
    assert path.read_bytes() == saved


async def test_a_client_hanging_up_early_still_gets_the_whole_response_recorded(
    aivvm: FakeServer, tmp_path: Path
) -> None:
    path = tmp_path / "c.yaml"
    pieces = (b"one ", b"two ", b"three ", b"four")
    aivvm.state.scripts.push(ResponseScript(raw=pieces, chunk_delay=0.1))
    recorder = _recorder(path)
    async with RecordingProxy(recorder, aivvm.url) as proxy:
        request = build_request("/api/chat", AIVVM_HI_BODY, JSON)
        reply = await exchange(_port(proxy.url), request, read_limit=1)
        assert not reply.complete  # the client left after the first bytes
        # Leaving the block stops the proxy, which waits for the relay still reading upstream.
    assert recorder.stats.recorded == 1
    (interaction,) = yamlio.load(path).interactions
    assert list(interaction.response.chunk_bytes()) == list(pieces)


# -- writing a growing cassette ----------------------------------------------------------------


def test_cassette_writer_writes_exactly_what_a_full_dump_gives(tmp_path: Path) -> None:
    shipped = [i for p in sorted(LIBRARY.glob("*.yaml")) for i in yamlio.load(p).interactions]
    binary = _aivvm_interaction("http://x/api/chat", b"\x00\xff\xfe not text \xe2\x82")
    interactions = [*shipped, binary, shipped[0]]
    provenance = Provenance("http://127.0.0.1:0", "2024-01-01T00:00:00Z", "test", "fake")
    writer = CassetteWriter(tmp_path / "grow.yaml")
    for count in range(len(interactions) + 1):
        cassette = Cassette(tuple(interactions[:count]), provenance, {"metadata": {"k": 1}})
        writer.write(cassette)
        _assert_like_a_full_dump(writer.path.read_bytes(), cassette)
    # Not an append (another provenance, fewer interactions): still what a full dump gives.
    changed = Cassette(tuple(interactions[1:3]), None)
    writer.write(changed)
    _assert_like_a_full_dump(writer.path.read_bytes(), changed)


def _assert_like_a_full_dump(written: bytes, cassette: Cassette) -> None:
    """The same bytes as a full dump, but for a document-end marker that may end the file."""
    end = b"...\n"
    assert written.removesuffix(end) == yamlio.dumps(cassette).removesuffix(end)
    assert yamlio.loads(written) == cassette


_BODIES = st.one_of(
    st.binary(max_size=60),
    st.text(max_size=60).map(lambda text: text.encode("utf-8", "surrogatepass")),
    st.sampled_from([b"", b"\n", b"a\n\n", b"data: x\n\n", b" trailing ", b"...\n", b"|+\n"]),
)


@given(bodies=st.lists(_BODIES, min_size=1, max_size=5))
def test_cassette_writer_matches_a_full_dump_for_any_bodies(bodies: list[bytes]) -> None:
    writer = CassetteWriter("unused.yaml")
    interactions: list[Interaction] = []
    for body in bodies:
        interactions.append(_aivvm_interaction("http://x/api/chat", body))
        cassette = Cassette(tuple(interactions), None)
        _assert_like_a_full_dump(writer.render(cassette), cassette)


def test_record_options_give_the_policy_and_an_honest_source() -> None:
    parser = argparse.ArgumentParser()
    record_cmd.add_arguments(parser)
    scrub = ["--scrub-header", "X-Tenant", "--scrub-field", "customer_ref"]
    keep = ["--keep", "session_count"]
    args = parser.parse_args(
        ["--target", "https://api.example.com/", "--cassette", "c.yaml", *scrub, *keep]
    )
    assert args.target == "https://api.example.com"
    policy = record_cmd.policy_from(args)
    assert policy.is_secret_name("x-tenant")
    assert policy.is_secret_name("customer_ref")
    assert not policy.is_secret_name("session_count")
    assert policy.is_secret_name("session_id")  # the defaults stay
    assert record_cmd.source_for(args.target, None) == "live"
    assert record_cmd.source_for("http://127.0.0.1:8101", None) == "fake"
    assert record_cmd.source_for("http://localhost:8101", "live") == "live"
    assert record_cmd.source_for("https://api.example.com", "fake") == "fake"


# -- the tee -----------------------------------------------------------------------------------


def test_tee_offsets_are_milliseconds_since_forwarding_and_never_go_back() -> None:
    readings = iter([10.0, 10.0015, 10.0009, 10.25])
    tee = ChunkTee(10.0, clock=lambda: next(readings))
    for piece in (b"a", b"", b"bc", b"d", b"efg"):
        tee.add(piece)
    response = tee.response(200, "OK", {})
    assert response.plan.sizes == (1, 2, 1, 3)
    assert response.plan.offsets_ms == (0.0, 1.5, 1.5, 250.0)
    assert response.body == b"abcdefg"


# -- replay inside the proxy, against the shipped library ---------------------------------------


def _library_calls() -> list[tuple[str, str, dict[str, object]]]:
    table = json.loads((LIBRARY / "expected.json").read_text("utf-8"))
    return [
        (entry["file"], entry["provider"], call)
        for entry in table["cassettes"]
        if entry["provider"] != "GetGpt"  # its requests differ by design: a decrypting matcher
        for call in entry["calls"]
    ]


@pytest.mark.parametrize(("file", "provider", "call"), _library_calls())
async def test_proxy_replays_shipped_cassettes_chunk_for_chunk(
    tmp_path: Path, file: str, provider: str, call: dict[str, object]
) -> None:
    path = tmp_path / file
    path.write_bytes((LIBRARY / file).read_bytes())
    adapter = PROVIDERS[provider]
    expect = call["expect"]
    assert isinstance(expect, dict)
    messages: Sequence[dict[str, str]] = call["messages"]  # type: ignore[assignment]
    decodings = ["correct"] + (["legacy"] if "legacy_text" in expect else [])
    for decoding in decodings:
        recorder = _recorder(path, "none")
        async with RecordingProxy(recorder, f"http://127.0.0.1:{_closed_port()}") as proxy:
            got: object
            pieces = adapter.create_completion(
                str(call["model"]), messages, base_url=proxy.url, decoding=decoding
            )
            try:
                got = await asyncio.to_thread("".join, pieces)
            except TapedeckError as error:
                got = error
        if decoding == "legacy":
            assert got == expect["legacy_text"]
        elif "text" in expect:
            assert got == expect["text"]
        else:
            assert type(got).__name__ == expect["error"]
            for name in ("status", "partial"):
                if name in expect:
                    assert getattr(got, name) == expect[name]
        assert recorder.stats.replayed == 1


# -- the shipped library is regenerated deterministically --------------------------------------


def test_make_library_regenerates_the_shipped_files_byte_for_byte(tmp_path: Path) -> None:
    shipped = yamlio.load(LIBRARY / "aivvm.yaml").provenance
    assert shipped is not None
    assert shipped.source == "fake"
    # Without --recorded-at, the date of a cassette already there is kept: adding a provider's
    # entry and regenerating leaves every other file as it was.
    (tmp_path / "again").mkdir()
    shutil.copyfile(LIBRARY / "aivvm.yaml", tmp_path / "again" / "aivvm.yaml")
    again = make_library(tmp_path / "again")
    assert {path.name for path in again} == {
        path.name for path in LIBRARY.iterdir() if path.suffix in (".yaml", ".json", ".md")
    }
    for path in again:
        assert path.read_bytes() == (LIBRARY / path.name).read_bytes(), (
            f"{path.name} differs from the shipped file: run `python -m tools.make_library`"
        )
    other = make_library(tmp_path / "other", recorded_at="2001-02-03T04:05:06Z")
    for first, second in zip(again, other, strict=True):
        lines = zip(first.read_text().splitlines(), second.read_text().splitlines(), strict=True)
        differ = [(a, b) for a, b in lines if a != b]
        for old, new in differ:  # only the recording date, in the provenance and Date headers
            assert "2001" in new, (old, new)
            assert new.strip().startswith("recorded_at:") or "GMT" in new, (old, new)
        dates = 1 + len(yamlio.load(first)) if first.suffix == ".yaml" else 0
        assert len(differ) == dates  # recorded_at, and one Date header per interaction


# -- round trip: fake → recording proxy → cassette → replay server → client ---------------------


@st.composite
def streams(draw: st.DrawFn) -> tuple[tuple[bytes, ...], tuple[float, ...]]:
    """Random text, cut at random byte positions (inside characters too), random small delays."""
    body = draw(st.text(min_size=1, max_size=300)).encode("utf-8")
    cuts = draw(st.sets(st.integers(1, len(body) - 1), max_size=12)) if len(body) > 1 else set()
    edges = [0, *sorted(cuts), len(body)]
    pieces = tuple(body[start:end] for start, end in itertools.pairwise(edges))
    gaps = len(pieces) - 1
    delays = draw(st.lists(st.sampled_from([0.0, 0.001, 0.004]), min_size=gaps, max_size=gaps))
    return pieces, tuple(delays)


async def _round_trip(
    pieces: tuple[bytes, ...], delays: tuple[float, ...], path: Path
) -> tuple[RawResponse, RawResponse]:
    async with build_server("Aivvm", strictness="lenient") as fake:
        fake.state.scripts.push(ResponseScript(raw=pieces, chunk_delays=delays))
        async with RecordingProxy(_recorder(path), fake.url) as proxy:
            proxied = await _post(proxy.url)
    async with ReplayServer(path) as replay:
        replayed = await _post(replay.url)
    return proxied, replayed


@settings(max_examples=max(10, settings().max_examples // 3))
@given(stream=streams())
def test_round_trip_through_proxy_cassette_and_replay_keeps_every_chunk(
    tmp_path_factory: pytest.TempPathFactory, stream: tuple[tuple[bytes, ...], tuple[float, ...]]
) -> None:
    pieces, delays = stream
    path = tmp_path_factory.mktemp("round") / "c.yaml"
    proxied, replayed = asyncio.run(_round_trip(pieces, delays, path))
    assert proxied.complete
    assert proxied.chunks == list(pieces)
    response = yamlio.load(path).interactions[0].response
    assert list(response.chunk_bytes()) == list(pieces)
    # A chunk cannot arrive before the fake slept all the delays before it (the fake, the proxy
    # and the client share one loop, so a chunk may be read late, never early).
    waited = list(itertools.accumulate(delays, initial=0.0))
    for offset, slept in zip(response.plan.offsets_ms, waited, strict=True):
        assert offset >= slept * 1000 - 1.0
    assert replayed.complete
    assert replayed.chunks == list(pieces)


def test_make_library_regenerates_over_broken_cassettes(tmp_path: Path) -> None:
    (tmp_path / "aivvm.yaml").write_text("version: [unclosed\n", encoding="utf-8")
    written = make_library(tmp_path)  # the broken file's date is lost, not the run
    assert tmp_path / "aivvm.yaml" in written
    assert len(yamlio.load(tmp_path / "aivvm.yaml")) >= 1
