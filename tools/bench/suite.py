"""Full test-suite wall time (``--suite``): the whole pytest run, against its fixed start-up cost.

The baseline is ``pytest --collect-only`` on the same tests: interpreter start, plugin loading,
imports and collection, everything a run pays before the first test. The ratio says how many
times that fixed cost the full run takes; the per-test figure spreads the rest over the tests.
The suite runs in a child process with the bench's own processes already stopped.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

from tools.bench.context import BenchContext
from tools.bench.core import Benchmark, Failed, Outcome, Result, register

ROOT = Path(__file__).resolve().parents[2]
_SUITE_TIMEOUT = 3600.0
_COUNTS = re.compile(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed|deselected)")


def _pytest(*args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=_SUITE_TIMEOUT,
        check=False,
    )
    return time.perf_counter() - started, done


def _counts(output: str) -> dict[str, int]:
    lines = [line for line in output.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    return {kind.rstrip("s"): int(number) for number, kind in _COUNTS.findall(last)}


def full_suite(context: BenchContext) -> Outcome:
    """Time ``pytest`` on the whole suite and ``pytest --collect-only``."""
    collect_seconds, collected = _pytest("--collect-only")
    if collected.returncode != 0:
        return Failed("suite", "Full test suite", f"collection failed:\n{collected.stdout[-2000:]}")
    tests = len([line for line in collected.stdout.splitlines() if "::" in line])
    run_seconds, ran = _pytest()
    counts = _counts(ran.stdout)
    per_test = (run_seconds - collect_seconds) / tests * 1000 if tests else float("nan")
    summary = ", ".join(f"{number} {kind}" for kind, number in counts.items()) or "no summary"
    failures = [line for line in ran.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
    return Result(
        name="suite",
        title="Full test suite wall time",
        unit="s",
        ours=run_seconds,
        baseline=collect_seconds,
        baseline_label="pytest --collect-only (start-up, imports, collection)",
        notes=(
            f"{tests} tests: {summary} (exit status {ran.returncode})"
            + "".join(f"; {line}" for line in failures[:5]),
            f"{per_test:.1f} ms per test beyond the fixed start-up cost",
        ),
    )


register(Benchmark("suite", "Full test suite wall time", "suite", full_suite))
