"""``tapedeck bench``: the harness measured against bare baselines, in the same run.

    >>> from tools.bench import BenchOptions, run_bench, render_markdown
    >>> report = run_bench(BenchOptions.quick_mode())          # doctest: +SKIP
    >>> print(render_markdown(report))                         # doctest: +SKIP

Modules: :mod:`~tools.bench.core` (results, targets, the registry), :mod:`~tools.bench.runner`
(runs what is registered), :mod:`~tools.bench.report` (terminal table, ``BENCHMARKS.md``); the
benchmarks themselves in :mod:`~tools.bench.fakes`, :mod:`~tools.bench.fixtures`,
:mod:`~tools.bench.load`, :mod:`~tools.bench.suite`, and the cassette benchmarks declared in
:mod:`~tools.bench.cassettes` and measured by its sibling modules (replay, lookup, load, proxy).
"""

from tools.bench.context import BenchContext, BenchOptions
from tools.bench.core import (
    Benchmark,
    Check,
    Failed,
    Outcome,
    Result,
    Target,
    Unavailable,
    provide,
    register,
    registered,
)
from tools.bench.report import render_markdown, render_text, write_report
from tools.bench.runner import BenchReport, benchmarks, run_bench, selected

__all__ = [
    "BenchContext",
    "BenchOptions",
    "BenchReport",
    "Benchmark",
    "Check",
    "Failed",
    "Outcome",
    "Result",
    "Target",
    "Unavailable",
    "benchmarks",
    "provide",
    "register",
    "registered",
    "render_markdown",
    "render_text",
    "run_bench",
    "selected",
    "write_report",
]
