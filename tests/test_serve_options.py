"""Option mistakes of the listening commands (`serve`, `record`, `replay`) and hostile scenario
files: each is one line on stderr, no traceback, and nothing starts listening.

The --host cases run as subprocesses with a timeout: a command that wrongly accepts the option
starts serving, and must not hang the suite.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fake_upstreams.registry import FAKES
from fake_upstreams.scenario import load_scenario
from tests.cli_process import ROOT
from tools.cli import main
from tools.serve import _ports

#: The highest --base-port: the fixed layout spans this many ports beyond its first.
_SPAN = max(spec.default_port for spec in FAKES.values()) - min(
    spec.default_port for spec in FAKES.values()
)
_LAST_BASE_PORT = 65535 - _SPAN


def _tapedeck(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def _error_lines(stderr: str) -> list[str]:
    """Stderr without argparse's usage lines (a usage line may wrap onto indented lines)."""
    lines = stderr.splitlines()
    while lines and (lines[0].startswith("usage:") or lines[0].startswith(" ")):
        lines.pop(0)
    return lines


# -- --host "": not a quiet "every interface" ----------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["serve", "--only", "Aivvm", "--port", "0"],
        ["replay", "cassettes/library/aivvm.yaml"],
        ["record", "--target", "http://127.0.0.1:9", "--cassette", "unused.yaml"],
    ],
    ids=["serve", "replay", "record"],
)
@pytest.mark.parametrize("host", ["", "   "], ids=["empty", "blank"])
def test_an_empty_host_is_refused_before_anything_listens(command: list[str], host: str) -> None:
    done = _tapedeck(*command, "--host", host)
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""  # no `NAME URL` line: nothing listened
    errors = _error_lines(done.stderr)
    assert len(errors) == 1, done.stderr
    assert "argument --host" in errors[0]
    assert "every interface" in errors[0]
    assert "Traceback" not in done.stderr


# -- --base-port: say what range is allowed ------------------------------------------------------


@pytest.mark.parametrize("base_port", [0, _LAST_BASE_PORT + 1, 65535])
def test_a_base_port_out_of_range_names_the_range(
    capsys: pytest.CaptureFixture[str], base_port: int
) -> None:
    assert main(["serve", "--base-port", str(base_port)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert f"--base-port {base_port}" in err
    assert f"1..{_LAST_BASE_PORT}" in err


def test_the_base_port_range_is_inclusive() -> None:
    names = list(FAKES)
    assert min(_ports(names, None, 1).values()) == 1
    assert max(_ports(names, None, _LAST_BASE_PORT).values()) == 65535


# -- scenario files an attacker or a typo made ---------------------------------------------------


def _deep_flow_yaml(levels: int) -> str:
    return "Aivvm: " + "[" * levels + "]" * levels + "\n"


def _deep_block_yaml(levels: int) -> str:
    return "Aivvm:\n  " + "- " * levels + "x\n"  # block sequences, nested on one line


def _deep_json(levels: int) -> str:
    return '{"Aivvm": ' + "[" * levels + "]" * levels + "}"


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("flow20k.yaml", _deep_flow_yaml(20_000)),
        ("flow50k.yaml", _deep_flow_yaml(50_000)),
        ("block.yaml", _deep_block_yaml(5_000)),
        ("deep.json", _deep_json(50_000)),
    ],
)
def test_a_deeply_nested_scenario_is_one_line(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ValueError, match=f"^scenario {path}: nested too deeply") as caught:
        load_scenario(path)
    assert "\n" not in str(caught.value)


def test_a_python_tag_is_one_line_naming_the_tag_and_where(tmp_path: Path) -> None:
    path = tmp_path / "tagged.yaml"
    path.write_text('Aivvm:\n  text: !!python/object/apply:os.system ["true"]\n')
    with pytest.raises(ValueError, match="not valid YAML") as caught:
        load_scenario(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"scenario {path}: not valid YAML")
    assert "python/object/apply:os.system" in message
    assert "line 2" in message


def test_the_serve_command_reports_a_hostile_scenario_in_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    deep = tmp_path / "deep.yaml"
    deep.write_text(_deep_flow_yaml(20_000))
    assert main(["serve", "--port", "0", "--scenario", str(deep)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"tapedeck serve: scenario {deep}: nested too deeply")
    assert err.count("\n") == 1, err
