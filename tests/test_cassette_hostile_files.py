"""Hostile or broken cassette files: every tool answers with one line, in bounded time.

Each file here is written by hand, the way an attacker or a bad editor would write it. Loading
(which inspect, replay and record share) must refuse what it cannot serve with a one-line
``CassetteFormatError`` naming the file and the place; lint must report it as a finding and go
on; nothing may crash, hang or print a traceback. Files that once crashed the interpreter or hung
are run in a child process with a time and memory limit, so a regression fails this test instead
of taking the test run down.
"""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cassettes import safeyaml, yamlio
from cassettes.lint import lint_bytes
from providers.errors import CassetteFormatError
from tests.cli_process import ROOT
from tools.cli import main

CHILD_SECONDS = 60
CHILD_MEMORY = 2 * 1024**3


def _limit_memory() -> None:
    # An alias bomb that does get expanded would otherwise eat the machine before the timeout.
    resource.setrlimit(resource.RLIMIT_AS, (CHILD_MEMORY, CHILD_MEMORY))


def run_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """``tapedeck ARGS`` in a child process; fails the test if it does not finish in time."""
    try:
        return subprocess.run(
            [sys.executable, "-m", "tools.cli", *map(str, args)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=CHILD_SECONDS,
            check=False,
            preexec_fn=_limit_memory,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"tapedeck {' '.join(map(str, args))} still running after {CHILD_SECONDS} s")


def assert_one_line_error(result: subprocess.CompletedProcess[str], expected: str) -> None:
    """Exit status 1 and exactly one stderr line, which contains ``expected``."""
    assert result.returncode == 1, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr[-2000:]
    assert expected in result.stderr


def cassette(
    *,
    uri: str = "http://127.0.0.1/a",
    status: str = "200",
    reason: str = "OK",
    request_headers: str = "{}",
    response_headers: str = "{Content-Type: [text/plain]}",
    body: str = "hello",
    chunks: str = "'5@0'",
    extra: str = "",
) -> str:
    """One interaction written by hand; every argument is YAML text put in place as it is."""
    return f"""\
version: 1
{extra}interactions:
- request:
    method: GET
    uri: {uri}
    headers: {request_headers}
    body: null
  response:
    status: {{code: {status}, message: {reason}}}
    headers: {response_headers}
    body:
      string: {body}
    chunks: {chunks}
"""


def write(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_the_hand_written_cassette_of_these_tests_loads() -> None:
    (interaction,) = yamlio.loads(cassette()).interactions
    assert interaction.response.body == b"hello"


# === loading (inspect, replay and record share it) ==========================================

# --- 1. nesting: libyaml composes recursively in C, so a deep file must never reach it -------

_DEEP = 50_000  # far beyond the C stack: libyaml's composer segfaulted at about 25,000 levels


_NESTINGS = pytest.mark.parametrize(
    "nesting",
    [
        "[" * _DEEP + "]" * _DEEP,  # flow sequences
        "{a: " * _DEEP + "}" * _DEEP,  # flow mappings
        "[" * _DEEP,  # never closed: the composer recursed before the parser saw the end
        "\n" + "- " * _DEEP + "x",  # block sequences, no bracket at all
        "\n" + "- ? " * (_DEEP // 2) + "x",  # block sequences and explicit mapping keys
        # Each level hides a closing bracket in a quoted string, so a count of brackets that
        # ignored quoting would see a flat file.
        '[ "]",' * _DEEP + "]" * _DEEP,
    ],
    ids=["flow-seq", "flow-map", "unclosed", "block-seq", "block-keys", "quoted-closers"],
)


def deeply_nested(tmp_path: Path, nesting: str) -> Path:
    return write(tmp_path, "version: 1\ninteractions: " + nesting + "\n")


@_NESTINGS
@pytest.mark.parametrize("command", ["inspect", "replay"])
def test_a_deeply_nested_file_is_refused_in_one_line(
    nesting: str, command: str, tmp_path: Path
) -> None:
    path = deeply_nested(tmp_path, nesting)
    result = run_cli(command, path)
    assert result.returncode != -11, "segmentation fault"
    assert_one_line_error(result, f"{path}: nested too deeply to be a cassette")


def test_nesting_is_refused_one_level_past_the_limit_and_loads_at_the_limit() -> None:
    def nested(levels: int) -> str:
        # The document's mapping and the lists: ``levels`` collections, one inside the other.
        lists = levels - 1
        return cassette(extra="x: " + "[" * lists + "]" * lists + "\n")

    assert yamlio.loads(nested(safeyaml.MAX_DEPTH)).extra["x"] is not None
    with pytest.raises(
        CassetteFormatError, match=r"here\.yaml: nested too deeply to be a cassette"
    ):
        yamlio.loads(nested(safeyaml.MAX_DEPTH + 1), source="here.yaml")


def test_brackets_inside_text_never_count_as_nesting() -> None:
    # A body can hold any number of unbalanced brackets: only the YAML structure counts.
    brackets = "[{" * 100_000
    literal = "|\n        " + brackets
    text = cassette(body=repr(brackets), chunks=f"'{len(brackets)}@0'")
    assert yamlio.loads(text).interactions[0].response.body == brackets.encode()
    text = cassette(body=literal, chunks=f"'{len(brackets) + 1}@0'")
    assert yamlio.loads(text).interactions[0].response.body == brackets.encode() + b"\n"


# --- 2. aliases: shared, never copied; cycles and alias bombs refused ------------------------


def _laughs(*, merge: bool = False) -> str:
    """Nine levels of nine aliases each: 9**9 leaves once expanded, 90 nodes as written."""
    lines = ["a: &a {" + ", ".join(f"k{n}: x" for n in range(9)) + "}"]
    for level, name in enumerate("bcdefghi"):
        below = ", ".join([f"*{chr(97 + level)}"] * 9)
        lines.append(
            f"{name}: &{name} {{<<: [{below}]}}" if merge else f"{name}: &{name} [{below}]"
        )
    return cassette(extra="\n".join(lines) + "\n")


_BOMBS = pytest.mark.parametrize("merge", [False, True], ids=["lists", "merge-keys"])


@_BOMBS
@pytest.mark.parametrize("command", ["inspect", "replay"])
def test_an_alias_bomb_is_refused_quickly(merge: bool, command: str, tmp_path: Path) -> None:
    path = write(tmp_path, _laughs(merge=merge))
    assert_one_line_error(run_cli(command, path), "YAML aliases expand to")


def test_merge_keys_still_build_what_pyyaml_builds() -> None:
    text = (
        b"base: &base {a: 1, b: 2}\nmore: &more {b: 3, c: 4}\n"
        b"one: {<<: *base, a: 9}\nmany: {<<: [*base, *more], d: 5}\ntwice: {<<: *more, <<: *base}\n"
    )
    data = safeyaml.load_data(text)
    assert data == yaml.load(text, Loader=yaml.SafeLoader)
    assert data["one"] == {"a": 9, "b": 2}
    assert data["many"] == {"a": 1, "b": 2, "c": 4, "d": 5}  # the first listed mapping wins
    assert data["twice"] == {"b": 2, "c": 4, "a": 1}  # a later merge key wins


def test_a_shared_mapping_used_a_few_times_still_loads() -> None:
    # vcrpy's dumper writes one anchor for a headers dict two interactions share.
    text = cassette(response_headers="&h {Content-Type: [text/plain]}")
    text += text[text.index("- request:") :].replace("&h {Content-Type: [text/plain]}", "*h")
    first, second = yamlio.loads(text).interactions
    assert first.response.headers == second.response.headers == {"Content-Type": ["text/plain"]}


_SELF_REFERENCE = b"version: 1\nfoo: &a [*a]\ninteractions: []\n"


def test_a_self_referencing_alias_is_refused() -> None:
    # Loaded, the list would contain itself, and saving it (record does) would never end.
    with pytest.raises(CassetteFormatError) as caught:
        yamlio.loads(_SELF_REFERENCE, source="self.yaml")
    assert str(caught.value) == (
        "self.yaml, line 2: a YAML alias refers to a node that contains it; "
        "a cassette cannot hold a cycle"
    )


# --- 3. what HTTP cannot carry is refused when the file loads ---------------------------------


_REFUSED_AT_LOAD = pytest.mark.parametrize(
    ("edit", "problem"),
    [
        ({"uri": '"http://[::1/a"'}, "request uri is not a valid URL"),
        ({"uri": "http://127.0.0.1:99999/a"}, "request uri is not a valid URL"),
        ({"status": "99999"}, "response.status.code must be from 100 to 599, got 99999"),
        ({"status": "-5"}, "response.status.code must be from 100 to 599, got -5"),
        ({"status": "0"}, "response.status.code must be from 100 to 599, got 0"),
        ({"status": "600"}, "response.status.code must be from 100 to 599, got 600"),
        (
            {"response_headers": '{Content-Type: ["text/plain\\r\\nX-Evil: 1"]}'},
            r"response.headers['Content-Type'] holds '\r', which HTTP forbids in a header value",
        ),
        (
            {"response_headers": '{X-A: ["a\\0b"]}'},
            r"response.headers['X-A'] holds '\x00', which HTTP forbids in a header value",
        ),
        (
            {"response_headers": '{X-A: ["a\\x7fb"]}'},
            r"response.headers['X-A'] holds '\x7f', which HTTP forbids in a header value",
        ),
        (
            {"request_headers": '{X-A: ["\\n"]}'},
            r"request.headers['X-A'] holds '\n', which HTTP forbids in a header value",
        ),
        (
            {"response_headers": '{"Bad Name": [x]}'},
            "response.headers['Bad Name'] is not a valid HTTP header name",
        ),
        (
            {"response_headers": '{"Bad\\nName": [x]}'},
            r"response.headers['Bad\nName'] is not a valid HTTP header name",
        ),
        (
            {"request_headers": '{"X:Y": [x]}'},
            "request.headers['X:Y'] is not a valid HTTP header name",
        ),
        ({"request_headers": '{"": [x]}'}, "request.headers[''] is not a valid HTTP header name"),
        (
            {"response_headers": '{"Grüße": [x]}'},
            "response.headers['Grüße'] is not a valid HTTP header name",
        ),
    ],
)


@_REFUSED_AT_LOAD
def test_what_http_cannot_carry_is_refused_at_load_naming_the_field(
    edit: dict[str, str], problem: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = cassette(**edit)
    with pytest.raises(CassetteFormatError) as caught:
        yamlio.loads(text, source="here.yaml")
    assert str(caught.value) == f"here.yaml, interaction 0: {problem}"
    path = write(tmp_path, text)
    for command in ("inspect", "replay"):  # both load first: replay refuses before serving
        assert main([command, str(path)]) == 1
        assert capsys.readouterr().err == f"tapedeck {command}: {path}, interaction 0: {problem}\n"


@pytest.mark.parametrize(
    "edit",
    [
        {"status": "100"},
        {"status": "599"},
        {"response_headers": '{X-A: ["tab\\tand space", "Grüße 東京", ""]}'},
        {"request_headers": '{"!#$%&\'*+-.^_`|~09azAZ": [x]}'},
        {"uri": "ftp://127.0.0.1/file"},
        {"uri": '"http://127.0.0.1/\\e[31mRED"'},
    ],
)
def test_odd_but_carriable_values_still_load(edit: dict[str, str]) -> None:
    assert len(yamlio.loads(cassette(**edit))) == 1


# --- 4. !!binary that is not base64 ----------------------------------------------------------


@pytest.mark.parametrize("value", ['"%%%%"', '"QUJD%"', '"QUJD=QUJD"', '"QU JD\\x00"'])
def test_binary_that_is_not_base64_says_so(value: str) -> None:
    text = cassette(body=f"!!binary {value}", chunks="'39@0'")
    with pytest.raises(CassetteFormatError) as caught:
        yamlio.loads(text, source="here.yaml")
    assert str(caught.value) == "here.yaml, line 12: !!binary value is not base64"


def test_binary_folded_over_lines_with_spaces_still_decodes() -> None:
    text = cassette(body="!!binary |\n        QUJD\n        REVG", chunks="'6@0'")
    assert yamlio.loads(text).interactions[0].response.body == b"ABCDEF"


# === lint: every refusal above is a finding, and lint itself never crashes or hangs =========


@_NESTINGS
def test_lint_reports_a_deeply_nested_file_as_one_finding(nesting: str, tmp_path: Path) -> None:
    path = deeply_nested(tmp_path, nesting)
    result = run_cli("lint", path)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == f"{path}:1: not-cassette: nested too deeply to be a cassette\n"


def test_lint_of_a_thousand_levels_is_one_finding_not_a_traceback() -> None:
    text = ("version: 1\ninteractions: " + "[" * 1000 + "]" * 1000 + "\n").encode()
    (finding,) = lint_bytes(text, "deep.yaml")
    assert str(finding) == "deep.yaml:1: not-cassette: nested too deeply to be a cassette"


@_BOMBS
def test_lint_reports_an_alias_bomb_as_one_finding(merge: bool, tmp_path: Path) -> None:
    path = write(tmp_path, _laughs(merge=merge))
    result = run_cli("lint", path)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert re.fullmatch(
        rf"{re.escape(str(path))}:1: not-cassette: YAML aliases expand to .*\n", result.stdout
    )


def test_lint_reports_a_self_referencing_alias_on_its_line() -> None:
    (finding,) = lint_bytes(_SELF_REFERENCE, "self.yaml")
    assert (finding.line, finding.kind) == (2, "not-cassette")
    assert finding.message.startswith("a YAML alias refers to a node that contains it")


def test_lint_checks_an_aliased_value_in_every_place_it_is_used() -> None:
    # Walking each node once must not mean checking it in only one of its places: the same
    # text is harmless under 'note' and a secret query parameter under 'uri'.
    text = cassette(uri="*u", extra="note: &u 'http://127.0.0.1/a?api_key=abc123'\n")
    kinds = {(finding.line, finding.kind) for finding in lint_bytes(text.encode())}
    assert (2, "secret-query") in kinds  # reported where the aliased text is written


def test_lint_counts_no_bracket_inside_text_as_nesting() -> None:
    brackets = "[{" * 100_000
    text = cassette(body="|\n        " + brackets, chunks=f"'{len(brackets) + 1}@0'")
    assert lint_bytes(text.encode()) == []


@_REFUSED_AT_LOAD
def test_lint_reports_what_http_cannot_carry_on_the_interaction_line(
    edit: dict[str, str], problem: str
) -> None:
    (finding,) = lint_bytes(cassette(**edit).encode(), "here.yaml")
    assert (finding.kind, finding.message) == ("not-cassette", f"interaction 0: {problem}")
    assert finding.line == 3  # the line where interaction 0 starts


_SECRET_TEXT = "key sk-abcdefghijklmnopqrstuvwx"


def test_lint_reports_each_unreadable_entry_and_lints_every_other_file(tmp_path: Path) -> None:
    dirty = cassette(body=f"'{_SECRET_TEXT}'", chunks=f"'{len(_SECRET_TEXT)}@0'")
    (tmp_path / "sub.yaml").mkdir()  # a directory with a cassette's name: searched, not read
    write(tmp_path / "sub.yaml", dirty, "inner.yaml")
    write(tmp_path, cassette(), "a.yaml")
    (tmp_path / "broken.yaml").symlink_to(tmp_path / "nowhere")
    os.mkfifo(tmp_path / "pipe.yaml")  # reading it would wait forever for a writer
    write(tmp_path, dirty, "z.yaml")
    result = run_cli("lint", tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert f"cannot read {tmp_path / 'broken.yaml'}: No such file or directory" in result.stderr
    assert f"cannot read {tmp_path / 'pipe.yaml'}: not a regular file" in result.stderr
    assert "sub.yaml:" not in result.stderr
    flagged = {Path(line.split(":")[0]).name for line in result.stdout.splitlines()}
    assert flagged == {"inner.yaml", "z.yaml"}
    assert "2 file(s) could not be read" in result.stderr


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty, not a cassette"),
        ("# only a comment\n", "the file is empty, not a cassette"),
        ("- a\n- b\n", "a cassette from vcrpy before 1.0 (no version); re-record it"),
        ("just text\n", "not a cassette: the top level is a str"),
        ("version: 1\n", "'interactions' must be a list"),
    ],
)
def test_lint_says_what_is_not_a_cassette_like_inspect_does(
    text: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, text)
    assert main(["inspect", str(path)]) == 1
    assert capsys.readouterr().err == f"tapedeck inspect: {path}: {message}\n"
    assert main(["lint", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == f"{path}:1: not-cassette: {message}\n"
    assert "1 finding(s) in 1 file(s)" in captured.err


# === inspect never sends the terminal what the cassette holds raw ==========================


def test_inspect_escapes_control_characters_only_for_display(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    provenance = "tapedeck:\n  format: 1\n  provenance:\n" + "".join(
        f"    {key}: {value}\n"
        for key, value in {
            "target_url": '"http://evil/\\e]0;title\\a"',
            "recorded_at": '"2024\\x9b2J"',
            "tool_version": '"1\\u202e0"',
            "source": "fake",
        }.items()
    )
    text = cassette(
        uri='"http://127.0.0.1/\\e[31mRED"', reason='"OK\\e[2J\\nX-Line: 1"', extra=provenance
    )
    path = write(tmp_path, text)
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert all(c.isprintable() for c in out.replace("\n", ""))
    assert "#0 GET /\\x1b[31mRED -> 200 OK\\x1b[2J\\nX-Line: 1  1 chunk(s), 5 B" in out
    assert "recorded from http://evil/\\x1b]0;title\\x07 (a local fake upstream)" in out
    assert "recorded at   2024\\x9b2J by tapedeck 1\\u202e0" in out
    assert not any(line.startswith("X-Line") for line in out.splitlines())

    assert main(["inspect", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert all(c.isprintable() for c in out.replace("\n", ""))
    document = json.loads(out)  # the data itself is unchanged: escaping is only for display
    (entry,) = document["interactions"]
    assert entry["uri"] == "http://127.0.0.1/\x1b[31mRED"
    assert entry["reason"] == "OK\x1b[2J\nX-Line: 1"
    assert document["provenance"]["recorded_at"] == "2024\x9b2J"
    assert document["provenance"]["tool_version"] == "1\u202e0"
