"""Every adapter against its real fake, through both doors, with the fake strict and lenient.

Checks the text (the fakes echo the last user message by default, so flattening and encryption
show up in it), the exact request bytes in the fake's journal, the browser headers it received,
and the originals' legacy decodings. Expected bodies and texts are written out by hand.
"""

from __future__ import annotations

import json
import re
import uuid

import pytest

from fake_upstreams.chunking import ChunkPlan
from fake_upstreams.journal import JournalEntry, Verdict
from fake_upstreams.script import ResponseScript
from fake_upstreams.server import FakeFleet
from providers import GetGpt
from providers.errors import MalformedReplyError
from providers.wire.common import Framing, UpstreamCodec
from providers.wire.getgpt import GetGptCodec
from tests import aes_oracle as oracle
from tests import fakes_support as fs
from tests.fakes_support import DOORS, NAMES, Door, Raises, Text

pytestmark = pytest.mark.timeout(30)

MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "héllo 👋"},
]
ESCAPED = (
    '[{"role": "system", "content": "Be brief."}, '
    '{"role": "user", "content": "h\\u00e9llo \\ud83d\\udc4b"}]'
)
AIVVM_PROMPT = (
    "You are ChatGPT, a large language model trained by OpenAI. Follow the user's instructions "
    "carefully. Respond using markdown."
)
#: The request body each adapter sends for MESSAGES and model "", written out by hand.
BODIES = {
    "Aivvm": (
        '{"model": {"id": "gpt-3.5-turbo", "name": "GPT-3.5"}, "messages": ' + ESCAPED + ", "
        '"key": "", "prompt": "' + AIVVM_PROMPT + '", "temperature": 0.7}'
    ).encode(),
    "AI365VIP": (
        b'{"model": {"id": "gpt-3.5-turbo", "name": "GPT-3.5", "maxLength": 3000, '
        b'"tokenLimit": 2048}, "messages": [{"role": "user", "content": "System: Be brief.\\n'
        b'User: h\\u00e9llo \\ud83d\\udc4b\\nAssistant:"}], "key": "", '
        b'"prompt": "You are a helpful assistant.", "temperature": 1}'
    ),
    "CodeLinkAva": ('{"messages": ' + ESCAPED + ', "temperature": 0.6, "stream": true}').encode(),
}
#: GetGpt's plaintext, up to the uuid (which is fresh per request) and after it.
GETGPT_BEFORE_UUID = (
    '{"messages": ' + ESCAPED + ', "frequency_penalty": 0, "max_tokens": 4000, '
    '"model": "gpt-3.5-turbo", "presence_penalty": 0, "temperature": 1, "top_p": 1, '
    '"stream": true, "uuid": "'
).encode()
GETGPT_AFTER_UUID = b'"}'
#: The default script echoes the last user message; AI365VIP's fake only ever sees one user
#: message holding the flattened conversation.
ECHO = {
    "Aivvm": "You said: héllo 👋",
    "AI365VIP": "You said: System: Be brief.\nUser: héllo 👋\nAssistant:",
    "GetGpt": "You said: héllo 👋",
    "CodeLinkAva": "You said: héllo 👋",
}


fleet, _fakes_guard = fs.fleet_fixtures()


def _only_entry(fleet: FakeFleet, name: str) -> JournalEntry:
    fs.settle(fleet[name])
    entries = fleet[name].state.journal.entries
    assert len(entries) == 1
    return entries[0]


def _assert_body_is_the_adapters(name: str, entry: JournalEntry) -> None:
    if name != "GetGpt":
        assert entry.body == BODIES[name]
        return
    assert re.fullmatch(rb'\{"signature": "[0-9a-f]+"\}', entry.body)
    signature = json.loads(entry.body)["signature"]
    assert (len(signature) - 32) % 32 == 0
    assert len(signature) >= 64
    # Decrypted independently, the wire body holds exactly what the fake journalled.
    plaintext = oracle.unseal(signature)
    assert entry.plaintext == plaintext
    assert plaintext.startswith(GETGPT_BEFORE_UUID)
    assert plaintext.endswith(GETGPT_AFTER_UUID)
    sent_uuid = plaintext[len(GETGPT_BEFORE_UUID) : -len(GETGPT_AFTER_UUID)].decode()
    assert uuid.UUID(sent_uuid).version == 4
    assert str(uuid.UUID(sent_uuid)) == sent_uuid


