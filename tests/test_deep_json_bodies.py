"""JSON nested too deeply for Python's recursion limit is just bytes, never a crash.

``json.loads`` raises ``RecursionError`` (not ``ValueError``) on a document nested about a
thousand levels deep. Scrubbing, the replay server and the recording proxy must treat such a
body like any other body that is not JSON: kept byte for byte, matched as bytes, counted.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import requests

from cassettes import yamlio
from cassettes.model import Cassette, Interaction, RecordedRequest, RecordedResponse
from cassettes.proxy import RecordingProxy
from cassettes.recorder import Recorder, RecordMode
from cassettes.replay import ReplayEvent, ReplayServer
from cassettes.scrub import json_documents, scrub_interaction, scrub_request
from fake_upstreams.registry import build_server
from fake_upstreams.server import FakeServer
from tests._rawclient import build_request, exchange
from tests.wire_literals import AIVVM_HI_BODY

#: Far beyond any recursion limit: json.loads gives up on it wherever it is called from.
DEEP = b"[" * 100_000 + b"]" * 100_000
JSON_HEADERS = {"Content-Type": ["application/json"]}
ORIGIN = "http://127.0.0.1:9"


def _post(body: bytes) -> RecordedRequest:
    return RecordedRequest("POST", ORIGIN + "/api/chat", JSON_HEADERS, body)


def test_a_deep_document_is_not_one_of_the_json_documents_of_a_body() -> None:
    assert json_documents(DEEP) == []
    assert json_documents(b"data: " + DEEP + b'\ndata: {"a": 1}\n') == [
        (len(DEEP) + 13, len(DEEP) + 21, {"a": 1})
    ]


def test_scrubbing_a_deep_request_keeps_it_byte_for_byte() -> None:
    request = _post(DEEP)
    assert scrub_request(request).body == DEEP


def test_a_deep_body_is_still_scrubbed_of_secret_looking_values() -> None:
    token = b"sk-" + b"A1b2C3d4" * 4
    body = b"[" * 5000 + b'"' + token + b'"' + b"]" * 5000
    scrubbed = scrub_request(_post(body)).body
    assert scrubbed is not None
    assert token not in scrubbed
    assert scrubbed.startswith(b"[" * 5000)


def test_scrubbing_an_interaction_with_deep_bodies_both_ways() -> None:
    response = RecordedResponse.whole(400, "Bad Request", {}, b"data: " + DEEP + b"\n")
    interaction = scrub_interaction(Interaction(_post(DEEP), response))
    assert interaction.request.body == DEEP
    assert interaction.response.body == b"data: " + DEEP + b"\n"


def _replay_cassette() -> Cassette:
    answer = RecordedResponse.whole(200, "OK", {"Content-Type": ["text/plain"]}, b"hello")
    return Cassette((Interaction(_post(b'{"messages": []}'), answer),))


def test_a_recorded_deep_request_is_matched_byte_for_byte() -> None:
    answer = RecordedResponse.whole(200, "OK", {"Content-Type": ["text/plain"]}, b"deep")
    recorded = Cassette((*_replay_cassette().interactions, Interaction(_post(DEEP), answer)))
    with ReplayServer(recorded) as server:
        played = requests.post(
            server.url + "/api/chat", data=DEEP, headers={"Content-Type": "application/json"}
        )
        assert (played.status_code, played.text) == (200, "deep")
        other = requests.post(
            server.url + "/api/chat",
            data=DEEP[:-1],  # one bracket short: not the recorded bytes
            headers={"Content-Type": "application/json"},
        )
        assert other.status_code == 421


def test_replay_answers_a_deep_body_as_a_miss_and_counts_it() -> None:
    events: list[ReplayEvent] = []
    with ReplayServer(_replay_cassette(), on_event=events.append) as server:
        reply = requests.post(
            server.url + "/api/chat", data=DEEP, headers={"Content-Type": "application/json"}
        )
        assert reply.status_code == 421, reply.text
        assert reply.headers["X-Tapedeck-Interaction"] == "miss"
        assert len(server.take_misses()) == 1
        assert [event.number for event in events] == [None]
        # The server is still fine afterwards: the recorded request plays.
        played = requests.post(server.url + "/api/chat", json={"messages": []})
        assert (played.status_code, played.text) == (200, "hello")


@pytest.fixture
async def aivvm() -> AsyncIterator[FakeServer]:
    async with build_server("Aivvm", strictness="lenient") as fake:
        yield fake


def _recorder(path: Path, mode: RecordMode) -> Recorder:
    return Recorder(path, target_url="http://127.0.0.1:0", source="fake", mode=mode)


@pytest.mark.parametrize("mode", ["all", "new_episodes"])
async def test_the_proxy_records_a_deep_request_as_bytes(
    aivvm: FakeServer, tmp_path: Path, mode: RecordMode
) -> None:
    path = tmp_path / "deep.yaml"
    if mode == "new_episodes":  # the request is looked up in the cassette first
        async with RecordingProxy(_recorder(path, "all"), aivvm.url) as proxy:
            first = await exchange(
                int(proxy.url.rsplit(":", 1)[1]),
                build_request("/api/chat", AIVVM_HI_BODY, (("Content-Type", "application/json"),)),
                deadline=10.0,
            )
            assert first.status == 200
    recorder = _recorder(path, mode)
    async with RecordingProxy(recorder, aivvm.url) as proxy:
        reply = await exchange(
            int(proxy.url.rsplit(":", 1)[1]),
            build_request("/api/chat", DEEP, (("Content-Type", "application/json"),)),
            deadline=30.0,
        )
    assert reply.status == 400  # the fake refuses it; the exchange is recorded all the same
    assert (recorder.stats.recorded, recorder.stats.failed) == (1, 0)
    recorded = yamlio.load(path).interactions[-1]
    assert recorded.request.body == DEEP
    assert json.loads(recorded.response.body)["error"]
