"""Cassette files: exact round trips, checked fields, refused tags, atomic saves.

Expected values come from the inputs the tests build (bytes, chunk plans, hand-written YAML),
never from the code under test.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Sequence
from pathlib import Path

import pytest
import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from cassettes import safeyaml, yamlio
from cassettes.chunks import ChunkPlan
from cassettes.model import (
    FORMAT_VERSION,
    Cassette,
    Chunk,
    Interaction,
    Provenance,
    RecordedRequest,
    RecordedResponse,
    chunks_from_sizes,
)
from providers.errors import CassetteFormatError, UnsafeCassetteError

ROOT = Path(__file__).resolve().parent.parent


# --- strategies -------------------------------------------------------------------------------

# What HTTP can carry, which is what the loader accepts: names are tokens (RFC 9110 §5.1), values
# any Unicode but control characters other than tab (§5.5).
_TOKEN_CHARACTERS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_FORBIDDEN_IN_VALUES = "".join(map(chr, [*range(0x09), *range(0x0A, 0x20), 0x7F]))
header_names = st.text(st.sampled_from(_TOKEN_CHARACTERS), min_size=1, max_size=12)
header_values = st.text(
    st.characters(codec="utf-8", exclude_characters=_FORBIDDEN_IN_VALUES), max_size=20
)
headers = st.dictionaries(header_names, st.lists(header_values, min_size=1, max_size=3), max_size=4)
# Bodies that are valid UTF-8 take the text path in the file, others the !!binary path.
_TEXT_ATOMS = st.sampled_from(["\n", "\r\n", "\r", " \n", "data: x\n\n", "é", "\x00", "\ufeff"])
text_bodies = st.lists(_TEXT_ATOMS | st.text(max_size=6), max_size=8).map(
    lambda parts: "".join(parts).encode("utf-8")
)
bodies = st.binary(max_size=64) | text_bodies


@st.composite
def chunk_plans(draw: st.DrawFn, *, length: int) -> Sequence[Chunk]:
    """A random cut of ``length`` bytes with non-decreasing offsets."""
    if length == 0:
        return ()
    cuts = sorted(draw(st.sets(st.integers(1, length - 1), max_size=8))) if length > 1 else []
    ends = [*cuts, length]
    sizes = [end - start for start, end in zip([0, *cuts], ends, strict=True)]
    offsets = sorted(
        draw(
            st.lists(
                st.floats(0, 1e6, allow_nan=False, allow_infinity=False),
                min_size=len(sizes),
                max_size=len(sizes),
            )
        )
    )
    return chunks_from_sizes(sizes, offsets)


@st.composite
def responses(draw: st.DrawFn) -> RecordedResponse:
    body = draw(bodies)
    return RecordedResponse(
        draw(st.integers(100, 599)),
        draw(st.text(max_size=12)),
        draw(headers),
        body,
        draw(chunk_plans(length=len(body))),
    )


@st.composite
def requests_(draw: st.DrawFn) -> RecordedRequest:
    return RecordedRequest(
        draw(st.sampled_from(["GET", "POST", "PUT"])),
        "http://127.0.0.1:8080/" + draw(st.text(max_size=10)),
        draw(headers),
        draw(st.none() | bodies),
    )


@st.composite
def cassettes(draw: st.DrawFn) -> Cassette:
    provenance = draw(
        st.none()
        | st.builds(
            Provenance,
            st.text(max_size=20),
            st.text(max_size=20),
            st.text(max_size=8),
            st.sampled_from(["live", "fake"]),
        )
    )
    interactions = draw(
        st.lists(st.builds(Interaction, requests_(), responses()), min_size=0, max_size=4)
    )
    return Cassette(tuple(interactions), provenance)


# --- round trips --------------------------------------------------------------------------------


@given(cassette=cassettes())
def test_save_then_load_gives_back_an_equal_cassette(cassette: Cassette) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "c.yaml"
        yamlio.save(cassette, path)
        assert yamlio.load(path) == cassette


@given(body=bodies, data=st.data())
@example(body=b"\x00\xff\r\n\r", data=None)
@example(body=b"line one  \n\n  indented\n\n\n", data=None)
@example(body="x\u2028y\x85z\n".encode(), data=None)
def test_body_bytes_and_chunk_boundaries_survive_exactly(body: bytes, data: st.DataObject) -> None:
    chunks = data.draw(chunk_plans(length=len(body))) if data else chunks_from_sizes([len(body)])
    if not body:
        chunks = ()
    response = RecordedResponse(200, "OK", {}, body, chunks)
    cassette = Cassette((Interaction(RecordedRequest("GET", "http://127.0.0.1/"), response),))
    loaded = yamlio.loads(yamlio.dumps(cassette)).interactions[0].response
    assert loaded.body == body
    assert list(loaded.chunk_bytes()) == list(response.chunk_bytes())
    assert b"".join(loaded.chunk_bytes()) == body


def test_text_bodies_are_readable_and_binary_bodies_are_tagged() -> None:
    text = RecordedResponse.whole(200, "OK", {}, b"data: hello\n\ndata: [DONE]\n\n")
    binary = RecordedResponse.whole(200, "OK", {}, b"\xff\xfe not utf-8")
    request = RecordedRequest("POST", "http://127.0.0.1/api", {}, b'{"a": 1}')
    file_text = yamlio.dumps(
        Cassette((Interaction(request, text), Interaction(request, binary)))
    ).decode("ascii")  # the file is plain ASCII, whatever the bodies hold
    assert "data: hello" in file_text
    assert file_text.count("!!binary") == 1


def test_the_file_has_vcrpy_keys_and_the_tapedeck_block() -> None:
    provenance = Provenance("http://127.0.0.1:9/", "2024-05-01T00:00:00Z", "0.1.0", "fake")
    response = RecordedResponse(201, "Created", {"A": ["1"]}, b"abcdef", chunks_from_sizes([2, 4]))
    request = RecordedRequest("GET", "http://127.0.0.1:9/x")
    document = yaml.safe_load(yamlio.dumps(Cassette((Interaction(request, response),), provenance)))
    assert document["version"] == 1
    assert document["tapedeck"] == {
        "format": FORMAT_VERSION,
        "provenance": {
            "target_url": "http://127.0.0.1:9/",
            "recorded_at": "2024-05-01T00:00:00Z",
            "tool_version": "0.1.0",
            "source": "fake",
        },
    }
    (interaction,) = document["interactions"]
    assert set(interaction["request"]) == {"method", "uri", "headers", "body"}
    assert interaction["response"]["status"] == {"code": 201, "message": "Created"}
    assert interaction["response"]["body"] == {"string": "abcdef"}
    assert interaction["response"]["chunks"] == "2@0.0 4@0.0"


# --- what loading accepts and refuses -------------------------------------------------------------

_GOOD = """\
version: 1
tapedeck:
  format: 1
