"""Plain vcrpy replays Tapedeck cassettes, Tapedeck reads vcrpy's, and the matchers and scrub
hooks work inside vcrpy. vcrpy intercepts every request in these tests; the only real socket is a
loopback server used to record through vcrpy."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
import vcr
from vcr.errors import CannotOverwriteExistingCassetteException
from vcr.persisters.filesystem import FilesystemPersister
from vcr.request import Request as VcrRequest
from vcr.serialize import serialize as vcr_serialize
from vcr.serializers import yamlserializer

from cassettes import yamlio
from cassettes.lint import lint_file
from cassettes.model import (
    Cassette,
    Chunk,
    Interaction,
    Provenance,
    RecordedRequest,
    RecordedResponse,
    chunks_from_sizes,
)
from cassettes.vcr_compat import check_vcrpy_replay, register, scrub_hooks, vcr_matcher

URL = "http://127.0.0.1:8080"
SSE = b'data: {"choices": [{"delta": {"content": "h\xc3\xa9"}}]}\n\ndata: [DONE]\n\n'
BINARY = b"\x00\xff\xfe\r\n\rraw \xc3"  # NUL, CR, invalid and cut UTF-8


def chat(body: dict[str, object]) -> RecordedRequest:
    return RecordedRequest(
        "POST", f"{URL}/api/chat", {"Content-Type": ["application/json"]}, json.dumps(body).encode()
    )


@pytest.fixture
def cassette() -> Cassette:
    return Cassette(
        (
            Interaction(
                RecordedRequest("GET", f"{URL}/api/models"),
                RecordedResponse.whole(200, "OK", {"Content-Type": ["application/json"]}, b"[]"),
            ),
            Interaction(
                chat({"messages": [{"role": "user", "content": "one"}], "stream": True}),
                RecordedResponse(
                    200,
                    "OK",
                    {"Content-Type": ["text/event-stream"], "Transfer-Encoding": ["chunked"]},
                    SSE,
                    chunks_from_sizes([5, 30, len(SSE) - 35], [1.5, 2.0, 40.25]),
                ),
            ),
            Interaction(
                chat({"messages": [{"role": "user", "content": "two"}], "stream": True}),
                RecordedResponse(
                    201, "Created", {"X-Many": ["a", "b"]}, BINARY, chunks_from_sizes([1, 8, 2])
                ),
            ),
            Interaction(
                RecordedRequest("POST", f"{URL}/api/chat?x=1", {}, b"{}"),
                RecordedResponse.whole(403, "Forbidden", {}, b"<title>Access denied</title>"),
            ),
        ),
        Provenance(URL, "2024-05-01T00:00:00Z", "0.1.0", "fake"),
    )


@pytest.fixture
def saved(cassette: Cassette, tmp_path: Path) -> Path:
    path = tmp_path / "cassette.yaml"
    yamlio.save(cassette, path)
    return path


def test_plain_vcrpy_replays_our_cassette_with_requests(cassette: Cassette, saved: Path) -> None:
    with vcr.use_cassette(str(saved), record_mode="none"), requests.Session() as session:
        replies = [
            session.request(i.request.method, i.request.uri, data=i.request.body)
            for i in cassette.interactions
        ]
    assert [r.status_code for r in replies] == [200, 200, 201, 403]
    assert [r.content for r in replies] == [b"[]", SSE, BINARY, b"<title>Access denied</title>"]
    assert replies[1].headers["Content-Type"] == "text/event-stream"
    assert replies[2].headers["X-Many"] == "a, b"
    assert replies[2].reason == "Created"


def test_plain_vcrpy_refuses_what_was_not_recorded(saved: Path) -> None:
    with (
        vcr.use_cassette(str(saved), record_mode="none"),
        pytest.raises(CannotOverwriteExistingCassetteException),
    ):
        requests.get(f"{URL}/not/recorded")


def test_vcrpys_loader_sees_the_same_bytes_and_keeps_the_chunk_plan(
    cassette: Cassette, saved: Path
) -> None:
    vcr_requests, vcr_responses = FilesystemPersister.load_cassette(str(saved), yamlserializer)
    assert [r["body"]["string"] for r in vcr_responses] == [
        i.response.body for i in cassette.interactions
    ]
    assert [r.body for r in vcr_requests] == [i.request.body for i in cassette.interactions]
    assert vcr_responses[1]["chunks"] == "5@1.5 30@2.0 47@40.25".replace("47", str(len(SSE) - 35))


def test_the_helper_finds_no_problem_in_a_good_cassette(saved: Path) -> None:
    assert check_vcrpy_replay(saved) == []


def test_the_helper_reports_what_vcrpy_cannot_replay(tmp_path: Path) -> None:
    bad = Cassette(
        (
            Interaction(
                RecordedRequest("GET", "ftp://127.0.0.1/file"),
                RecordedResponse.whole(200, "OK", {}, b"x"),
            ),
        )
    )
    yamlio.save(bad, tmp_path / "bad.yaml")
    (problem,) = check_vcrpy_replay(tmp_path / "bad.yaml")
    assert "interaction 0 (GET ftp://127.0.0.1/file)" in problem


def test_we_read_what_vcrpys_own_serializer_writes(tmp_path: Path) -> None:
    vcr_request = VcrRequest("POST", f"{URL}/api/chat", b'{"a": 1}', {"X-A": "1"})
    responses = [
        {
            "status": {"code": 200, "message": "OK"},
            "headers": {"Content-Type": ["text/plain"]},
            "body": {"string": body},
        }
        for body in (b"plain text\n", BINARY)
    ]
    text = vcr_serialize(
        {"requests": [vcr_request, vcr_request], "responses": responses}, yamlserializer
    )
    loaded = yamlio.loads(text)
    assert loaded.provenance is None
    assert [i.response.body for i in loaded.interactions] == [b"plain text\n", BINARY]
    assert loaded.interactions[1].response.chunks == (Chunk(len(BINARY), 0.0),)
    assert loaded.interactions[0].request.headers == {"X-A": ["1"]}
    assert loaded.interactions[0].request.body == b'{"a": 1}'


def test_a_cassette_rewritten_by_vcrpy_still_loads_with_its_chunks(
    cassette: Cassette, saved: Path
) -> None:
    with vcr.use_cassette(str(saved), record_mode="new_episodes") as vcr_cassette:
        vcr_cassette.dirty = True  # make vcrpy save the file again
    assert "tapedeck:" not in saved.read_text()  # vcrpy drops top-level keys it does not know
    reloaded = yamlio.load(saved)
    assert reloaded.provenance is None
    assert [i.response.chunks for i in reloaded.interactions] == [
        i.response.chunks for i in cassette.interactions
    ]


# --- our matchers inside vcrpy ------------------------------------------------------------------


def test_registered_matchers_ignore_json_key_order_and_whitespace(saved: Path) -> None:
    my_vcr = vcr.VCR(record_mode="none")
    names = register(my_vcr)
    assert names == (
        "tapedeck_method",
        "tapedeck_path",
        "tapedeck_query",
        "tapedeck_body",
        "tapedeck",
    )
    reordered = b'{ "stream": true,\n  "messages": [{"content": "two", "role": "user"}] }'
    with my_vcr.use_cassette(str(saved), match_on=["tapedeck"]):
        reply = requests.post(f"{URL}/api/chat", data=reordered)
    assert reply.status_code == 201
    assert reply.content == BINARY


def test_a_body_mismatch_is_explained_by_the_tapedeck_matcher(saved: Path) -> None:
    my_vcr = vcr.VCR(record_mode="none")
    register(my_vcr)
    body = json.dumps({"messages": [{"role": "user", "content": "three"}], "stream": True})
    with (
        my_vcr.use_cassette(str(saved), match_on=["tapedeck_method", "tapedeck_body"]),
        pytest.raises(CannotOverwriteExistingCassetteException) as caught,
    ):
        requests.post(f"{URL}/api/chat", data=body)
    assert "tapedeck_body" in str(caught.value)
    assert "fields messages" in str(caught.value)


def test_a_vcr_matcher_returns_none_or_raises_assertion_error() -> None:
    from cassettes.matchers import Matcher

    match = vcr_matcher("body", Matcher())
    recorded = VcrRequest("POST", URL, b'{"a": 1, "b": 2}', {})
    assert match(VcrRequest("POST", URL, b'{"b": 2, "a": 1}', {}), recorded) is None
    with pytest.raises(AssertionError, match="body"):
        match(VcrRequest("POST", URL, b'{"a": 2}', {}), recorded)


# --- scrubbing while vcrpy records ---------------------------------------------------------------

TOKEN = "tok_live_abcdefgh12345678"


class _Echo(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        body = json.dumps({"echo": self.headers.get("Authorization", ""), "ok": True}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Set-Cookie", "session=s3ss10n-value; Path=/")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def echo_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_scrub_hooks_keep_secrets_out_of_what_vcrpy_records(
    echo_server: str, tmp_path: Path
) -> None:
    path = tmp_path / "recorded.yaml"
    before_request, before_response = scrub_hooks()
    with vcr.use_cassette(
        str(path),
        record_mode="once",
        before_record_request=before_request,
        before_record_response=before_response,
    ):
        reply = requests.post(
            f"{echo_server}/api?api_key=qk-123456789",
            json={"password": "pw-123456789", "q": "hi"},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
    assert reply.json()["echo"] == f"Bearer {TOKEN}"  # the live caller saw the real reply
    text = path.read_text()
    for secret in (TOKEN, "qk-123456789", "pw-123456789", "s3ss10n-value"):
        assert secret not in text
    assert lint_file(path) == []
    loaded = yamlio.load(path)
    assert json.loads(loaded.interactions[0].response.body)["ok"] is True
