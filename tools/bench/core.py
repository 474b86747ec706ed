"""What a benchmark is and what it returns: results, targets, ratios, the registry.

Every figure Tapedeck publishes is a ratio to a baseline measured in the same run, on the same
machine, with the same client. A :class:`Result` carries both absolute numbers, the ratio, the
target and the samples behind the medians, so a report can always show where a number came from.

A benchmark whose subject does not exist yet returns :class:`Unavailable` (never a made-up
number); one that broke returns :class:`Failed` with the reason.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from tools.bench.context import BenchContext

#: How the ratio is formed: ``ours/baseline`` (throughputs, times) or ``baseline/ours`` ("N×
#: faster" for our time against a baseline's time).
RatioKind = Literal["ours/baseline", "baseline/ours"]


@dataclass(frozen=True, slots=True)
class Target:
    """A bound on a ratio, e.g. ``Target(">=", 0.9)``."""

    op: Literal[">=", "<="]
    value: float

    def met(self, ratio: float) -> bool:
        return ratio >= self.value if self.op == ">=" else ratio <= self.value

    def __str__(self) -> str:
        return f"{self.op} {self.value:g}"


@dataclass(frozen=True, slots=True)
class Check:
    """A pass/fail condition that is not a ratio (zero errors, byte-exact transcripts)."""

    name: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Result:
    """One measured figure: ours against the baseline, both in ``unit``."""

    name: str
    title: str
    unit: str
    ours: float
    baseline: float
    baseline_label: str
    target: Target | None = None
    ratio_kind: RatioKind = "ours/baseline"
    ours_samples: tuple[float, ...] = ()
    baseline_samples: tuple[float, ...] = ()
    checks: tuple[Check, ...] = ()
    #: Extra lines for the report: server CPU per unit, who was the bottleneck, sizes.
    notes: tuple[str, ...] = ()

    @classmethod
    def of_samples(
        cls,
        ours_samples: Iterable[float],
        baseline_samples: Iterable[float],
        *,
        name: str,
        title: str,
        unit: str,
        baseline_label: str,
        target: Target | None = None,
        ratio_kind: RatioKind = "ours/baseline",
        checks: tuple[Check, ...] = (),
        notes: tuple[str, ...] = (),
    ) -> Result:
        """The usual result: each side's figure is the median of its samples, kept beside it."""
        ours, base = tuple(ours_samples), tuple(baseline_samples)
        return cls(
            name,
            title,
            unit,
            median(ours),
            median(base),
            baseline_label,
            target,
            ratio_kind,
            ours,
            base,
            checks,
            notes,
        )

    @property
    def ratio(self) -> float:
        return ratio(self.ours, self.baseline, self.ratio_kind)

    @property
    def status(self) -> Literal["met", "missed", "no target"]:
        if not all(check.ok for check in self.checks):
            return "missed"
        if self.target is None:
            return "no target"
        return "met" if self.target.met(self.ratio) else "missed"


@dataclass(frozen=True, slots=True)
class Unavailable:
    """The subject of a benchmark is not built yet: reported as such, never as a number."""

    name: str
    title: str
    reason: str
    target: Target | None = None
    status: Literal["not available yet"] = "not available yet"


@dataclass(frozen=True, slots=True)
class Failed:
    """The benchmark could not produce an honest number (errors, wrong bytes, a crash)."""

    name: str
    title: str
    reason: str
    target: Target | None = None
    status: Literal["failed"] = "failed"


Outcome = Result | Unavailable | Failed


@dataclass(frozen=True, slots=True)
class Benchmark:
    """A registered benchmark: ``run(context)`` measures and returns one outcome.

    ``group`` decides when it runs: ``"fakes"`` and ``"cassettes"`` always, ``"load"`` unless
    skipped, ``"suite"`` only when asked for (it runs the whole pytest suite).
    """

    name: str
    title: str
    group: Literal["fakes", "cassettes", "load", "suite"]
    run: Callable[[BenchContext], Outcome]
    target: Target | None = None
    tags: frozenset[str] = field(default_factory=frozenset)


_REGISTRY: dict[str, Benchmark] = {}


def register(benchmark: Benchmark) -> Benchmark:
    """Add a benchmark (names are unique; registering a name twice is a bug)."""
    if benchmark.name in _REGISTRY:
        raise ValueError(f"benchmark {benchmark.name!r} is registered twice")
    _REGISTRY[benchmark.name] = benchmark
    return benchmark


def provide(name: str, run: Callable[[BenchContext], Outcome]) -> Benchmark:
    """Give a declared benchmark its measurement (e.g. a cassette benchmark once its subject
    exists). The name, title, group and target stay as declared, so reports stay comparable."""
    if name not in _REGISTRY:
        raise KeyError(f"no benchmark named {name!r} is declared")
    benchmark = replace(_REGISTRY[name], run=run)
    _REGISTRY[name] = benchmark
    return benchmark


def registered() -> tuple[Benchmark, ...]:
    """Every registered benchmark, in registration order."""
    return tuple(_REGISTRY.values())


def ratio(ours: float, baseline: float, kind: RatioKind = "ours/baseline") -> float:
    """``ours / baseline`` (or the inverse); ``nan`` when the denominator is zero."""
    numerator, denominator = (ours, baseline) if kind == "ours/baseline" else (baseline, ours)
    return numerator / denominator if denominator else float("nan")


def median(samples: Iterable[float]) -> float:
    """The median, or ``nan`` for no samples."""
    values = list(samples)
    return statistics.median(values) if values else float("nan")


def spread(samples: Sequence[float]) -> float:
    """(max - min) / median: how much repetitions disagreed, as a fraction."""
    if len(samples) < 2:
        return 0.0
    middle = median(samples)
    return (max(samples) - min(samples)) / middle if middle else float("nan")


def ab_order(rep: int) -> tuple[int, int]:
    """Which side runs first in measured run ``rep``: 0 is ours, 1 the baseline.

    Alternating, so that neither side always runs first, on the warmer caches or into load that
    drifts over the run.
    """
    return (0, 1) if rep % 2 == 0 else (1, 0)
