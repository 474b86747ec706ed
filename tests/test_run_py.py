"""`run.py`, the entry point for a fresh machine: its own help runs nothing, and `test` runs the
checks then pytest with the extra arguments.

run.py is loaded as a module with ``ensure_environment`` and ``subprocess.run`` replaced by
recorders, so no step really runs and the environment is never touched.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.cli_process import ROOT


class _Recorder:
    """Stands in for run.py's ``ensure_environment`` and ``subprocess.run``."""

    def __init__(self) -> None:
        self.environment_checked = False
        self.commands: list[list[str]] = []

    def ensure_environment(self) -> None:
        self.environment_checked = True

    def run(self, cmd: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        self.commands.append([Path(part).name if i == 0 else part for i, part in enumerate(cmd)])
        return subprocess.CompletedProcess(cmd, 0)


@pytest.fixture
def run_py(monkeypatch: pytest.MonkeyPatch) -> tuple[ModuleType, _Recorder]:
    spec = importlib.util.spec_from_file_location("tapedeck_run_py", ROOT / "run.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    recorder = _Recorder()
    monkeypatch.setattr(module, "ensure_environment", recorder.ensure_environment)
    monkeypatch.setattr(module.subprocess, "run", recorder.run)
    return module, recorder


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_test_help_explains_the_steps_and_runs_nothing(
    run_py: tuple[ModuleType, _Recorder], capsys: pytest.CaptureFixture[str], flag: str
) -> None:
    module, recorder = run_py
    assert module.main(["test", flag]) == 0
    text = capsys.readouterr().out
    for step in ("ruff check", "ruff format --check", "mypy --strict", "pytest"):
        assert step in text
    assert "run.py test -- --help" in text  # how to reach pytest's own help
    assert recorder.commands == []
    assert not recorder.environment_checked


def test_top_level_help_points_to_test_help(
    run_py: tuple[ModuleType, _Recorder], capsys: pytest.CaptureFixture[str]
) -> None:
    module, recorder = run_py
    assert module.main(["--help"]) == 0
    assert "run.py test --help" in capsys.readouterr().out
    assert recorder.commands == []
    assert not recorder.environment_checked


def test_test_runs_the_checks_then_pytest_with_the_extra_arguments(
    run_py: tuple[ModuleType, _Recorder],
) -> None:
    module, recorder = run_py
    assert module.main(["test", "-k", "getgpt", "-x"]) == 0
    assert recorder.environment_checked
    assert recorder.commands == [
        ["ruff", "check", "."],
        ["ruff", "format", "--check", "."],
        ["mypy"],
        ["python", "-m", "pytest", "-k", "getgpt", "-x"],
    ]


def test_arguments_after_a_double_dash_go_to_pytest_as_they_are(
    run_py: tuple[ModuleType, _Recorder],
) -> None:
    module, recorder = run_py
    assert module.main(["test", "-x", "--", "-h", "--"]) == 0
    assert recorder.commands[-1] == ["python", "-m", "pytest", "-x", "-h", "--"]


def test_pytest_help_skips_the_checks(run_py: tuple[ModuleType, _Recorder]) -> None:
    module, recorder = run_py
    assert module.main(["test", "--", "--help"]) == 0
    assert recorder.commands == [["python", "-m", "pytest", "--help"]]


def test_run_py_test_help_as_a_process_is_quick_and_quiet() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "test", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0
    assert "usage: python3 run.py test" in done.stdout
    assert done.stderr == ""  # no "[run.py] ruff check ..." progress: nothing ran
