"""Chunk plans: the chunks always rebuild the body, are never empty, and cut exactly where the
plan says. Expected cut positions are computed here independently (from characters, regexes and
literal examples), never by asking the plan."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fake_upstreams.chunking import CHUNK_KINDS, ChunkPlan, frame_boundaries


def cut_offsets(chunks: list[bytes]) -> list[int]:
    """Where the chunks end inside their concatenation (the last end excluded)."""
    offsets, total = [], 0
    for chunk in chunks[:-1]:
        total += len(chunk)
        offsets.append(total)
    return offsets


@st.composite
def plans(draw: st.DrawFn, *, kinds: tuple[str, ...] = CHUNK_KINDS) -> ChunkPlan:
    kind = draw(st.sampled_from(kinds))
    with_frames = draw(st.booleans())
    if kind == "every":
        return ChunkPlan("every", size=draw(st.integers(1, 9)), with_frames=with_frames)
    if kind == "random":
        seed, size = draw(st.integers(0, 2**32)), draw(st.integers(1, 9))
        return ChunkPlan("random", size=size, seed=seed, with_frames=with_frames)
    if kind == "offsets":
        return ChunkPlan.at(draw(st.lists(st.integers(1, 3), max_size=3)))
    return ChunkPlan(kind, with_frames=with_frames)  # type: ignore[arg-type]


# Bodies rich in what the targeted plans look for.
_ATOMS = st.sampled_from(["data: ", "[DONE]", "\r\n", "\n", "é", "€", "𝄞", "a", "x y"])
texts = st.lists(_ATOMS | st.text(max_size=4), max_size=12).map("".join)
frame_lists = st.lists(texts.map(lambda text: text.encode("utf-8")), max_size=6)


@given(frames=frame_lists, plan=plans())
def test_chunks_rebuild_the_body_and_are_never_empty(frames: list[bytes], plan: ChunkPlan) -> None:
    body = b"".join(frames)
    if plan.kind == "offsets" and any(offset >= len(body) for offset in plan.offsets):
        with pytest.raises(ValueError, match="not inside the body"):
            plan.split(body, frame_boundaries(frames))
        return
    chunks = plan.split(body, frame_boundaries(frames))
    assert b"".join(chunks) == body
    assert all(chunks)
    if plan.with_frames or plan.kind == "frames":
        assert set(frame_boundaries(frames)) - {0, len(body)} <= set(cut_offsets(chunks))


@given(text=texts)
def test_utf8_plan_cuts_at_every_position_inside_a_character(text: str) -> None:
    body = text.encode("utf-8")
    expected: list[int] = []
    offset = 0
    for char in text:
        size = len(char.encode("utf-8"))
        expected.extend(range(offset + 1, offset + size))
        offset += size
    assert cut_offsets(ChunkPlan("utf8").split(body)) == expected


@pytest.mark.parametrize(("kind", "marker"), [("data", b"data: "), ("done", b"[DONE]")])
@given(text=texts)
def test_marker_plans_cut_inside_every_marker(kind: str, marker: bytes, text: str) -> None:
    body = text.encode("utf-8")
    expected = sorted(
        {m.start() + step for m in re.finditer(re.escape(marker), body) for step in range(1, 6)}
    )
    assert cut_offsets(ChunkPlan(kind).split(body)) == expected  # type: ignore[arg-type]


@given(text=texts)
def test_crlf_plan_cuts_between_cr_and_lf(text: str) -> None:
    body = text.encode("utf-8")
    chunks = ChunkPlan("crlf").split(body)
    assert cut_offsets(chunks) == [m.start() + 1 for m in re.finditer(b"\r\n", body)]
    assert all(chunk.endswith(b"\r") for chunk in chunks[:-1])


@given(body=st.binary(max_size=60), size=st.integers(1, 9))
def test_every_plan_makes_equal_chunks_but_the_last(body: bytes, size: int) -> None:
    chunks = ChunkPlan.every(size).split(body)
    assert all(len(chunk) == size for chunk in chunks[:-1])
    assert not chunks or 1 <= len(chunks[-1]) <= size


@given(body=st.binary(max_size=80), seed=st.integers(0, 2**32), size=st.integers(1, 9))
def test_random_plan_is_seeded_and_bounded(body: bytes, seed: int, size: int) -> None:
    chunks = ChunkPlan.random(seed, size).split(body)
    assert chunks == ChunkPlan.random(seed, size).split(body)
    assert all(1 <= len(chunk) <= size for chunk in chunks)


def test_random_plans_differ_by_seed() -> None:
    body = bytes(range(200))
    splits = {tuple(ChunkPlan.random(seed, 8).split(body)) for seed in range(5)}
    assert len(splits) == 5


def test_literal_examples() -> None:
    frames = [b"data: h\xc3\xa9\r\n\r\n", b"data: [DONE]\r\n\r\n"]
    body = b"".join(frames)
    assert ChunkPlan.whole().split(body, [16]) == [body]
    assert ChunkPlan.frames().split(body, frame_boundaries(frames)) == frames
    assert ChunkPlan.every(7).split(b"abcdefghijklmno") == [b"abcdefg", b"hijklmn", b"o"]
    assert ChunkPlan("utf8").split(b"h\xc3\xa9!") == [b"h\xc3", b"\xa9!"]
    assert ChunkPlan("utf8").split("𝄞".encode()) == [b"\xf0", b"\x9d", b"\x84", b"\x9e"]
    assert ChunkPlan("data").split(b"xdata: y") == [b"xd", b"a", b"t", b"a", b":", b" y"]
    assert ChunkPlan("crlf").split(b"a\r\nb\r\n") == [b"a\r", b"\nb\r", b"\n"]
    assert ChunkPlan("done").split(b"[DONE]\n") == [b"[", b"D", b"O", b"N", b"E", b"]\n"]
    assert ChunkPlan.at([1, 3]).split(b"abcd") == [b"a", b"bc", b"d"]
    assert ChunkPlan("crlf", with_frames=True).split(b"ab\r\ncd", [2]) == [b"ab", b"\r", b"\ncd"]
    assert ChunkPlan.every(3).split(b"") == []


def test_offsets_outside_the_body_are_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="offset 4 is not inside the body"):
        ChunkPlan.at([1, 4]).split(b"abcd")
    with pytest.raises(ValueError, match=">= 1"):
        ChunkPlan.at([0])


@given(plan=plans())
def test_dict_round_trip(plan: ChunkPlan) -> None:
    assert ChunkPlan.from_dict(plan.to_dict()) == plan


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"kind": "sometimes"}, "'kind' must be one of"),
        ({"kind": "every"}, "needs a size >= 1"),
        ({"kind": "every", "size": "3"}, "'size' must be an integer"),
        ({"kind": "random", "size": 0}, "'size' must be an integer >= 1"),
        ({"kind": "offsets", "offsets": [2, "x"]}, "'offsets' must be a list of integers"),
        ({"kind": "whole", "with_frame": True}, "unknown chunk plan key 'with_frame'"),
        ({"kind": "whole", "with_frames": "yes"}, "'with_frames' must be true or false"),
        (["whole"], "chunk plan must be an object"),
    ],
)
def test_bad_dicts_name_the_key(data: object, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        ChunkPlan.from_dict(data)


def test_bare_kind_name_is_accepted() -> None:
    assert ChunkPlan.from_dict("utf8") == ChunkPlan("utf8")
