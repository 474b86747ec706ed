"""Scrubbing keeps planted secrets out of saved cassettes; lint finds them when planted by hand.

Planted secrets start with "QQ" and every other generated text avoids "Q", so a secret can only
be in the file if scrubbing let it through.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cassettes import yamlio
from cassettes.edits import apply_edits, without_overlaps
from cassettes.lint import lint_bytes, lint_file, lint_paths
from cassettes.model import (
    Cassette,
    Chunk,
    Interaction,
    RecordedRequest,
    RecordedResponse,
    chunks_from_sizes,
)
from cassettes.scrub import (
    DEFAULT_POLICY,
    SCRUBBED,
    ScrubPolicy,
    _Scrubber,
    scrub_interaction,
    scrub_request,
    scrub_response,
)

URL = "http://127.0.0.1:8080"
secrets = st.text("0123456789abcdef", min_size=16, max_size=24).map(lambda s: "QQ" + s)
plain_text = st.text(st.characters(codec="utf-8", exclude_characters="Q"), max_size=12)


@st.composite
def cut(draw: st.DrawFn, body: bytes) -> Sequence[Chunk]:
    if not body:
        return ()
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(body) - 1)), max_size=6)) - {len(body)})
    sizes = [b - a for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    return chunks_from_sizes(sizes, [float(n) for n in range(len(sizes))])


@st.composite
def planted_interactions(draw: st.DrawFn) -> tuple[Interaction, list[str]]:
    """An interaction with secrets in request headers, query and JSON body, and in response
    headers and SSE body (including an echo of the request's token), plus what they were."""
    s = [draw(secrets) for _ in range(8)]
    header = draw(
        st.sampled_from(["Authorization", "X-Api-Key", "Cookie", "X-Auth-Token", "api-key"])
    )
    header_value = draw(st.sampled_from(["{}", "Bearer {}", "theme=dark; session={}"])).format(s[0])
    query_name = draw(st.sampled_from(["api_key", "token", "access_token", "sessionid", "apiKey"]))
    field = draw(
        st.sampled_from(["api_key", "password", "secret", "sessionToken", "client_secret"])
    )
    wrap = draw(st.sampled_from(["flat", "nested", "list"]))
    body: dict[str, Any] = {
        "keep": "visible",
        "messages": [{"role": "user", "content": draw(plain_text) + " sk-" + s[4]}],
        "key": "",
        "max_tokens": 4000,
        "note": "Bearer " + s[3],
    }
    body.update(
        {field: s[2]}
        if wrap == "flat"
        else {"auth": {"x": [s[2]]}}
        if wrap == "list"
        else {"cfg": {field: s[2]}}
    )
    separators = draw(st.sampled_from([(",", ":"), (", ", ": ")]))
    request = RecordedRequest(
        "POST",
        f"{URL}/api/chat?q={draw(st.sampled_from(['a', 'b c']))}&{query_name}={s[1]}",
        {header: [header_value], "X-Note": ["Bearer " + s[7]], "Accept": ["*/*"]},
        json.dumps(body, separators=separators).encode(),
    )
    lines = [
        "data: " + json.dumps({"choices": [{"delta": {"content": draw(plain_text)}}]}),
        "data: " + json.dumps({"session_token": s[6], "text": "ok"}),
        f"error: your key {s[0]} was refused",
        "data: [DONE]",
    ]
    response_body = "\n\n".join(lines).encode()
    response = RecordedResponse(
        200,
        "OK",
        {"Set-Cookie": [f"sid={s[5]}; Path=/"], "Content-Type": ["text/event-stream"]},
        response_body,
        draw(cut(response_body)),
    )
    return Interaction(request, response), s


@given(planted=planted_interactions())
def test_planted_secrets_never_reach_the_saved_file(planted: tuple[Interaction, list[str]]) -> None:
    interaction, planted_secrets = planted
    scrubbed = scrub_interaction(interaction)
    text = yamlio.dumps(Cassette((scrubbed,))).decode("ascii")
    for secret in planted_secrets:
        assert secret not in text
    assert "QQ" not in text
    # What is not secret survives, and the chunk plan still cuts the new body.
    loaded = yamlio.loads(text).interactions[0]
    body = json.loads(loaded.request.body or b"")
    assert (body["keep"], body["key"], body["max_tokens"]) == ("visible", "", 4000)
    assert loaded.request.uri.startswith(f"{URL}/api/chat?q=")
    assert b"data: [DONE]" in loaded.response.body
    assert sum(c.size for c in loaded.response.chunks) == len(loaded.response.body)
    assert lint_bytes(text.encode()) == []


@given(planted=planted_interactions())
def test_scrubbing_twice_changes_nothing_more(planted: tuple[Interaction, list[str]]) -> None:
    once = scrub_interaction(planted[0])
    assert scrub_interaction(once) == once
    assert scrub_request(planted[0].request) == once.request


# Names either side of the secret-name heuristic, and values with and without a secret's hint
# (in any case, %-encoded, behind \u escapes), for requests near the edge of "anything to scrub?".
_NAMES = ("Accept", "X-Trace", "token_type", "api_key", "Cookie", "q", "note")
_VALUES = (
    "plain", "", "BeArEr abcdefgh12345678", "sk-abcdefghijklmnop1234", "%73k-abcdefghijklmnop1",
    "eyJabcdefghij.eyJabcdefghij.sig", "x@y", "a+b", "\\u0073k-abcdefghijklmnop1234",
)  # fmt: skip


def _json_body(document: object) -> bytes:
    return json.dumps(document).replace("\\\\u", "\\u").encode()  # keep the \u escapes live


def _one_ingredient_requests() -> list[RecordedRequest]:
    """A clean request with one name = value placed in each part a scrub looks at."""
    made = []
    for name in _NAMES:
        for value in _VALUES:
            pair = f"{name}={value}"
            form = {"Content-Type": ["application/x-www-form-urlencoded"]}
            made += [
                RecordedRequest("POST", f"{URL}/api", {name: [value]}, b'{"a": "b"}'),
                RecordedRequest("POST", f"{URL}/api?x=1&{pair}", {}, b""),
                RecordedRequest("POST", f"{URL}/api#{pair}", {}, None),
                RecordedRequest("POST", f"{URL}/api", {}, _json_body({"a": 1, name: value})),
                RecordedRequest("POST", f"{URL}/api", {}, _json_body({"m": [{name: value}]})),
                RecordedRequest("POST", f"{URL}/api", {}, b"data: " + _json_body({name: value})),
                RecordedRequest("POST", f"{URL}/api", form, f"x=1&{pair}".encode()),
            ]
    return made


@st.composite
def _mixed_requests(draw: st.DrawFn) -> RecordedRequest:
    """Several ingredients at once, anywhere."""
    names, values = st.sampled_from(_NAMES), st.sampled_from(_VALUES)
    headers = {draw(names): [draw(values)] for _ in range(draw(st.integers(0, 2)))}
    query = "&".join(f"{draw(names)}={draw(values)}" for _ in range(draw(st.integers(0, 2))))
    fields = {draw(names): draw(values) for _ in range(draw(st.integers(0, 3)))}
    body = _json_body(draw(st.sampled_from([fields, {"outer": [fields]}, [fields]])))
    return RecordedRequest("POST", f"{URL}/api?{query}", headers, body)


def _quick_check_agrees(request: RecordedRequest) -> bool:
    """The quick check's answer, after checking it never skips work the full pass would do."""
    quick = _Scrubber(DEFAULT_POLICY).nothing_to_find(request)
    if quick:
        assert _Scrubber(DEFAULT_POLICY).request_in_full(request) == request, request
    return quick


def test_the_quick_nothing_to_find_check_never_skips_a_secret_wherever_it_is_placed() -> None:
    answers = [_quick_check_agrees(request) for request in _one_ingredient_requests()]
    # Not vacuous: most clean placements are settled quickly, the rest go to the full pass.
    assert 0.2 < sum(answers) / len(answers) < 0.8


@given(request=_mixed_requests())
def test_the_quick_check_never_skips_a_secret_among_several_ingredients(
    request: RecordedRequest,
) -> None:
    _quick_check_agrees(request)


SECRET_NAMES = ["Authorization", "Cookie", "set-cookie", "X-API-Key", "apiKey", "access_token"]
SECRET_NAMES += ["PHPSESSID", "x-csrf-token", "client_secret", "password", "sessionToken", "X-Auth"]
SECRET_NAMES += ["session_id"]
PLAIN_NAMES = ["max_tokens", "tokenLimit", "token_count", "Content-Type", "Keep-Alive", "Accept"]
PLAIN_NAMES += ["messages", "signature", "WWW-Authenticate", "temperature", "uuid", "key_name"]


@pytest.mark.parametrize("name", SECRET_NAMES)
def test_secret_looking_names(name: str) -> None:
    assert DEFAULT_POLICY.is_secret_name(name)


@pytest.mark.parametrize("name", PLAIN_NAMES)
def test_names_that_are_not_secrets(name: str) -> None:
    assert not DEFAULT_POLICY.is_secret_name(name)


def test_policies_add_and_exempt_names() -> None:
    policy = ScrubPolicy.with_names("X-Tenant", keep=["api_key"])
    assert policy.is_secret_name("x-tenant")
    assert not policy.is_secret_name("API_KEY")


def test_json_is_edited_in_place_keeping_format_and_order() -> None:
    request = RecordedRequest(
        "POST",
        URL,
        {"Content-Length": ["52"]},
        b'{"b":1,"api_key":"abc123xyz","a":[1, 2],"key":""}',
    )
    scrubbed = scrub_request(request)
    assert scrubbed.body == b'{"b":1,"api_key":"<scrubbed>","a":[1, 2],"key":""}'
    assert scrubbed.headers["Content-Length"] == [str(len(scrubbed.body or b""))]


def test_an_unusually_escaped_secret_is_caught_by_rewriting_the_document() -> None:
    request = RecordedRequest("POST", URL, {}, b'{"password": "\\u0070ass-word-123", "n": 1}')
    body = scrub_request(request).body or b""
    assert json.loads(body) == {"password": SCRUBBED, "n": 1}
    assert b"ass-word-123" not in body


def test_a_secret_looking_value_behind_unicode_escapes_is_still_found() -> None:
    # No "sk-" in the bytes, only in the decoded string: the cheap byte check must not skip it.
    secret = "sk-abcdefghijklmnop1234"
    escaped = "".join(f"\\u{ord(c):04x}" for c in secret[:3]) + secret[3:]
    request = RecordedRequest("POST", URL, {}, f'{{"note": "{escaped}", "n": 1}}'.encode())
    body = scrub_request(request).body or b""
    assert json.loads(body) == {"note": SCRUBBED, "n": 1}


@pytest.mark.parametrize("value", ["BeArEr abcdefgh12345678", "x sk-abcdefghijklmnop1234 y"])
def test_secret_looking_header_values_are_found_in_any_header_of_a_block(value: str) -> None:
    # The quick "anything to scrub?" check looks at all values at once; the secret may be last.
    headers = {"Accept": ["*/*"], "User-Agent": ["Mozilla/5.0"], "X-Trace": ["a", value]}
    scrubbed = scrub_request(RecordedRequest("GET", URL, headers)).headers
    assert scrubbed["X-Trace"][0] == "a"
    assert SCRUBBED in scrubbed["X-Trace"][1]
    assert scrubbed["Accept"] == ["*/*"]


def test_nothing_to_scrub_returns_the_very_same_objects() -> None:
    request = RecordedRequest(
        "POST", f"{URL}/api?x=1", {"Accept": ["*/*"]}, b'{"key": "", "max_tokens": 4000}'
    )
    response = RecordedResponse.whole(200, "OK", {"Content-Type": ["text/plain"]}, b"hello")
    assert scrub_request(request) is request
    assert scrub_response(response) is response


@pytest.mark.parametrize(
    "body",
    [
        b'data: {"token": "abcdefgh"}',
        b'{"token": "abcdefgh"}\n{"x": 1}\n',
        b'event: x\r\ndata:{"token":"abcdefgh"}\r\n\r\n',
    ],
)
def test_json_on_its_own_line_is_scrubbed_in_every_framing(body: bytes) -> None:
    scrubbed = scrub_response(RecordedResponse.whole(200, "OK", {}, body)).body
    assert b"abcdefgh" not in scrubbed
    assert scrubbed == body.replace(b"abcdefgh", SCRUBBED.encode())


def test_form_bodies_are_scrubbed_like_queries() -> None:
    request = RecordedRequest(
        "POST",
        URL,
        {"Content-Type": ["application/x-www-form-urlencoded"]},
        b"user=me&password=hunter2hunter2&x=1",
    )
    assert scrub_request(request).body == b"user=me&password=%3Cscrubbed%3E&x=1"


def test_value_patterns_can_be_switched_off() -> None:
    request = RecordedRequest("GET", URL, {"X-Note": ["Bearer abcdefgh12345678"]})
    assert scrub_request(request).headers["X-Note"] == ["Bearer <scrubbed>"]
    assert scrub_request(request, ScrubPolicy(scrub_values=False)) is request


# --- chunk boundaries follow edits ---------------------------------------------------------------


def test_edits_move_chunk_boundaries() -> None:
    body, chunks = apply_edits(b"0123456789", chunks_from_sizes([3, 3, 4]), [(2, 5, b"XY")])
    assert body == b"01XY56789"
    # Boundary 3 was inside the edit: it moves to the end of "XY"; boundary 6 shifts by -1.
    assert [c.size for c in chunks] == [4, 1, 4]


def test_a_chunk_swallowed_by_an_edit_disappears_and_others_keep_their_offsets() -> None:
    chunks = chunks_from_sizes([2, 2, 6], [0.0, 5.0, 9.0])
    body, moved = apply_edits(b"0123456789", chunks, [(1, 5, b"")])
    assert body == b"056789"
    assert moved == (Chunk(1, 0.0), Chunk(5, 9.0))


@given(data=st.data(), body=st.binary(min_size=1, max_size=40))
def test_edited_chunk_plans_always_cut_the_new_body(data: st.DataObject, body: bytes) -> None:
    chunks = data.draw(cut(body))
    spans = data.draw(
        st.lists(
            st.tuples(st.integers(0, len(body)), st.integers(0, 5), st.binary(max_size=6)),
            max_size=4,
        )
    )
    edits = without_overlaps((s, min(s + n, len(body)), r) for s, n, r in spans)
    new_body, moved = apply_edits(body, chunks, edits)
    assert sum(c.size for c in moved) == len(new_body)
    assert all(c.size > 0 for c in moved)
    assert len(moved) <= len(chunks)
    RecordedResponse(200, "OK", {}, new_body, moved)  # the model accepts the plan


# --- lint ---------------------------------------------------------------------------------------

_DIRTY = """\
version: 1
interactions:
- request:
    method: POST
    uri: http://u:pw12@127.0.0.1/api?api_key=abc&x=1
    headers:
      Authorization:
      - Bearer abcdefgh12345
      Cookie:
      - <scrubbed>
      Accept:
      - '*/*'
    body: '{"password": "hunter2", "key": ""}'
  response:
    status: {code: 200, message: OK}
    headers:
      Set-Cookie: [sid=1]
    body:
      string: |
        data: {"a": "b"}

        data: {"token": "zzz", "x": "sk-abcdefghijklmnopqrstu"}
    chunks: !!python/object:os.system x
"""


def _line(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if needle in line)


def test_lint_finds_every_planted_secret_on_its_line() -> None:
    found = {(f.line, f.kind) for f in lint_bytes(_DIRTY.encode(), "dirty.yaml")}
    assert found == {
        (_line(_DIRTY, "uri:"), "secret-query"),
        (_line(_DIRTY, "Bearer"), "bearer-token"),
        (_line(_DIRTY, "Bearer"), "secret-header"),
        (_line(_DIRTY, "hunter2"), "secret-field"),
        (_line(_DIRTY, "sid=1"), "cookie"),
        (_line(_DIRTY, '"token"'), "secret-field"),
        (_line(_DIRTY, "sk-abc"), "sk-key"),
        (_line(_DIRTY, "!!python"), "unsafe-tag"),
    }
    messages = " ".join(str(f) for f in lint_bytes(_DIRTY.encode(), "dirty.yaml"))
    assert "dirty.yaml:" in messages
    for secret in ("abcdefgh12345", "hunter2", "zzz", "sk-abcdefghijklmnopqrstu", "pw12"):
        assert secret not in messages


def test_lint_looks_inside_binary_bodies() -> None:
    response = RecordedResponse.whole(
        200, "OK", {}, b"\xff\x00 Authorization: Bearer abcdefgh12345"
    )
    text = yamlio.dumps(Cassette((Interaction(RecordedRequest("GET", URL), response),)))
    assert b"!!binary" in text
    (finding,) = lint_bytes(text)
    assert finding.kind == "bearer-token"
    assert finding.line == _line(text.decode(), "!!binary")


def test_lint_still_searches_a_file_that_is_not_yaml() -> None:
    kinds = [(f.line, f.kind) for f in lint_bytes(b"a: [\nkey: sk-abcdefghijklmnopqrstuv\n")]
    assert kinds == [(1, "not-yaml"), (2, "sk-key")]


def test_lint_walks_directories_for_cassettes(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "dirty.yml").write_text(_DIRTY)
    (tmp_path / "clean.yaml").write_bytes(yamlio.dumps(Cassette()))
    (tmp_path / "notes.txt").write_text("Bearer abcdefgh12345")
    findings = lint_paths([tmp_path])
    assert {Path(f.path).name for f in findings} == {"dirty.yml"}
    assert lint_file(tmp_path / "clean.yaml") == []