@pytest.mark.parametrize("strictness", ["strict", "lenient"])
@pytest.mark.parametrize("door", DOORS)
@pytest.mark.parametrize("name", NAMES)
async def test_round_trip_through_the_real_fake(
    fleet: FakeFleet, name: str, door: Door, strictness: str
) -> None:
    server = fleet[name]
    server.state.strictness = "strict" if strictness == "strict" else "lenient"
    pieces = await fs.call(name, door, server.url, MESSAGES, timeout=5)
    assert "".join(pieces) == ECHO[name]
    entry = _only_entry(fleet, name)
    assert (entry.method, entry.path) == ("POST", fs.CHAT_PATH[name])
    assert entry.verdict == Verdict(True, fs.SUCCESS_STATUS[name])
    assert entry.outcome == "completed"
    _assert_body_is_the_adapters(name, entry)
    for pair in (*fs.BROWSER_HEADERS[name], fs.JSON_CT):
        assert sum(1 for got in entry.headers if got[0].lower() == pair[0].lower()) == 1
        assert any(got[0].lower() == pair[0].lower() and got[1] == pair[1] for got in entry.headers)
    assert entry.header("Content-Length") == str(len(entry.body))


def test_lenient_and_strict_answer_the_same_bytes_to_the_adapter(fleet: FakeFleet) -> None:
    # Strictness decides what is accepted, never what is answered.
    server = fleet["CodeLinkAva"]
    strict = list(fs.provider("CodeLinkAva").create_completion("", MESSAGES, base_url=server.url))
    server.state.strictness = "lenient"
    lenient = list(fs.provider("CodeLinkAva").create_completion("", MESSAGES, base_url=server.url))
    assert strict == lenient == ["You ", "said: ", "héllo ", "👋"]


PINNED_UUID = "9b2f8d4e-61a7-4c3b-8e5f-0a1b2c3d4e5f"


class _PinnedRandom:
    """Key bytes first, then IV bytes, as the original drew them."""

    def __init__(self) -> None:
        self._next = [bytes.fromhex(oracle.KEY_CHARS), bytes.fromhex(oracle.IV_CHARS)]

    def __call__(self, count: int) -> bytes:
        assert count == 8
        return self._next.pop(0)


@pytest.mark.parametrize("door", DOORS)
async def test_getgpt_body_bytes_with_pinned_randomness(
    fleet: FakeFleet, door: Door, monkeypatch: pytest.MonkeyPatch
) -> None:
    pinned = GetGptCodec(new_uuid=lambda: PINNED_UUID, randbytes=_PinnedRandom())
    codec: UpstreamCodec = pinned
    monkeypatch.setattr(GetGpt, "codec", codec)
    pieces = await fs.call("GetGpt", door, fleet["GetGpt"].url, MESSAGES)
    assert "".join(pieces) == ECHO["GetGpt"]
    plaintext = GETGPT_BEFORE_UUID + PINNED_UUID.encode() + GETGPT_AFTER_UUID
    expected = b'{"signature": "' + oracle.seal(plaintext).encode() + b'"}'
    entry = _only_entry(fleet, "GetGpt")
    assert entry.body == expected
    assert entry.plaintext == plaintext
    # The adapter put on the wire exactly what its codec built for these random draws.
    rebuilt = GetGptCodec(new_uuid=lambda: PINNED_UUID, randbytes=_PinnedRandom())
    assert entry.body == rebuilt.build_request("gpt-3.5-turbo", MESSAGES, {}).body


#: (provider, model asked for) → the model the fake saw ('' where the upstream never sends one).
MODEL_CASES = [
    ("Aivvm", "gpt-4", "gpt-4"),
    ("Aivvm", "gpt-3.5-turbo-16k-0613", "gpt-3.5-turbo-16k-0613"),
    ("AI365VIP", "gpt-4o", "gpt-4o"),
    ("AI365VIP", "gpt-3.5-turbo", "gpt-3.5-turbo-16k"),  # the adapter applies its alias
    ("GetGpt", "gpt-3.5-turbo", "gpt-3.5-turbo"),
    ("CodeLinkAva", "gpt-3.5-turbo", ""),
]


@pytest.mark.parametrize(("name", "model", "seen"), MODEL_CASES)
async def test_model_reaches_the_fake(fleet: FakeFleet, name: str, model: str, seen: str) -> None:
    pieces = await fs.call(name, "async", fleet[name].url, MESSAGES, model=model)
    assert "".join(pieces) == ECHO[name]
    entry = _only_entry(fleet, name)
    assert entry.chat is not None
    assert entry.chat.model == seen


# -- legacy decoding against the fake -----------------------------------------------------------

#: The originals' decodings of the default echo reply (one HTTP chunk per word), piece by piece.
LEGACY_ECHO = {
    "Aivvm": ["You ", "said: ", "héllo ", "👋"],
    "AI365VIP": ["You said: System: Be brief.\n", "User: héllo 👋\n", "Assistant:"],
    "GetGpt": ["You ", "said: ", "héllo ", "👋"],
    "CodeLinkAva": ["You ", "said: ", "héllo ", "👋"],
}


