"""Run the registered benchmarks and collect a report.

A benchmark that raises is reported as failed (with the reason) and the others still run; the
child processes are always stopped at the end, whatever happened.
"""

from __future__ import annotations

import importlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tools.bench.context import BenchContext, BenchOptions
from tools.bench.core import Benchmark, Failed, Outcome, Result, registered
from tools.bench.machine import load_average, machine_info, other_load

#: Modules that register benchmarks, in the order their benchmarks run. The whole-suite run comes
#: last so that nothing else is running while it is timed.
MODULES: tuple[str, ...] = (
    "tools.bench.fakes",
    "tools.bench.fixtures",
    "tools.bench.cassettes",
    "tools.bench.replay_bench",
    "tools.bench.lookup_bench",
    "tools.bench.cassette_loading",
    "tools.bench.proxy_bench",
    "tools.bench.load",
    "tools.bench.suite",
)


@dataclass
class BenchReport:
    """Everything one run produced."""

    options: BenchOptions
    machine: dict[str, str]
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0


def benchmarks() -> tuple[Benchmark, ...]:
    """Every registered benchmark (importing the modules that register them)."""
    for module in MODULES:
        importlib.import_module(module)
    return registered()


def selected(options: BenchOptions) -> list[Benchmark]:
    """The benchmarks this run will execute, in order."""
    chosen = []
    for benchmark in benchmarks():
        if benchmark.group == "suite" and not options.run_suite:
            continue
        if benchmark.group == "load" and options.skip_load:
            continue
        if options.selects(benchmark.name):
            chosen.append(benchmark)
    return chosen


def run_bench(options: BenchOptions, log: Callable[[str], None] | None = None) -> BenchReport:
    """Run the selected benchmarks; never raises for a failing benchmark."""

    def say(line: str) -> None:
        if log is not None:
            log(line)
        else:
            print(line, file=sys.stderr, flush=True)

    context = BenchContext(options, say)
    report = BenchReport(options, machine_info(context.cpus))
    started = time.perf_counter()
    try:
        for benchmark in selected(options):
            if benchmark.group == "suite":
                context.close()  # the suite gets both CPUs to itself
            _wait_for_quiet(options, say)
            say(f"bench: {benchmark.name} ...")
            outcome = _run_one(benchmark, context)
            report.outcomes.append(outcome)
            say(f"bench: {benchmark.name}: {_one_line(outcome)}")
    finally:
        context.close()
    report.seconds = time.perf_counter() - started
    report.machine["load average at end (1/5/15 min)"] = load_average()
    return report


def _wait_for_quiet(options: BenchOptions, say: Callable[[str], None]) -> None:
    """Wait (bounded) until other processes leave the machine nearly idle."""
    if options.quiet_wait <= 0:
        return
    deadline = time.monotonic() + options.quiet_wait
    while True:
        busy = other_load()
        if busy is None or busy <= options.quiet_cpus:
            return
        if time.monotonic() >= deadline:
            say(f"bench: other processes still use {busy:.2f} CPUs; measuring anyway")
            return
        say(f"bench: other processes use {busy:.2f} CPUs; waiting for a quieter moment")


def _run_one(benchmark: Benchmark, context: BenchContext) -> Outcome:
    try:
        return benchmark.run(context)
    except Exception as error:  # reported, not raised: the other benchmarks still run
        return Failed(
            benchmark.name, benchmark.title, f"{type(error).__name__}: {error}", benchmark.target
        )


def _one_line(outcome: Outcome) -> str:
    if isinstance(outcome, Result):
        return f"ratio {outcome.ratio:.3g} ({outcome.status})"
    return f"{outcome.status}: {outcome.reason.splitlines()[0] if outcome.reason else ''}"