interactions:
- request: {method: GET, uri: 'http://127.0.0.1/', headers: {}, body: null}
  response:
    status: {code: 200, message: OK}
    headers: {}
    body: {string: hello}
    chunks: CHUNKS
"""


@pytest.mark.parametrize(
    ("chunks", "problem"),
    [
        ("2@0 2@1", "add up to 4 bytes but the body has 5"),
        ("2@0 4@1", "add up to 6 bytes"),
        ("0@0 5@1", "positive"),
        ("2@5 3@1", "not before the previous"),
        ("[[2, 0.0], [2, 1.0]]", "add up to 4"),
        ("[[2, 0.0, 1], [3, 1.0]]", "pairs"),
        ("five@0", "bytes@milliseconds"),
    ],
)
def test_a_chunk_plan_that_does_not_fit_the_body_is_refused(chunks: str, problem: str) -> None:
    with pytest.raises(CassetteFormatError, match=problem):
        yamlio.loads(_GOOD.replace("CHUNKS", chunks))


def test_odd_but_valid_offsets_survive() -> None:
    chunks = (Chunk(1, -0.0), Chunk(1, 1e-7), Chunk(1, 12.345678901234567), Chunk(1, 1e16))
    response = RecordedResponse(200, "OK", {}, b"abcd", chunks)
    cassette = Cassette((Interaction(RecordedRequest("GET", "http://127.0.0.1/"), response),))
    assert yamlio.loads(yamlio.dumps(cassette)).interactions[0].response.chunks == chunks


def test_a_long_chunk_plan_folded_over_many_lines_survives() -> None:
    body = bytes(range(256)) * 8
    chunks = chunks_from_sizes([4] * 512, [n * 0.125 for n in range(512)])
    response = RecordedResponse(200, "OK", {}, body, chunks)
    cassette = Cassette((Interaction(RecordedRequest("GET", "http://127.0.0.1/"), response),))
    text = yamlio.dumps(cassette)
    assert max(len(line) for line in text.splitlines()) <= 130
    assert yamlio.loads(text).interactions[0].response.chunks == chunks


def test_a_chunk_plan_is_a_sequence_of_chunks() -> None:
    plan = ChunkPlan.from_sizes([2, 3], [0, 1.5])
    assert plan == (Chunk(2, 0.0), Chunk(3, 1.5))
    assert plan == [(2, 0.0), (3, 1.5)]
    assert plan != (Chunk(2, 0.0),)
    assert plan[1] == Chunk(3, 1.5)
    assert plan[1:] == (Chunk(3, 1.5),)
    assert list(plan) == [Chunk(2, 0.0), Chunk(3, 1.5)]
    assert hash(plan) == hash(ChunkPlan([Chunk(2, 0.0), Chunk(3, 1.5)]))
    assert pickle.loads(pickle.dumps(plan)) == plan
    assert plan.text() == "2@0.0 3@1.5"
    assert ChunkPlan.parse(plan.text(), 5) == plan
    assert (plan.sizes, plan.offsets_ms) == ((2, 3), (0.0, 1.5))


@pytest.mark.parametrize("text", ["2@0 3", "2@0@1 3@1", "@", "2@x 3@1", "2@0 3@1 extra"])
def test_a_chunk_plan_text_that_does_not_parse_is_a_format_error(text: str) -> None:
    with pytest.raises(CassetteFormatError, match="bytes@milliseconds"):
        ChunkPlan.parse(text, 5)


def test_chunks_may_also_be_written_as_pairs() -> None:
    cassette = yamlio.loads(_GOOD.replace("CHUNKS", "[[2, 0], [3, 1.5]]"))
    assert cassette.interactions[0].response.chunks == (Chunk(2, 0.0), Chunk(3, 1.5))


def test_the_model_refuses_chunks_that_do_not_fit() -> None:
    with pytest.raises(CassetteFormatError, match="add up to 3"):
        RecordedResponse(200, "OK", {}, b"abcd", chunks_from_sizes([1, 2]))
    with pytest.raises(CassetteFormatError):
        RecordedResponse(200, "OK", {}, b"ab", (Chunk(2, float("nan")),))


def test_a_plain_vcrpy_cassette_loads_with_the_whole_body_as_one_chunk() -> None:
    text = _GOOD.replace("tapedeck:\n  format: 1\n", "").replace("    chunks: CHUNKS\n", "")
    cassette = yamlio.loads(text)
    assert cassette.provenance is None
    assert cassette.interactions[0].response.chunks == (Chunk(5, 0.0),)


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (("format: 1", f"format: {FORMAT_VERSION + 1}"), "newer than this Tapedeck"),
        (("version: 1", "version: 2"), "'version' must be 1"),
        (("body: null}", "body: null, extra: 1}"), r"unknown \['extra'\]"),
        (("code: 200", "code: '200'"), "int 'code'"),
        (("headers: {}\n    body", "headers: {A: b}\n    body"), "list of strings"),
        (("{string: hello}", "{string: [1]}"), "text or !!binary"),
    ],
)
def test_bad_fields_are_refused_with_where_they_are(edit: tuple[str, str], problem: str) -> None:
    text = _GOOD.replace("CHUNKS", "5@0").replace(*edit)
    with pytest.raises(CassetteFormatError, match=problem) as caught:
        yamlio.loads(text, source="here.yaml")
    assert "here.yaml" in str(caught.value)


def test_unknown_keys_that_vcrpy_keeps_are_kept() -> None:
    text = (
        _GOOD.replace("CHUNKS", "5@0")
        .replace("interactions:", "metadata: {note: x}\ninteractions:")
        .replace("    body: {string: hello}", "    body: {string: hello}\n    url: http://h/")
    ) + "  recorded_by: someone\n"
    cassette = yamlio.loads(text)
    assert cassette.extra == {"metadata": {"note": "x"}}
    assert cassette.interactions[0].response.extra == {"url": "http://h/"}
    assert cassette.interactions[0].extra == {"recorded_by": "someone"}
    assert yamlio.loads(yamlio.dumps(cassette)) == cassette


@pytest.mark.parametrize(
    "data",
    [b"", b"  \n", b"[1, 2", b"version: 1\n\xff\n", "version: 1".encode("utf-16"), b"- a\n- b\n"],
)
def test_what_is_not_a_cassette_is_a_format_error(data: bytes) -> None:
    with pytest.raises(CassetteFormatError):
        yamlio.loads(data)


def test_a_missing_file_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        yamlio.load(tmp_path / "nope.yaml")


def test_self_referencing_aliases_neither_hang_nor_explode() -> None:
    laughs = "a: &a [x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 8)}]\n" for i in range(8)
    )
    with pytest.raises(CassetteFormatError):
        yamlio.loads(laughs + "r: &r [*r]\n")


# --- unsafe tags -------------------------------------------------------------------------------

_UNSAFE = [
    (
        "    body: {string: !!python/object/apply:os.system [echo]}\n",
        "!!python/object/apply:os.system",
    ),
    ("    body: {string: !!python/name:os.system ''}\n", "!!python/name:os.system"),
    ("    body:\n      string: !!python/object:os.system {}\n", "!!python/object:os.system"),
    ("    body: {string: !!python/bytes 'AA=='}\n", "!!python/bytes"),
    ("    body: {string: !custom x}\n", "!custom"),
    ("    body: {string: !<tag:example.com,2000:app/x> y}\n", "tag:example.com,2000:app/x"),
    ("    body: {string: hi}\n    x: {a: !!python/tuple [1]}\n", "!!python/tuple"),
]


@pytest.mark.parametrize(("line", "tag"), _UNSAFE)
def test_code_running_and_unknown_tags_are_refused_before_construction(
    line: str, tag: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = _GOOD.replace("    body: {string: hello}\n", line).replace("CHUNKS", "2@0")
    constructed: list[object] = []
    monkeypatch.setattr(safeyaml, "construct", lambda *args: constructed.append(args))
    with pytest.raises(UnsafeCassetteError) as caught:
        yamlio.loads(text, source="evil.yaml")
    expected_line = next(n for n, x in enumerate(text.splitlines(), 1) if "!" in x)
    message = str(caught.value)
    assert tag in message
    assert f"line {expected_line}" in message
    assert "evil.yaml" in message
    assert constructed == []


def test_a_tag_declared_through_a_tag_directive_is_refused() -> None:
    text = "%TAG !e! tag:yaml.org,2002:python/\n---\n" + _GOOD.replace(
        "{string: hello}", "{string: !e!object:os.system x}"
    ).replace("CHUNKS", "1@0")
    with pytest.raises(UnsafeCassetteError, match=r"python/object:os\.system"):
        yamlio.loads(text)


def test_tag_like_text_inside_a_string_is_just_text() -> None:
    body = "she said: !!python/object:os.system and !custom, loudly!"
    text = _GOOD.replace("hello", repr(body)).replace("CHUNKS", f"{len(body)}@0")
    assert yamlio.loads(text).interactions[0].response.body == body.encode()


def test_the_construction_walk_refuses_unsafe_tags_by_itself() -> None:
    # Even if the cheap pre-scan missed a tag, the walk that builds values checks every node.
    root = safeyaml.compose(b"a: [1, !!python/object:os.system x]\n")
    assert root is not None
    with pytest.raises(UnsafeCassetteError, match="line 1"):
        safeyaml.construct(root, "x")


def test_the_walk_builds_what_pyyaml_builds() -> None:
    text = b"a:\nb: ~\nc: yes\nd: 012\ne: 0x1f\nf: 1_000\ng: 1.5e+3\nh: .inf\ni: 2001-12-14\n"
    text += b"j: [1, '2', \"3\"]\nk: !!binary AAE=\nl: 190:20:30\n<<: {z: 1}\nm: -7\nn: !!str 5\n"
    root = safeyaml.compose(text)
    assert root is not None
    assert safeyaml.construct(root, "x") == yaml.load(text, Loader=yaml.SafeLoader)


# --- atomic saves --------------------------------------------------------------------------------


def _one(body: bytes) -> Cassette:
    request = RecordedRequest("GET", "http://127.0.0.1/")
    return Cassette((Interaction(request, RecordedResponse.whole(200, "OK", {}, body)),))


@pytest.mark.parametrize("where", ["dump", "fsync", "replace"])
def test_a_failed_save_leaves_the_old_file_and_no_temporary(
    where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "c.yaml"
    yamlio.save(_one(b"old"), path)
    before = path.read_bytes()

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError(f"{where} failed")

    target = {"dump": (yaml, "dump"), "fsync": (os, "fsync"), "replace": (os, "replace")}
    monkeypatch.setattr(*target[where], boom)
    with pytest.raises(OSError, match=f"{where} failed"):
        yamlio.save(_one(b"new"), path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]


def test_saving_keeps_the_file_mode(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    yamlio.save(_one(b"a"), path)
    assert path.stat().st_mode & 0o777 == 0o644
    path.chmod(0o600)
    yamlio.save(_one(b"b"), path)
    assert path.stat().st_mode & 0o777 == 0o600


_WRITER = """
import os, sys, time
from cassettes import safeyaml, yamlio
from cassettes.model import Cassette, Interaction, RecordedRequest, RecordedResponse
path, mode = sys.argv[1], sys.argv[2]
body = os.urandom(1 << 20) + b"text" * 50000
big = Cassette(tuple(
    Interaction(RecordedRequest("GET", f"http://127.0.0.1/{i}"),
                RecordedResponse.whole(200, "OK", {}, body[i:]))
    for i in range(8)))
