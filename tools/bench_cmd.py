"""``tapedeck bench``: measure the harness against bare baselines and write BENCHMARKS.md.

Exit status 0 when every benchmark produced an honest figure (a missed target is a finding and
is reported, not an error); 1 when one failed or a pass/fail check (errors, transcripts) did not
hold.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from tools.bench import BenchOptions, Result, benchmarks, render_markdown, render_text, run_bench
from tools.bench.report import write_report

NAME = "bench"
HELP = "measure the fakes against bare aiohttp in the same run, load-test them, write BENCHMARKS.md"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quick",
        action="store_true",
        help="every benchmark tiny (seconds in total): keeps the code working, numbers mean "
        "nothing; writes no report unless --output is given",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="where to write the Markdown report (default: BENCHMARKS.md; none with --quick)",
    )
    parser.add_argument("--suite", action="store_true", help="also time the full pytest suite")
    parser.add_argument("--no-load", action="store_true", help="skip the load test")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="run only benchmarks whose name contains NAME (repeatable)",
    )
    parser.add_argument("--reps", type=int, help="measured runs per side (default 7)")
    parser.add_argument("--seconds", type=float, help="seconds per measured run (default 1.5)")
    parser.add_argument("--load-clients", type=int, help="concurrent clients (default 500)")
    parser.add_argument("--load-seconds", type=float, help="load duration (default 10)")
    parser.add_argument(
        "--wait-quiet",
        type=float,
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


def run(args: argparse.Namespace) -> int:
    if args.list:
        for benchmark in benchmarks():
            target = "" if benchmark.target is None else f"  target {benchmark.target}"
            print(f"{benchmark.name:18} [{benchmark.group}] {benchmark.title}{target}")
        return 0
    options = options_from(args)
    report = run_bench(options)
    print(render_text(report))
    output = args.output if args.output is not None or args.quick else Path("BENCHMARKS.md")
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
