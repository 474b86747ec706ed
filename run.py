#!/usr/bin/env python3
"""Tapedeck's only entry point for a fresh machine: make the environment, then run a command.

    python3 run.py serve        start the four fake upstreams on 127.0.0.1 (Ctrl-C stops them)
    python3 run.py test         lint, type-check and run the whole test suite offline
    python3 run.py <command>    any other `tapedeck` command (record, replay, inspect, lint, bench)

    python3 run.py test --help       what `test` runs, and how to pass arguments to pytest
    python3 run.py <command> --help  that command's options

The environment lives in `.venv/` next to this file. It is created on first use and reinstalled
only when `requirements.lock` or `pyproject.toml` change, so every later call starts at once.
Only the standard library may be used here: this file runs before anything is installed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
LOCK = ROOT / "requirements.lock"
STAMP = VENV / ".tapedeck-installed"
MIN_PYTHON = (3, 11)


def _bin(name: str) -> Path:
    scripts = "Scripts" if os.name == "nt" else "bin"
    suffix = ".exe" if os.name == "nt" else ""
    return VENV / scripts / f"{name}{suffix}"


def _fingerprint() -> str:
    # The lock and the project metadata decide what is installed; nothing else does.
    digest = hashlib.sha256()
    for path in (LOCK, ROOT / "pyproject.toml"):
        digest.update(path.read_bytes())
    digest.update(sys.version.encode())
    return digest.hexdigest()


def _say(message: str) -> None:
    print(f"[run.py] {message}", file=sys.stderr, flush=True)


def _check(cmd: list[str]) -> None:
    result = subprocess.run(cmd, cwd=ROOT, check=False)
    if result.returncode != 0:
        _say(f"failed ({result.returncode}): {' '.join(cmd)}")
        sys.exit(result.returncode)


def ensure_environment() -> None:
    """Create `.venv` and install the pinned dependencies unless they are already current."""
    if sys.version_info < MIN_PYTHON:
        _say(
            f"Python {'.'.join(map(str, MIN_PYTHON))}+ is needed, this is {sys.version.split()[0]}"
        )
        sys.exit(2)
    wanted = _fingerprint()
    if STAMP.exists() and STAMP.read_text().strip() == wanted and _bin("tapedeck").exists():
        return
    if not _bin("python").exists():
        _say(f"creating the environment in {VENV} ...")
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    python = str(_bin("python"))
    _say("installing pinned dependencies from requirements.lock (first run only) ...")
    _check([python, "-m", "pip", "install", "--quiet", "--require-virtualenv", "-r", str(LOCK)])
    # No build isolation: the build backend is pinned in the lock like everything else.
    _check(
        [python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "-e", "."]
    )
    STAMP.write_text(wanted + "\n")
    _say("environment ready")


TEST_USAGE = """\
usage: python3 run.py test [PYTEST ARGS...]
       python3 run.py test [-h | --help]

Runs, from the repository root, stopping at the first that fails:
  1. ruff check .
  2. ruff format --check .
  3. mypy --strict          (the packages listed under [tool.mypy] in pyproject.toml)
  4. pytest PYTEST ARGS...  (the whole suite, offline; HYPOTHESIS_PROFILE defaults to dev,
                             or ci when CI is set)

Every argument but -h/--help goes to pytest, e.g. `python3 run.py test -k getgpt -x`.
Arguments after `--` go to pytest as they are: `python3 run.py test -- --help` shows pytest's
own help (without steps 1-3).

Exit status: 1 if step 1, 2 or 3 fails, else pytest's.
"""


def split_test_arguments(argv: list[str]) -> tuple[bool, list[str]]:
    """``run.py test`` arguments: whether run.py's own help was asked for, and pytest's.

    Before the first ``--``, -h/--help is run.py's; the first ``--`` itself is dropped, and
    everything after it goes to pytest untouched (pytest would take a ``--`` as the end of its
    options, turning ``-- -k x`` into a file named ``-k``).
    """
    if "--" in argv:
        cut = argv.index("--")
        ours, passed_on = argv[:cut], argv[cut + 1 :]
    else:
        ours, passed_on = argv, []
    if any(arg in {"-h", "--help"} for arg in ours):
        return True, []
    return False, ours + passed_on


def run_tests(extra: list[str]) -> int:
    """Lint, format check, strict type check, then the pytest suite. Stops at the first failure."""
    steps: list[tuple[str, list[str]]] = [
        ("ruff check", [str(_bin("ruff")), "check", "."]),
        ("ruff format --check", [str(_bin("ruff")), "format", "--check", "."]),
        ("mypy --strict", [str(_bin("mypy"))]),
    ]
    if any(arg in {"-h", "--help"} for arg in extra):
        steps = []  # pytest only prints its help: checking the code first is a wait for nothing
    for label, cmd in steps:
        _say(f"{label} ...")
        if subprocess.run(cmd, cwd=ROOT, check=False).returncode != 0:
            _say(f"{label} failed")
            return 1
    _say("pytest ...")
    env = dict(os.environ)
    env.setdefault("HYPOTHESIS_PROFILE", "ci" if env.get("CI") else "dev")
    cmd = [str(_bin("python")), "-m", "pytest", *extra]
    return subprocess.run(cmd, cwd=ROOT, env=env, check=False).returncode


def main(argv: list[str]) -> int:
    if not argv or argv[0] in {"-h", "--help"}:
        print(__doc__)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "test":
        wants_help, pytest_args = split_test_arguments(rest)
        if wants_help:
            print(TEST_USAGE, end="")
            return 0  # before ensure_environment: help must not install or run anything
        ensure_environment()
        return run_tests(pytest_args)
    ensure_environment()
    # Everything else is a tapedeck subcommand; `serve` is the common case.
    cmd = [str(_bin("tapedeck")), command, *rest]
    if os.name == "nt":
        return subprocess.run(cmd, cwd=ROOT, check=False).returncode
    os.execv(cmd[0], cmd)  # replace this process so Ctrl-C and SIGTERM reach the server directly


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
