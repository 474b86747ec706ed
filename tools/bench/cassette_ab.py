"""Ours against a baseline, interleaved, for the cassette benchmarks; and the load beside them.

The fakes' A/B runner (:mod:`tools.bench.abtest`) drives throughput jobs; the cassette benchmarks
time other things (a pass of requests, lookups, a file load, first bytes), so each side here is a
function that does one measured run and returns its figure. The order alternates (A B, B A, ...)
after one warm-up of each side, and medians are reported, as for the fakes.

Around every run the whole machine's busy CPU time is read (``/proc/stat``) and our own
processes' share taken out (this process, the client process and any server process), which
says how much other work ran meanwhile: the thing that makes a wall-clock figure unreliable.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from tools.bench.core import RatioKind, ab_order, ratio, spread
from tools.bench.machine import busy_seconds

#: One measured run: the run's number in, its figure (in the result's unit) out.
Measure = Callable[[int], float]


def process_cpu(pid: int) -> float | None:
    """CPU seconds (user + system) process ``pid`` has used, from ``/proc/<pid>/stat``."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # After the ")" that ends the command name: state is field 0, utime 11, stime 12.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


#: Runs shorter than this are left out of the per-run maximum: /proc/stat counts in ticks of
#: 10 ms, so a short run's share is mostly rounding.
_SHORTEST_RUN = 0.25


@dataclass
class Meter:
    """Other processes' CPU use around each run, in CPUs (2.0 = both of two cores busy)."""

    pids: Sequence[int]
    #: (other processes' CPU seconds, wall seconds) of every run.
    runs: list[tuple[float, float]] = field(default_factory=list)

    def run(self, measure: Measure, number: int) -> float:
        """Run ``measure`` once and note the other load meanwhile; returns its figure."""
        machine, own = busy_seconds(), self._own()
        started = time.perf_counter()
        figure = measure(number)
        wall = time.perf_counter() - started
        machine_after, own_after = busy_seconds(), self._own()
        if machine is not None and machine_after is not None and wall > 0:
            other = machine_after - machine - (own_after - own)
            self.runs.append((max(other, 0.0), wall))
        return figure

    def _own(self) -> float:
        children = (process_cpu(pid) for pid in self.pids)
        return time.process_time() + sum(cpu for cpu in children if cpu is not None)

    def describe(self) -> str:
        """One line for the report."""
        wall = sum(seconds for _, seconds in self.runs)
        if not wall:
            return "other processes' CPU use during the runs: unknown"
        overall = sum(other for other, _ in self.runs) / wall
        long_runs = [other / seconds for other, seconds in self.runs if seconds >= _SHORTEST_RUN]
        peak = f"; max {max(long_runs):.2f} in one run" if long_runs else ""
        return (
            f"other processes on the machine during the runs: {overall:.2f} CPUs busy over all "
            f"runs{peak}; more than ~0.1 makes wall-clock figures unreliable"
        )


def interleave(
    reps: int, ours: Measure, baseline: Measure, meter: Meter, *, warm_up: bool = True
) -> tuple[list[float], list[float]]:
    """One unrecorded warm-up run of each side, then ``reps`` runs of each, alternating order."""
    sides = (ours, baseline)
    if warm_up:
        for measure in sides:
            measure(-1)
    samples: tuple[list[float], list[float]] = ([], [])
    for rep in range(reps):
        for which in ab_order(rep):
            samples[which].append(meter.run(sides[which], rep))
    return samples


def spread_note(
    ours: Sequence[float], baseline: Sequence[float], kind: RatioKind = "baseline/ours"
) -> str:
    """Run-to-run spread of both sides, and the range of the ratio over adjacent pairs."""
    pairs = sorted(ratio(a, b, kind) for a, b in zip(ours, baseline, strict=True))
    pair_text = f"{pairs[0]:.3g} to {pairs[-1]:.3g}" if pairs else "none"
    return (
        f"run-to-run spread (max-min)/median: ours {spread(ours):.1%}, baseline "
        f"{spread(baseline):.1%}; {kind} of each adjacent pair: {pair_text}"
    )


def ms(values: Iterable[float]) -> tuple[float, ...]:
    """Seconds to milliseconds."""
    return tuple(value * 1000.0 for value in values)
