"""Hypothesis over a real socket: random text × random chunking (and framing) through the fakes.

- The correct decoding of every adapter returns exactly the text, whatever the cuts.
- Aivvm's original decoding is corrupted exactly when a cut falls inside a character: each
  piece that is not valid UTF-8 on its own comes out as Latin-1 (for text without backslashes,
  which its unicode-escape fallback would interpret). The expectation is computed here from the
  cut positions, not by our decoders.
- AI365VIP's original line reading is never corrupted: lines are whole before they are decoded.

The fleet is module-scoped (no function-scoped fixture inside ``@given``); every example resets
the fake it uses and checks the fake's journal itself.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fake_upstreams.chunking import CHUNK_KINDS, ChunkPlan
from fake_upstreams.script import ResponseScript
from fake_upstreams.server import FakeFleet, FakeServer
from providers.wire.common import Framing
from tests import fakes_support as fs
from tests.fakes_support import DOORS, NAMES, Door

pytestmark = pytest.mark.timeout(120)

MESSAGES = [{"role": "user", "content": "hi"}]
#: Anything (short, as Hypothesis prefers), longer runs of anything, and text dense in
#: multi-byte characters, emoji and line ends.
_DENSE = "aé€😀ж \r\n\t"
TEXTS = (
    st.text(max_size=60)
    | st.text(min_size=20, max_size=80)
    | st.text(alphabet=_DENSE + "\\", max_size=40)
)
_NOT_BACKSLASH = st.characters(codec="utf-8", exclude_characters="\\")
NO_BACKSLASH = (
    st.text(alphabet=_NOT_BACKSLASH, max_size=40)
    | st.text(alphabet=_NOT_BACKSLASH, min_size=20, max_size=60)
    | st.text(alphabet=_DENSE, max_size=30)
)


fleet, _fakes_guard = fs.fleet_fixtures()


@st.composite
def chunk_plans(draw: st.DrawFn, *, body_size: int) -> ChunkPlan:
    """Any plan kind; explicit offsets stay below ``body_size`` (the text's UTF-8 length)."""
    kind = draw(st.sampled_from(CHUNK_KINDS))
    if kind == "every":
        return ChunkPlan.every(draw(st.integers(1, 9)))
    if kind == "random":
        return ChunkPlan.random(draw(st.integers(0, 2**32)), draw(st.integers(1, 16)))
    if kind == "offsets":
        return ChunkPlan.at(sorted(draw(_offsets(body_size))))
    return ChunkPlan(kind, with_frames=draw(st.booleans()))


def _offsets(body_size: int) -> st.SearchStrategy[list[int]]:
    if body_size < 2:
        return st.just([])
    return st.lists(st.integers(1, body_size - 1), unique=True, max_size=12)


FRAMINGS = st.builds(
    Framing,
    done=st.sampled_from(["once", "twice", "then-content"]),
    crlf=st.booleans(),
    keepalive_comments=st.booleans(),
    role_first_delta=st.booleans(),
    empty_first_delta=st.booleans(),
    finish_chunk=st.booleans(),
)


def _run(server: FakeServer, script: ResponseScript, name: str, door: Door, **kw: str) -> list[str]:
    """One call against a freshly reset fake; the fake must have handled it without error."""
    fs.settle(server)
    server.state.reset()
    server.state.scripts.replace(default=script)
    pieces = asyncio.run(fs.call(name, door, server.url, MESSAGES, timeout=5, **kw))
    fs.settle(server)
    server.state.journal.raise_errors()
    return pieces


@pytest.mark.parametrize("name", NAMES)
@given(text=TEXTS, data=st.data(), door=st.sampled_from(DOORS))
def test_correct_decoding_returns_exactly_the_text(
    fleet: FakeFleet, name: str, text: str, data: st.DataObject, door: Door
) -> None:
    plan = data.draw(chunk_plans(body_size=len(text.encode())), label="plan")
    framing = data.draw(FRAMINGS, label="framing")
    pieces = _run(
        fleet[name], ResponseScript(text=text, chunking=plan, framing=framing), name, door
    )
    assert "".join(pieces) == text


def _cuts(data: st.DataObject, body: bytes) -> tuple[ChunkPlan, list[int]]:
    """A plan cutting ``body`` every N bytes or at given offsets, and its cuts (computed here)."""
    if data.draw(st.booleans(), label="every N"):
        size = data.draw(st.integers(1, 7), label="N")
        return ChunkPlan.every(size), list(range(size, len(body), size))
    offsets = sorted(data.draw(_offsets(len(body)), label="offsets"))
    return ChunkPlan.at(offsets), offsets


def _split(body: bytes, cuts: Sequence[int]) -> list[bytes]:
    edges = [0, *cuts, len(body)]
    return [body[start:end] for start, end in itertools.pairwise(edges) if end > start]


def _legacy_piece(piece: bytes) -> str:
    # Without backslashes, the unicode-escape fallback maps every byte to the same code point.
    try:
        return piece.decode("utf-8")
    except UnicodeDecodeError:
        return piece.decode("latin-1")


@given(text=NO_BACKSLASH, data=st.data(), door=st.sampled_from(DOORS))
def test_aivvm_legacy_is_corrupted_exactly_when_a_cut_splits_a_character(
    fleet: FakeFleet, text: str, data: st.DataObject, door: Door
) -> None:
    body = text.encode()
    plan, cuts = _cuts(data, body)
    script = ResponseScript(text=text, chunking=plan)
    legacy = _run(fleet["Aivvm"], script, "Aivvm", door, decoding="legacy")
    correct = _run(fleet["Aivvm"], script, "Aivvm", door)
    # A UTF-8 continuation byte (10xxxxxx) right after a cut means the cut is inside a character.
    split_inside = any(body[cut] & 0xC0 == 0x80 for cut in cuts)
    assert ("".join(legacy) == text) is not split_inside
    assert legacy == [_legacy_piece(piece) for piece in _split(body, cuts)]
    assert "".join(correct) == text


@given(text=TEXTS, data=st.data(), door=st.sampled_from(DOORS))
def test_ai365vip_legacy_line_reading_is_never_corrupted_by_cuts(
    fleet: FakeFleet, text: str, data: st.DataObject, door: Door
) -> None:
    plan, _ = _cuts(data, text.encode())
    legacy = _run(
        fleet["AI365VIP"],
        ResponseScript(text=text, chunking=plan),
        "AI365VIP",
        door,
        decoding="legacy",
    )
    # aiohttp's readline: a line ends after each b"\n" (kept); the rest at EOF if non-empty.
    parts = text.split("\n")
    assert legacy == [part + "\n" for part in parts[:-1]] + [part for part in parts[-1:] if part]
