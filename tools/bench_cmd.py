"""``tapedeck bench``: measure the harness against bare baselines and write BENCHMARKS.md.

Exit status 0 when every benchmark produced an honest figure (a missed target is a finding and
is reported, not an error); 1 when one failed or a pass/fail check (errors, transcripts) did not
hold, or when nothing can run or the report cannot be written (both said before any benchmark
runs); 2 for a number, name or path the options cannot take.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from pathlib import Path

from tools.bench import (
    BenchOptions,
    Result,
    benchmarks,
    render_markdown,
    render_text,
    run_bench,
    selected,
)
from tools.bench.report import report_path_problem, write_report

NAME = "bench"
HELP = "measure the fakes against bare aiohttp in the same run, load-test them, write BENCHMARKS.md"

#: The most seconds any duration option takes. Longer is surely a typo (a run is minutes), and
#: far longer overflows the timers mid-run instead of failing here.
_MOST_SECONDS = 86_400.0


def _positive_whole(value: str) -> int:
    """An argparse type: a whole number, 1 or more (a count of runs or clients)."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value!r}")
    return number


def _seconds(value: str, *, zero_allowed: bool = False) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {value!r}") from None
    too_low = seconds < 0 or (seconds == 0 and not zero_allowed)
    if not math.isfinite(seconds) or too_low or seconds > _MOST_SECONDS:
        low = "0 or more" if zero_allowed else "more than 0"
        raise argparse.ArgumentTypeError(
            f"must be a number of seconds, {low} and at most {_MOST_SECONDS:g}, got {value!r}"
        )
    return seconds


def _duration(value: str) -> float:
    """An argparse type: seconds something runs for, more than 0 (0 would measure nothing)."""
    return _seconds(value)


def _wait(value: str) -> float:
    """An argparse type: seconds to wait at most, 0 (do not wait) or more."""
    return _seconds(value, zero_allowed=True)


def _benchmark_part(value: str) -> str:
    """An argparse type for --only: part of at least one benchmark's name."""
    names = [benchmark.name for benchmark in benchmarks()]
    if not any(value in name for name in names):
        raise argparse.ArgumentTypeError(
            f"{value!r} matches no benchmark; the names are: {', '.join(names)}"
        )
    return value


def _report_path(value: str) -> Path:
    """An argparse type for --output: a path the report can be written to."""
    path = Path(value)
    problem = report_path_problem(path)
    if problem is not None:
        raise argparse.ArgumentTypeError(f"cannot write a report to {value!r}: {problem}")
    return path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quick",
        action="store_true",
        help="every benchmark tiny (seconds in total): keeps the code working, numbers mean "
        "nothing; writes no report unless --output is given",
    )
    parser.add_argument(
        "--output",
        type=_report_path,
        default=None,
        help="where to write the Markdown report (default: BENCHMARKS.md; none with --quick)",
    )
    parser.add_argument("--suite", action="store_true", help="also time the full pytest suite")
    parser.add_argument("--no-load", action="store_true", help="skip the load test")
    parser.add_argument(
        "--only",
        type=_benchmark_part,
        action="append",
        default=[],
        metavar="NAME",
        help="run only benchmarks whose name contains NAME (repeatable)",
    )
    parser.add_argument("--reps", type=_positive_whole, help="measured runs per side (default 7)")
    parser.add_argument("--seconds", type=_duration, help="seconds per measured run (default 1.5)")
    parser.add_argument(
        "--load-clients", type=_positive_whole, help="concurrent clients (default 500)"
    )
    parser.add_argument("--load-seconds", type=_duration, help="load duration (default 10)")
    parser.add_argument(
        "--wait-quiet",
        type=_wait,
        metavar="SECONDS",
        help="before each benchmark, wait up to SECONDS for other processes to leave the "
        "machine nearly idle (for shared machines; default: do not wait)",
    )
    parser.add_argument(
        "--no-pin", action="store_true", help="do not pin server and client to their own CPUs"
    )
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")


def options_from(args: argparse.Namespace) -> BenchOptions:
    """The options the command line asks for (quick mode first, then explicit overrides)."""
    changes: dict[str, object] = {
        "run_suite": args.suite,
        "skip_load": args.no_load,
        "only": tuple(args.only),
        "pin": not args.no_pin,
    }
    for option, value in (
        ("reps", args.reps),
        ("run_seconds", args.seconds),
        ("load_clients", args.load_clients),
        ("load_seconds", args.load_seconds),
        ("quiet_wait", args.wait_quiet),
    ):
        if value is not None:
            changes[option] = value
    base = BenchOptions.quick_mode() if args.quick else BenchOptions()
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def _say(message: str) -> None:
    print(f"tapedeck bench: {message}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    if args.list:
        for benchmark in benchmarks():
            target = "" if benchmark.target is None else f"  target {benchmark.target}"
            print(f"{benchmark.name:18} [{benchmark.group}] {benchmark.title}{target}")
        return 0
    options = options_from(args)
    if not selected(options):
        _say(
            "nothing to run: --only matches only benchmarks this run leaves out "
            "(suite runs only with --suite; --no-load leaves out load)"
        )
        return 1
    output = args.output if args.output is not None or args.quick else Path("BENCHMARKS.md")
    # --output was checked as it was parsed; the default is checked here, before the run too.
    problem = None if output is None else report_path_problem(output)
    if problem is not None:
        _say(f"cannot write a report to {str(output)!r}: {problem}")
        return 1
    report = run_bench(options)
    print(render_text(report))
    if output is not None:
        write_report(render_markdown(report), output)
        print(f"\nwrote {output}")
    broken = [
        outcome.name
        for outcome in report.outcomes
        if outcome.status == "failed"
        or (isinstance(outcome, Result) and not all(check.ok for check in outcome.checks))
    ]
    return 1 if broken else 0
