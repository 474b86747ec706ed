"""Ours against the baseline, interleaved: warm up both, then A B, B A, A B, ... and medians.

Interleaving spreads slow drifts of the machine (frequency, caches, a noisy neighbour) over both
subjects instead of charging them to whichever ran last. Before every run the fakes' journals and
scripts are reset, as the per-test fixture does between tests, so a run never pays for the
history of the runs before it. Around every run the server process's CPU time is read, which
gives the cost per unit on the server (the figure that does not depend on who was the bottleneck).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from providers.errors import TapedeckError
from tools.bench.context import BenchContext
from tools.bench.core import Check, Result, Target, ab_order, median, spread
from tools.bench.jobs import ThroughputJob, ThroughputSample
from tools.bench.machine import busy_seconds
from tools.bench.server_proc import ServerHandle

#: Extracts the figure of merit (units per second) from one sample.
Rate = Callable[[ThroughputSample], float]
#: Extracts the units of work (events, bytes, replies) from one sample.
Units = Callable[[ThroughputSample], float]


@dataclass
class Side:
    """Every measured run of one subject."""

    samples: list[ThroughputSample] = field(default_factory=list)
    server_cpu: list[float] = field(default_factory=list)
    #: CPU seconds used by everything else on the machine during each run (None: unknown).
    other_cpu: list[float | None] = field(default_factory=list)


def interleave(
    context: BenchContext, server: ServerHandle, ours: ThroughputJob, baseline: ThroughputJob
) -> tuple[Side, Side]:
    """Warm up each subject once, then ``reps`` measured runs of each, alternating the order."""
    options = context.options
    for job in (ours, baseline):
        _run(context, server, replace(job, duration=options.warmup_seconds))
    sides = (Side(), Side())
    for rep in range(options.reps):
        for which in ab_order(rep):
            job = (ours, baseline)[which]
            sample, cpu, other = _run(context, server, job)
            sides[which].samples.append(sample)
            sides[which].server_cpu.append(cpu)
            sides[which].other_cpu.append(other)
    return sides


def _run(
    context: BenchContext, server: ServerHandle, job: ThroughputJob
) -> tuple[ThroughputSample, float, float | None]:
    """One run: (client's sample, server CPU seconds, other processes' CPU seconds)."""
    server.reset()
    machine_before, parent_before = busy_seconds(), time.process_time()
    before = server.cpu()
    sample: ThroughputSample = context.run_job(job, timeout=job.duration + 120.0)
    cpu = server.cpu() - before
    machine_after, parent = busy_seconds(), time.process_time() - parent_before
    other = None
    if machine_before is not None and machine_after is not None:
        other = max(machine_after - machine_before - cpu - sample.client_cpu - parent, 0.0)
    if sample.error_count:
        raise TapedeckError(
            f"{sample.error_count} failed request(s) on port {job.port}; first: "
            + " | ".join(sample.errors)
        )
    if not sample.replies:
        raise TapedeckError(f"no reply completed on port {job.port} in {job.duration:g} s")
    return sample, cpu, other


def same_reply_check(ours: tuple[bytes, ...] | None, baseline: tuple[bytes, ...] | None) -> Check:
    """Both servers must write the very same chunks, or the comparison means nothing."""
    if ours is None or baseline is None:
        return Check("same chunks from fake and baseline", False, "first reply not kept")
    if ours == baseline:
        return Check(
            "same chunks from fake and baseline",
            True,
            f"{len(ours)} chunks, {sum(map(len, ours))} bytes, identical",
        )
    return Check(
        "same chunks from fake and baseline",
        False,
        f"fake sent {len(ours)} chunks / {sum(map(len, ours))} bytes, "
        f"baseline {len(baseline)} / {sum(map(len, baseline))}",
    )


def summarise(
    *,
    name: str,
    title: str,
    unit: str,
    unit_name: str,
    sides: tuple[Side, Side],
    rate: Rate,
    units: Units,
    baseline_label: str,
    target: Target | None,
    checks: tuple[Check, ...] = (),
    notes: tuple[str, ...] = (),
) -> Result:
    """Medians of both sides, plus server CPU per unit and utilisations as notes."""
    ours, base = sides
    ours_rates = tuple(rate(sample) for sample in ours.samples)
    base_rates = tuple(rate(sample) for sample in base.samples)
    ours_cost = _cpu_per_unit(ours, units)
    base_cost = _cpu_per_unit(base, units)
    lines = [
        f"server CPU per {unit_name}: ours {ours_cost:.2f} µs, baseline {base_cost:.2f} µs "
        f"(ours costs {ours_cost / base_cost:.2f}× the baseline)"
        if base_cost
        else "server CPU per unit: not measurable",
        _utilisation("ours", ours),
        _utilisation("baseline", base),
        f"run-to-run spread (max-min)/median: ours {spread(ours_rates):.1%}, "
        f"baseline {spread(base_rates):.1%}; ours/baseline of each adjacent pair: "
        f"{_pairs(ours_rates, base_rates)}",
        _others(ours, base),
        *notes,
    ]
    return Result.of_samples(
        ours_rates,
        base_rates,
        name=name,
        title=title,
        unit=unit,
        baseline_label=baseline_label,
        target=target,
        checks=checks,
        notes=tuple(lines),
    )


def _cpu_per_unit(side: Side, units: Units) -> float:
    """Median over runs of server CPU µs per unit of work."""
    costs = [
        cpu / units(sample) * 1e6
        for cpu, sample in zip(side.server_cpu, side.samples, strict=True)
        if units(sample)
    ]
    return median(costs)


def _utilisation(label: str, side: Side) -> str:
    server = median(
        cpu / sample.elapsed for cpu, sample in zip(side.server_cpu, side.samples, strict=True)
    )
    client = median(sample.client_cpu / sample.elapsed for sample in side.samples)
    verdict = ""
    if client > 0.9 and server < 0.85:
        verdict = " — client-bound: the ratio understates the server's cost, see CPU per unit"
    elif server > 0.9:
        verdict = " — server-bound"
    return f"CPU busy, {label}: server {server:.0%}, client {client:.0%}{verdict}"


def _pairs(ours: tuple[float, ...], base: tuple[float, ...]) -> str:
    ratios = sorted(a / b for a, b in zip(ours, base, strict=True) if b)
    if not ratios:
        return "none"
    return f"{ratios[0]:.2f} to {ratios[-1]:.2f} (median {median(ratios):.2f})"


def _others(ours: Side, base: Side) -> str:
    """How much CPU other processes took while we measured, in CPUs (2.0 = both of 2 cores)."""
    shares = [
        other / sample.elapsed
        for side in (ours, base)
        for other, sample in zip(side.other_cpu, side.samples, strict=True)
        if other is not None
    ]
    if not shares:
        return "other processes' CPU use during the runs: unknown"
    return (
        f"other processes on the machine during the runs: median {median(shares):.2f} CPUs busy "
        f"(max {max(shares):.2f}); more than ~0.1 makes wall-clock figures unreliable"
    )
