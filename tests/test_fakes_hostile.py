"""Hostile input, per endpoint: every malformed request gets its exact 4xx and JSON error.

One table per endpoint (Aivvm /api/chat and /api/models, AI365VIP, GetGpt, CodeLinkAva), sent
byte for byte by the raw-socket client of tests/_rawclient.py. Statuses and error codes are
written literally. After the whole table the fake still serves, no row ever gets a 5xx, and
every failure of GetGpt's decrypt stage is answered with byte-identical status and body (no
padding oracle). Known gaps are strict xfails whose reason is the diagnosis.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from fake_upstreams.server import FakeFleet, FakeServer
from tests import aes_oracle as oracle
from tests import fakes_support as fs
from tests._rawclient import RawResponse, build_request, exchange
from tests.wire_literals import getgpt_plaintext

pytestmark = pytest.mark.timeout(60)


fleet, _fakes_guard = fs.fleet_fixtures()


# -- valid requests, written out from docs/PROTOCOLS.md ---------------------------------------

HI = [{"role": "user", "content": "hi"}]
AIVVM: dict[str, Any] = {
    "model": {"id": "gpt-3.5-turbo", "name": "GPT-3.5"},
    "messages": HI,
    "key": "",
    "prompt": "You are ChatGPT.",
    "temperature": 0.7,
}
AI365: dict[str, Any] = {
    "model": {"id": "gpt-4o", "name": "GPT-3.5", "maxLength": 3000, "tokenLimit": 2048},
    "messages": HI,
    "key": "",
    "prompt": "You are a helpful assistant.",
    "temperature": 1,
}
CODELINK: dict[str, Any] = {"messages": HI, "temperature": 0.6, "stream": True}
PLAINTEXT = getgpt_plaintext(HI, "0e7c2b8a-3f4d-4e1a-9b6c-5d8e7f1a2b3c")
MODELS_BODY: dict[str, Any] = {"key": ""}


def _getgpt(plaintext: bytes = fs.json_body(PLAINTEXT)) -> dict[str, Any]:
    return {"signature": oracle.seal(plaintext)}


@dataclass(frozen=True)
class Endpoint:
    provider: str
    path: str
    valid: dict[str, Any]
    #: A field where a number may stand (an extra, ignored one where the body has none).
    number_key: str


ENDPOINTS = {
    "Aivvm-chat": Endpoint("Aivvm", "/api/chat", AIVVM, "temperature"),
    "Aivvm-models": Endpoint("Aivvm", "/api/models", MODELS_BODY, "n"),
    "AI365VIP": Endpoint("AI365VIP", "/api/chat", AI365, "temperature"),
    "GetGpt": Endpoint("GetGpt", "/api/chat/stream", _getgpt(), "n"),
    "CodeLinkAva": Endpoint("CodeLinkAva", "/api/chat", CODELINK, "temperature"),
}


def _headers(provider: str) -> tuple[tuple[str, str], ...]:
    return (*fs.BROWSER_HEADERS[provider], fs.JSON_CT)


def _with(data: dict[str, Any], key: str, raw: bytes) -> bytes:
    """``data`` as JSON with the value of ``key`` replaced by the raw bytes ``raw``."""
    return fs.json_body({**data, key: "\x00HOLE\x00"}).replace(b'"\\u0000HOLE\\u0000"', raw)


def _changed(data: dict[str, Any], **changes: Any) -> bytes:
    """``data`` with fields replaced (value ``DROP`` removes the field), as JSON."""
    merged = {**data, **changes}
    return fs.json_body({key: value for key, value in merged.items() if value is not DROP})


DROP = object()


@dataclass(frozen=True)
class Row:
    """One malformed request and the exact answer. ``body``/``headers`` None = the valid ones."""

    what: str
    status: int
    code: str
    field: str | None = None
    body: bytes | None = None
    method: str = "POST"
    headers: tuple[tuple[str, str], ...] | None = None
    names: str = ""  # the error message must contain this
    bug: str = ""  # a known gap: the row is a strict xfail with this diagnosis


# Error codes, as the fakes name them.
NOT_JSON = "body_not_json"
NOT_UTF8 = "body_not_utf8"
NOT_OBJECT = "body_not_object"
TOO_DEEP = "body_too_deep"
MEDIA = "unsupported_media_type"
MISSING = "missing_field"
BAD_TYPE = "bad_type"
BAD_MSGS = "bad_messages"
BAD_MODEL = "bad_model"
UNKNOWN = "unknown_model"
UNLIKE = "not_like_original"
BAD_SIG = "bad_signature"
#: (what, code, field, {body field: new value or DROP}) → a 400 row on the endpoint's valid body.
FieldSpec = tuple[str, str, str | None, dict[str, Any]]


def field_rows(valid: dict[str, Any], specs: Sequence[FieldSpec], bug: str = "") -> list[Row]:
    return [
        Row(what, 400, code, field, _changed(valid, **changes), bug=bug)
        for what, code, field, changes in specs
    ]


def generic_rows(endpoint: Endpoint) -> list[Row]:
    """What every endpoint must refuse: method, content type, size, and broken JSON."""
    valid = fs.json_body(endpoint.valid)
    browser = fs.BROWSER_HEADERS[endpoint.provider]

    def hole(raw: bytes) -> bytes:
        return _with(endpoint.valid, endpoint.number_key, raw)

    rows = [
        Row("no-content-type", 415, MEDIA, "content-type", headers=browser),
        *(
            Row(f"content-type-{kind}", 415, MEDIA, "content-type",
                headers=(*browser, ("Content-Type", kind)))
            for kind in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data")
        ),
        Row("over-1-MiB", 413, "body_too_large", body=valid + b" " * (1024 * 1024)),
        Row("empty-body", 400, NOT_JSON, body=b""),
        Row("not-json", 400, NOT_JSON, body=b"hello"),
        Row("truncated-json", 400, NOT_JSON, body=valid[:-1]),
        Row("trailing-garbage", 400, NOT_JSON, body=valid + b" x"),
        Row("single-quotes", 400, NOT_JSON, body=b"{'key': ''}"),
        Row("utf8-bom", 400, NOT_JSON, body=b"\xef\xbb\xbf" + valid),
        # Python's json takes these; JSON (RFC 8259) and the real servers do not.
        Row("NaN", 400, NOT_JSON, body=hole(b"NaN")),
        Row("Infinity", 400, NOT_JSON, body=hole(b"Infinity")),
        Row("-Infinity", 400, NOT_JSON, body=hole(b"-Infinity")),
        # Past sys.get_int_max_str_digits() json.loads raises a plain ValueError.
        Row("5000-digit-integer", 400, NOT_JSON, body=hole(b"9" * 5000)),
        Row("byte-ff", 400, NOT_UTF8, body=hole(b'"\xff"')),
        Row("cut-sequence", 400, NOT_UTF8, body=hole(b'"\xe2\x82"')),
        Row("utf8-surrogate", 400, NOT_UTF8, body=hole(b'"\xed\xa0\x80"')),
        Row("overlong-slash", 400, NOT_UTF8, body=hole(b'"\xc0\xaf"')),
        Row("json-array", 400, NOT_OBJECT, body=b"[" + valid + b"]"),
        Row("json-string", 400, NOT_OBJECT, body=b'"hello"'),
        Row("json-null", 400, NOT_OBJECT, body=b"null"),
        Row("json-number", 400, NOT_OBJECT, body=b"42"),
        Row("json-true", 400, NOT_OBJECT, body=b"true"),
        Row("5000-nested-arrays", 400, TOO_DEEP, body=b"[" * 5000 + b"]" * 5000),
        Row("5000-nested-objects", 400, TOO_DEEP, body=b'{"a": ' * 5000 + b"1" + b"}" * 5000),
        Row("bad-script-header", 400, "bad_script_header", "X-Tapedeck-Script",
            headers=(fs.JSON_CT, *browser, ("X-Tapedeck-Script", "{"))),
    ]  # fmt: skip
    methods = [
        Row(f"method-{m}", 405, "method_not_allowed", method=m, body=b"", names=m)
        for m in ("GET", "PUT", "DELETE", "PATCH", "OPTIONS")
    ]
    return [*methods, *rows]


# -- per-endpoint rows ----------------------------------------------------------------------------

MESSAGE_SPECS: list[FieldSpec] = [
    ("messages-string", BAD_MSGS, "messages", {"messages": "hi"}),
    ("messages-empty", BAD_MSGS, "messages", {"messages": []}),
    ("messages-object", BAD_MSGS, "messages", {"messages": HI[0]}),
    ("message-number", BAD_MSGS, "messages[0]", {"messages": [42]}),
    ("message-no-content", BAD_MSGS, "messages[0].content", {"messages": [{"role": "user"}]}),
    ("message-null-role", BAD_MSGS, "messages[0].role",
     {"messages": [{"role": None, "content": "x"}]}),
    ("second-message-list-content", BAD_MSGS, "messages[1].content",
     {"messages": [*HI, {"role": "user", "content": ["x"]}]}),
]  # fmt: skip


def message_rows(valid: dict[str, Any]) -> list[Row]:
    # Duplicate keys: the last one wins, as in JSON.parse.
    duplicate = fs.json_body(valid)[:-1] + b', "messages": "hi"}'
    return [
        *field_rows(valid, MESSAGE_SPECS),
        Row("duplicate-messages-last-wins", 400, BAD_MSGS, "messages", duplicate),
    ]


def chatbot_ui_rows(valid: dict[str, Any], unknown: str) -> list[Row]:
    """Aivvm and AI365VIP: the same chatbot-ui body shape (model object, key, prompt)."""
    model = valid["model"]
    specs: list[FieldSpec] = [
        *((f"missing-{key}", MISSING, key, {key: DROP}) for key in CHATBOT_UI_KEYS),
        ("model-string", BAD_MODEL, "model", {"model": "gpt-4"}),
        ("model-number-id", BAD_MODEL, "model", {"model": {**model, "id": 4}}),
        ("model-no-id", BAD_MODEL, "model", {"model": {"name": "GPT-4"}}),
        ("empty-model-id", UNKNOWN, "model.id", {"model": {**model, "id": ""}}),
        ("prompt-null", BAD_TYPE, "prompt", {"prompt": None}),
        ("prompt-list", BAD_TYPE, "prompt", {"prompt": ["x"]}),
        ("strict-extra-key", UNLIKE, None, {"stream": True}),
    ]
    reordered = fs.json_body(dict(reversed(list(valid.items()))))
    return [
        *field_rows(valid, specs),
        Row("unknown-model", 400, UNKNOWN, "model.id",
            _changed(valid, model={**model, "id": unknown}), names=repr(unknown)),
        *message_rows(valid),
        Row("strict-key-order", 400, UNLIKE, body=reordered, names="body keys"),
    ]  # fmt: skip


CHATBOT_UI_KEYS = ("model", "messages", "key", "prompt", "temperature")
TYPE_SPECS: list[FieldSpec] = [
    ("key-number", BAD_TYPE, "key", {"key": 0}),
    ("temperature-string", BAD_TYPE, "temperature", {"temperature": "0.7"}),
    ("temperature-bool", BAD_TYPE, "temperature", {"temperature": True}),
    ("temperature-null", BAD_TYPE, "temperature", {"temperature": None}),
]


def _without(provider: str, name: str) -> tuple[tuple[str, str], ...]:
    return tuple(pair for pair in _headers(provider) if pair[0] != name)


def _header_rows(provider: str, missing: str, wrong: tuple[str, str]) -> list[Row]:
    swapped = tuple(wrong if pair[0] == wrong[0] else pair for pair in _headers(provider))
    return [
        Row(f"strict-missing-{missing}", 400, UNLIKE, headers=_without(provider, missing),
            names=f"missing header {missing!r}"),
        Row(f"strict-wrong-{wrong[0]}", 400, UNLIKE, headers=swapped,
            names=f"header {wrong[0]!r} is {wrong[1]!r}"),
    ]  # fmt: skip


AIVVM_ROWS = [
    *chatbot_ui_rows(AIVVM, "gpt-5"),
    *field_rows(AIVVM, TYPE_SPECS),
    *field_rows(AIVVM, [
        ("temperature-list", BAD_TYPE, "temperature", {"temperature": [1]}),
        ("strict-model-name", UNLIKE, None, {"model": {"id": "gpt-3.5-turbo", "name": "GPT-4"}}),
    ]),
    *_header_rows("Aivvm", "sec-gpc", ("referrer", "https://chat.aivvm.com/x")),
]  # fmt: skip
AI365_ROWS = [
    *chatbot_ui_rows(AI365, "gpt-4"),
    *field_rows(AI365, TYPE_SPECS),
    *field_rows(AI365, [
        ("strict-model-card", UNLIKE, None, {"model": {**AI365["model"], "maxLength": 4000}}),
        ("strict-two-messages", UNLIKE, None, {"messages": [*HI, *HI]}),
        ("strict-system-message", UNLIKE, None, {"messages": [{"role": "system", "content": "x"}]}),
    ]),
    *_header_rows("AI365VIP", "sec-ch-ua-platform-version", ("origin", "https://evil.example")),
]  # fmt: skip
CODELINK_ROWS = [
    *field_rows(CODELINK, [("missing-messages", MISSING, "messages", {"messages": DROP})]),
    *message_rows(CODELINK),
    *field_rows(CODELINK, [
        *((f"temperature-{what}", BAD_TYPE, "temperature", {"temperature": value})
          for what, value in (("string", "0.6"), ("bool", False), ("null", None), ("object", {}))),
        *((f"stream-{what}", BAD_TYPE, "stream", {"stream": value})
          for what, value in (("false", False), ("missing", DROP), ("string", "true"), ("one", 1))),
    ]),
    Row("strict-stream-first", 400, UNLIKE,
        body=fs.json_body({"stream": True, "messages": HI, "temperature": 0.6})),
    *_header_rows("CodeLinkAva", "Origin", ("Accept-language", "en")),
]  # fmt: skip

# -- GetGpt: the signature ---------------------------------------------------------------------

_PLAIN = fs.json_body(PLAINTEXT)
_CT = oracle.seal(_PLAIN)[:-32]  # the ciphertext hex of a good signature
_SIG = "signature"


def _sig(value: object) -> bytes:
    return fs.json_body({_SIG: value})


def _cipher(ciphertext_hex: str) -> bytes:
    """A body whose signature is this ciphertext hex with good key and IV characters."""
    return _sig(ciphertext_hex + oracle.KEY_CHARS + oracle.IV_CHARS)


def _padded(block: bytes) -> bytes:
    """A body with one block encrypted as is: its last bytes are the (maybe bad) padding."""
    return _cipher(oracle.aes_cbc(block).hex())


def _plain(data: object) -> bytes:
    return _sig(oracle.seal(data if isinstance(data, bytes) else fs.json_body(data)))


#: Every way the decrypt stage can fail; all must get the same answer.
DECRYPT_ROWS = [
    Row(f"signature-{what}", 400, BAD_SIG, _SIG, body)
    for what, body in [
        ("number", _sig(42)),
        ("bool", _sig(True)),
        ("list", _sig([])),
        ("object", _sig({})),
        ("empty", _sig("")),
        ("too-short", _sig("abc")),
        ("63-hex-chars", _sig("a" * 63)),
        ("odd-hex-length", _cipher(_CT + "0")),
        ("non-hex-ciphertext", _cipher("zz" * 16)),
        ("space-in-hex", _cipher(_CT[:2] + " " + _CT[3:])),
        ("0x-prefix", _cipher("0x" + _CT[2:])),
        ("uppercase-key", _sig(oracle.seal(_PLAIN, key="0123456789ABCDEF"))),
        ("uppercase-iv", _sig(oracle.seal(_PLAIN, iv="FEDCBA9876543210"))),
        ("non-hex-key", _sig(oracle.seal(_PLAIN, key="ghijklmnopqrstuv"))),
        ("non-ascii-key", _sig(_CT + "é" * 16 + oracle.IV_CHARS)),
        ("24-byte-ciphertext", _cipher(_CT[:48])),
        ("padding-byte-0", _padded(b"A" * 15 + b"\x00")),
        ("padding-byte-17", _padded(b"A" * 15 + b"\x11")),
        ("padding-inconsistent", _padded(b"A" * 13 + b"\x01\x03\x03")),
        ("wrong-key", _sig(_CT + "00112233445566ff" + oracle.IV_CHARS)),
        ("plaintext-not-utf8", _plain(b"\xff\xfe\xfd")),
        ("plaintext-empty", _plain(b"")),
        ("plaintext-not-json", _plain(b"hello")),
        ("plaintext-json-array", _plain([1, 2])),
        ("plaintext-no-uuid", _plain({k: v for k, v in PLAINTEXT.items() if k != "uuid"})),
        ("plaintext-messages-string", _plain({**PLAINTEXT, "messages": "hi"})),
        ("plaintext-messages-empty", _plain({**PLAINTEXT, "messages": []})),
        ("plaintext-5000-digits", _plain(b'{"messages": ' + b"9" * 5000 + b"}")),
        ("plaintext-deep", _plain(b"[" * 5000 + b"]" * 5000)),
    ]
]
DECRYPT_ANSWER = (
    400,
    b'{"error": {"code": "bad_signature", "message": "signature could not be decrypted", '
    b'"field": "signature"}}',
)
GETGPT_ROWS = [
    Row("no-signature", 400, MISSING, _SIG, b"{}"),
    Row("signature-misspelt", 400, MISSING, _SIG, fs.json_body({"sig": _CT})),
    Row("signature-null", 400, "signature_null", _SIG, _sig(None), names="stopped encrypting"),
    *DECRYPT_ROWS,
    Row("strict-plaintext-model", 400, UNLIKE, body=_plain({**PLAINTEXT, "model": "gpt-4"})),
    Row("strict-plaintext-stream-false", 400, UNLIKE, body=_plain({**PLAINTEXT, "stream": False})),
    Row("strict-plaintext-key-order", 400, UNLIKE,
        body=_plain(dict(reversed(list(PLAINTEXT.items())))), names="plaintext keys"),
    *_header_rows("GetGpt", "Referer", ("user-agent", "curl/8.0")),
]  # fmt: skip

TABLES: dict[str, list[Row]] = {
    "Aivvm-chat": [*generic_rows(ENDPOINTS["Aivvm-chat"]), *AIVVM_ROWS],
    "Aivvm-models": generic_rows(ENDPOINTS["Aivvm-models"]),
    "AI365VIP": [*generic_rows(ENDPOINTS["AI365VIP"]), *AI365_ROWS],
    "GetGpt": [*generic_rows(ENDPOINTS["GetGpt"]), *GETGPT_ROWS],
    "CodeLinkAva": [*generic_rows(ENDPOINTS["CodeLinkAva"]), *CODELINK_ROWS],
}


async def _send(server: FakeServer, endpoint: Endpoint, row: Row) -> RawResponse:
    body = fs.json_body(endpoint.valid) if row.body is None else row.body
    headers = _headers(endpoint.provider) if row.headers is None else row.headers
    request = build_request(endpoint.path, body, headers, method=row.method)
    return await exchange(server.port, request, deadline=5)


def _row_params() -> list[object]:
    return [
        pytest.param(
            key,
            row,
            id=f"{key}-{row.what}",
            marks=[pytest.mark.xfail(strict=True, reason=row.bug)] if row.bug else [],
        )
        for key, rows in TABLES.items()
        for row in rows
    ]


@pytest.mark.parametrize(("key", "row"), _row_params())
async def test_hostile_row(fleet: FakeFleet, key: str, row: Row) -> None:
    endpoint = ENDPOINTS[key]
    server = fleet[endpoint.provider]
    reply = await _send(server, endpoint, row)
    assert reply.status == row.status, reply.body[:300]
    assert reply.header("Content-Type") == "application/json; charset=utf-8"
    error = json.loads(reply.body)["error"]
    assert error["code"] == row.code
    assert error.get("field") == row.field
    assert row.names in error["message"]
    if row.status == 405:
        assert reply.header("Allow") == "POST"
    # Every endpoint journals what it refused, /api/models included.
    fs.settle(server)
    (entry,) = server.state.journal.entries
    assert entry.verdict is not None
    assert (entry.verdict.ok, entry.verdict.status, entry.verdict.code) == (
        False,
        row.status,
        row.code,
    )
    assert server.state.scripts.calls == 0


def test_every_table_has_at_least_25_distinct_rows() -> None:
    for key, rows in TABLES.items():
        whats = [row.what for row in rows]
        assert len(set(whats)) == len(whats) >= 25, key


async def test_decrypt_stage_failures_are_byte_identical(fleet: FakeFleet) -> None:
    endpoint = ENDPOINTS["GetGpt"]
    answers = set()
    for row in DECRYPT_ROWS:
        reply = await _send(fleet["GetGpt"], endpoint, row)
        answers.add((reply.status, reply.header("Content-Type"), reply.body))
    assert answers == {(DECRYPT_ANSWER[0], "application/json; charset=utf-8", DECRYPT_ANSWER[1])}


async def _run_table(server: FakeServer, key: str) -> list[tuple[str, int]]:
    statuses = []
    for row in TABLES[key]:
        reply = await _send(server, ENDPOINTS[key], row)
        statuses.append((row.what, reply.status))
    fs.settle(server)
    return statuses


@pytest.mark.parametrize("key", list(TABLES))
async def test_still_serving_after_the_whole_table(fleet: FakeFleet, key: str) -> None:
    endpoint = ENDPOINTS[key]
    server = fleet[endpoint.provider]
    await _run_table(server, key)
    server.state.reset()  # handler errors of known-bug rows are pinned by their own rows
    if endpoint.path == "/api/models":
        reply = await exchange(
            server.port, build_request(endpoint.path, b'{"key": ""}', _headers("Aivvm"))
        )
        assert reply.status == 200
        assert [model["id"] for model in json.loads(reply.body)][:2] == [
            "gpt-3.5-turbo",
            "gpt-3.5-turbo-0613",
        ]
        return
    pieces = await fs.call(
        endpoint.provider, "sync", server.url, [{"role": "user", "content": "ok?"}]
    )
    assert "".join(pieces) == "You said: ok?"


@pytest.mark.parametrize("key", list(TABLES))
async def test_no_row_is_answered_with_a_5xx(fleet: FakeFleet, key: str) -> None:
    server = fleet[ENDPOINTS[key].provider]
    statuses = await _run_table(server, key)
    assert [(what, status) for what, status in statuses if status >= 500] == []
    server.state.journal.raise_errors()


# -- strict names each missing browser header, lenient does not care ------------------------------

VALID_BODIES = {
    "Aivvm": fs.json_body(AIVVM),
    "AI365VIP": fs.json_body(AI365),
    "GetGpt": fs.json_body(_getgpt()),
    "CodeLinkAva": fs.json_body(CODELINK),
}


@pytest.mark.parametrize(
    ("provider", "header"),
    [(name, header) for name in fs.NAMES for header, _ in fs.BROWSER_HEADERS[name]],
)
async def test_strict_names_a_missing_browser_header_lenient_accepts(
    fleet: FakeFleet, provider: str, header: str
) -> None:
    server = fleet[provider]
    request = build_request(
        fs.CHAT_PATH[provider], VALID_BODIES[provider], _without(provider, header)
    )
    strict = await exchange(server.port, request)
    assert strict.status == 400
    error = json.loads(strict.body)["error"]
    assert error["code"] == "not_like_original"
    assert f"missing header {header!r}" in error["message"]
    server.state.strictness = "lenient"
    lenient = await exchange(server.port, request)
    assert (lenient.status, lenient.complete) == (fs.SUCCESS_STATUS[provider], True)
    assert b"said: " in lenient.body


async def test_lenient_getgpt_accepts_any_ascii_key_characters(fleet: FakeFleet) -> None:
    server = fleet["GetGpt"]
    server.state.strictness = "lenient"
    body = _sig(oracle.seal(_PLAIN, key="0123456789ABCDEF"))
    reply = await exchange(server.port, build_request("/api/chat/stream", body, _headers("GetGpt")))
    assert (reply.status, reply.complete) == (201, True)
    # The uppercase key characters were really used as the AES key, not skipped over.
    fs.settle(server)
    (entry,) = server.state.journal.entries
    assert entry.chat is not None
    assert entry.chat.plaintext == _PLAIN