if mode == "stall":
    def stall(*args):
        print("stalled", flush=True)
        time.sleep(120)
    os.replace = stall
print("writing", flush=True)
yamlio.save(big, path)
while mode == "loop":
    yamlio.save(big, path)
print("done", flush=True)
"""


def _writer(path: Path, mode: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-c", textwrap.dedent(_WRITER), str(path), mode]
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL is POSIX")
def test_a_writer_killed_after_writing_but_before_the_rename_leaves_the_old_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "c.yaml"
    yamlio.save(_one(b"the good old cassette"), path)
    before = path.read_bytes()
    process = _writer(path, "stall")
    assert process.stdout is not None
    try:
        assert process.stdout.readline() == "writing\n"
        assert process.stdout.readline() == "stalled\n"  # new bytes fully written, not renamed
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    assert path.read_bytes() == before
    leftovers = [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]
    assert len(leftovers) == 1
    assert leftovers[0].stat().st_size > 8 << 20  # the kill really came after a big write
    assert yamlio.load(path) == _one(b"the good old cassette")


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL is POSIX")
@pytest.mark.parametrize("delay", [0.05, 0.2, 0.5])
def test_a_writer_killed_at_any_moment_never_leaves_a_damaged_cassette(
    delay: float, tmp_path: Path
) -> None:
    path = tmp_path / "c.yaml"
    yamlio.save(_one(b"the good old cassette"), path)
    before = path.read_bytes()
    process = _writer(path, "loop")  # saves big cassettes over and over until killed
    assert process.stdout is not None
    try:
        assert process.stdout.readline() == "writing\n"
        with pytest.raises(subprocess.TimeoutExpired):
            process.wait(timeout=delay)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    if path.read_bytes() != before:
        cassette = yamlio.load(path)  # a complete new cassette, never a torn one
        assert len(cassette) == 8
        assert [len(i.response.body) for i in cassette.interactions] == [
            (1 << 20) + 200000 - n for n in range(8)
        ]