@pytest.mark.parametrize("door", DOORS)
@pytest.mark.parametrize("name", NAMES)
async def test_legacy_decoding_of_the_echo(fleet: FakeFleet, name: str, door: Door) -> None:
    pieces = await fs.call(name, door, fleet[name].url, MESSAGES, decoding="legacy")
    assert pieces == LEGACY_ECHO[name]


_SPLIT = ChunkPlan("utf8")
#: (case, provider, script, legacy outcome): where the originals' decodings go wrong, or don't.
LEGACY_CASES: list[tuple[str, str, ResponseScript, list[str | None] | type[Exception]]] = [
    # "да" is d0 b4 d0 b0; cut inside both characters: d0 | b4 d0 | b0, each piece invalid
    # UTF-8, so each became Latin-1 mojibake.
    (
        "split-chars",
        "Aivvm",
        ResponseScript(text="да", chunking=_SPLIT),
        ["\xd0", "\xb4\xd0", "\xb0"],
    ),
    # Line reading reassembles the characters before decoding: no corruption.
    ("split-chars", "AI365VIP", ResponseScript(text="да", chunking=_SPLIT), ["да"]),
    ("split-chars", "GetGpt", ResponseScript(text="да", chunking=_SPLIT), ["да"]),
    ("split-chars", "CodeLinkAva", ResponseScript(text="да", chunking=_SPLIT), ["да"]),
    # GetGpt's original ignored [DONE] and read on to EOF; CodeLinkAva's stopped there.
    (
        "then-content",
        "GetGpt",
        ResponseScript(text="a b", framing=Framing(done="then-content")),
        ["a ", "b", "AFTER-DONE"],
    ),
    (
        "then-content",
        "CodeLinkAva",
        ResponseScript(text="a b", framing=Framing(done="then-content")),
        ["a ", "b"],
    ),
    # Neither original noticed a missing [DONE].
    (
        "done-missing",
        "GetGpt",
        ResponseScript(text="a b", framing=Framing(done="missing")),
        ["a ", "b"],
    ),
    (
        "done-missing",
        "CodeLinkAva",
        ResponseScript(text="a b", framing=Framing(done="missing")),
        ["a ", "b"],
    ),
    # CodeLinkAva's line[6:-1] cut the closing brace off a last line without a newline.
    (
        "no-newline",
        "CodeLinkAva",
        ResponseScript(text="a b", framing=Framing(done="missing", last_line_newline=False)),
        MalformedReplyError,
    ),
    # GetGpt's original yielded an empty first delta's "" (and split lines on "data: ").
    (
        "empty-delta",
        "GetGpt",
        ResponseScript(text="a b", framing=Framing(empty_first_delta=True)),
        ["", "a ", "b"],
    ),
    ("data-in-text", "GetGpt", ResponseScript(text="see data: here"), MalformedReplyError),
]


@pytest.mark.parametrize("door", DOORS)
@pytest.mark.parametrize(
    ("name", "script", "expected"),
    [pytest.param(*case[1:], id=f"{case[1]}-{case[0]}") for case in LEGACY_CASES],
)
async def test_legacy_decoding_quirks(
    fleet: FakeFleet,
    name: str,
    door: Door,
    script: ResponseScript,
    expected: list[str | None] | type[Exception],
) -> None:
    fleet[name].state.scripts.replace(default=script)
    if isinstance(expected, list):
        pieces = await fs.call(name, door, fleet[name].url, MESSAGES, decoding="legacy")
        assert pieces == expected
        return
    await fs.assert_outcome(
        Raises(MalformedReplyError), name, door, fleet[name].url, MESSAGES, decoding="legacy"
    )


@pytest.mark.parametrize("name", NAMES)
def test_stream_false_is_one_piece(fleet: FakeFleet, name: str) -> None:
    # create_completion is the only door that takes stream=False.
    pieces = list(
        fs.provider(name).create_completion("", MESSAGES, stream=False, base_url=fleet[name].url)
    )
    assert pieces == [ECHO[name]]


@pytest.mark.parametrize("name", NAMES)
async def test_a_scripted_sequence_is_served_call_by_call(fleet: FakeFleet, name: str) -> None:
    fleet[name].state.scripts.push(ResponseScript(text="first"), ResponseScript(text="second"))
    url = fleet[name].url
    await fs.assert_outcome(Text("first"), name, "sync", url, MESSAGES)
    await fs.assert_outcome(Text("second"), name, "async", url, MESSAGES)
    await fs.assert_outcome(Text(ECHO[name]), name, "sync", url, MESSAGES)
    fs.settle(fleet[name])
    assert [e.outcome for e in fleet[name].state.journal.entries] == ["completed"] * 3
