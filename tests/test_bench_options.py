"""`tapedeck bench` refuses numbers and names it cannot honour, and an output path it cannot write,
before it spends minutes benchmarking; the report it writes gets an ordinary file mode.

Each refusal is checked with ``--list`` or a selection that would run quickly, so a check that
regresses costs seconds, not a full run.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools.bench.report import write_report
from tools.cli import main


def _usage_error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """The one error line argparse gives for ``tapedeck bench ARGS`` (exit status 2)."""
    with pytest.raises(SystemExit) as caught:
        main(["bench", *args])
    assert caught.value.code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(lines) == 1
    return lines[0]


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--reps", "0"),
        ("--reps", "-1"),
        ("--reps", "2.5"),
        ("--seconds", "nan"),
        ("--seconds", "inf"),
        ("--seconds", "0"),
        ("--seconds", "-1"),
        ("--seconds", "1e300"),
        ("--load-clients", "0"),
        ("--load-clients", "-3"),
        ("--load-seconds", "0"),
        ("--load-seconds", "nan"),
        ("--wait-quiet", "-1"),
        ("--wait-quiet", "nan"),
    ],
)
def test_numbers_out_of_range_are_usage_errors(
    capsys: pytest.CaptureFixture[str], option: str, value: str
) -> None:
    line = _usage_error(capsys, "--quick", option, value, "--list")
    assert f"argument {option}:" in line
    assert repr(value) in line


def test_an_only_that_matches_nothing_lists_the_names(capsys: pytest.CaptureFixture[str]) -> None:
    line = _usage_error(capsys, "--only", "sse", "--only", "nothingmatches", "--list")
    assert "argument --only: 'nothingmatches' matches no benchmark" in line
    for name in ("sse-events", "replay-5000", "load", "suite"):
        assert name in line


def test_an_only_that_selects_only_what_is_left_out_says_so(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    output = tmp_path / "report.md"
    assert main(["bench", "--quick", "--only", "suite", "--output", str(output)]) == 1
    err = capsys.readouterr().err
    assert "nothing to run" in err
    assert "--suite" in err
    assert err.count("\n") == 1
    assert not output.exists()


@pytest.mark.parametrize("where", ["a directory", "under a file"])
def test_an_output_it_cannot_write_is_refused_before_benchmarking(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, where: str
) -> None:
    if where == "a directory":
        output = tmp_path
    else:
        (tmp_path / "file").write_text("")
        output = tmp_path / "file" / "report.md"
    line = _usage_error(capsys, "--quick", "--only", "sse-events", "--output", str(output))
    assert f"argument --output: cannot write a report to {str(output)!r}" in line


def test_the_default_output_is_checked_before_benchmarking(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "BENCHMARKS.md").mkdir()  # a full run would write here
    assert main(["bench", "--only", "sse-events"]) == 1
    err = capsys.readouterr().err
    assert err == "tapedeck bench: cannot write a report to 'BENCHMARKS.md': it is a directory\n"


@pytest.fixture
def umask_027() -> Iterator[None]:
    before = os.umask(0o027)
    try:
        yield
    finally:
        os.umask(before)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_report_gets_the_usual_mode_under_the_umask(tmp_path: Path, umask_027: None) -> None:
    path = tmp_path / "BENCHMARKS.md"
    write_report("# new\n", path)
    assert _mode(path) == 0o640  # 0o666 less the umask, as `open(path, "w")` would give
    assert path.read_text() == "# new\n"


def test_a_replaced_report_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# old\n")
    path.chmod(0o664)
    write_report("# new\n", path)
    assert _mode(path) == 0o664
    assert path.read_text() == "# new\n"
    assert [p.name for p in tmp_path.iterdir()] == ["BENCHMARKS.md"]  # no temporary left


def test_a_report_through_a_symlink_replaces_its_target_and_keeps_the_link(tmp_path: Path) -> None:
    target = tmp_path / "shared" / "BENCHMARKS.md"
    target.parent.mkdir()
    target.write_text("# old\n")
    link = tmp_path / "BENCHMARKS.md"
    link.symlink_to(target)
    write_report("# new\n", link)
    assert link.is_symlink()
    assert target.read_text() == "# new\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["BENCHMARKS.md"]
