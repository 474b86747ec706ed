"""A `tapedeck` subcommand running as a real process, as a user starts it from a terminal."""

from __future__ import annotations

import asyncio
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


async def start_cli(command: str, *args: str) -> asyncio.subprocess.Process:
    """``python -m tools.cli COMMAND ARGS`` from the repository root, for asyncio tests.

    Unbuffered, so each line a command prints arrives as it prints it.
    """
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tools.cli",
        command,
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


class CliProcess:
    """``python -m tools.cli COMMAND ARGS`` run from the repository root.

    Stdout lines arrive through a reader thread, so waiting for a line never blocks longer than
    its timeout, whatever the process does.
    """

    def __init__(self, command: str, *args: str) -> None:
        self.command = command
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tools.cli", command, *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def next_line(self, timeout: float = 30.0) -> str:
        """The next stdout line; fails the test, showing stderr, if the process exited first."""
        line = self._lines.get(timeout=timeout)
        if line is None:
            _, err = self.proc.communicate(timeout=10)
            pytest.fail(f"{self.command} exited ({self.proc.returncode}) early:\n{err}")
        return line

    def send_and_wait(self, sig: signal.Signals, timeout: float = 10.0) -> str:
        """Send ``sig`` and wait for the process to exit; everything it wrote on stderr."""
        self.proc.send_signal(sig)
        _, err = self.proc.communicate(timeout=timeout)
        return err

    def rest_of_stdout(self) -> list[str]:
        """The stdout lines not read yet, up to EOF (once the process has exited)."""
        rest: list[str] = []
        while (line := self._lines.get(timeout=5)) is not None:
            rest.append(line)
        return rest

    def kill(self) -> None:
        """Kill the process if it still runs (fixture teardown)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()
