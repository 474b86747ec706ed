"""The load test: hundreds of concurrent streaming clients against the four fakes.

The fakes get a fresh server process of their own (so its memory figures are not those of earlier
benchmarks); the load generator runs in the client process. Sequence: an identical warm-up load
(so buffers, arenas and caches exist before the first reading), reset, resident memory at start,
the measured load, the fakes' journals read back (every request must have completed), resident
memory at the end, a reset (what the per-test fixture does) and memory again, then one more
identical load and reset, and memory a last time (a leak keeps rising; the allocator plateaus).
Errors and transcripts are checked in all three loads; throughput and latency are the measured
one's.

Resident memory is the server process's own ``VmRSS`` from ``/proc/self/status`` (Linux); where
that file does not exist, the peak from ``getrusage`` is used and the report says so.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from fake_upstreams.registry import FAKES
from tools.bench.context import BenchContext
from tools.bench.core import Benchmark, Check, Outcome, Result, Target, median, register
from tools.bench.load_client import LoadJob, LoadStats
from tools.bench.machine import busy_seconds
from tools.bench.server_proc import ServerHandle, ServerPlan

MEMORY_TARGET = Target("<=", 1.1)
_KEY = "load-server"


def _percentile(values: Sequence[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(int(fraction * len(ordered)), len(ordered) - 1)]


def _server(context: BenchContext) -> ServerHandle:
    def start() -> tuple[ServerHandle, Callable[[], None]]:
        plan = ServerPlan(fakes={name: {} for name in FAKES}, baselines={}, cpu=context.cpus.server)
        handle = ServerHandle(plan)
        return handle, handle.close

    return context.shared(_KEY, start)


def load_test(context: BenchContext) -> Outcome:
    """Run the load and judge it: zero errors, exact transcripts, no memory growth."""
    options = context.options
    server = _server(context)
    job = LoadJob(
        ports=dict(server.fake_ports),
        clients=options.load_clients,
        seconds=options.load_seconds,
        words=options.load_words,
        chunk_delay=options.load_chunk_delay,
    )
    bound = job.seconds + job.timeout + 120.0
    warmed: LoadStats = context.run_job(job, timeout=bound)
    server.reset()
    start = server.memory()
    cpu_before, machine_before, parent_before = server.cpu(), busy_seconds(), time.process_time()
    stats: LoadStats = context.run_job(job, timeout=bound)
    server_cpu = server.cpu() - cpu_before
    machine_after, parent = busy_seconds(), time.process_time() - parent_before
    others = None
    if machine_before is not None and machine_after is not None:
        own = server_cpu + stats.client_cpu + parent
        others = max(machine_after - machine_before - own, 0.0) / stats.elapsed
    journal = server.journal()
    end = server.memory()
    server.reset()
    after_reset = server.memory()
    # The same load once more: memory that keeps rising round after round (with the per-test
    # reset between rounds) is a leak; memory that plateaus is the allocator's high-water mark.
    again: LoadStats = context.run_job(job, timeout=bound)
    server.reset()
    after_again = server.memory()
    context.release(_KEY)
    return _judge(
        context,
        job=job,
        stats=stats,
        rounds=(warmed, again),
        journal=journal,
        memory=(start, end, after_reset, after_again),
        server_cpu=server_cpu,
        others=others,
    )


def _judge(
    context: BenchContext,
    *,
    job: LoadJob,
    stats: LoadStats,
    rounds: tuple[LoadStats, LoadStats],
    journal: dict[str, dict[str, Any]],
    memory: tuple[dict[str, Any], ...],
    server_cpu: float,
    others: float | None,
) -> Result:
    start, end, after_reset, after_again = (int(reading["kib"]) / 1024 for reading in memory)
    warm_up, again = rounds
    entries = sum(int(summary["requests"]) for summary in journal.values())
    incomplete = {
        name: summary["outcomes"]
        for name, summary in journal.items()
        if set(summary["outcomes"]) - {"completed"}
    }
    every = (warm_up, stats, again)
    errors = sum(run.errors for run in every)
    text, data, cuts = (
        sum(getattr(run, field) for run in every)
        for field in ("text_mismatches", "byte_mismatches", "chunk_mismatches")
    )
    problems = [problem for run in every for problem in run.problems][:5]
    checks = (
        Check(
            "zero errors",
            errors == 0 and stats.ok > 0,
            f"{errors} errors in {sum(run.requests for run in every)} requests over the three "
            "loads; " + " | ".join(problems),
        ),
        Check(
            "every transcript byte-exact",
            text + data + cuts == 0,
            f"mismatches over the three loads: text {text}, bytes {data}, chunk boundaries {cuts}; "
            f"{sum(run.ok for run in every)} transcripts exact",
        ),
        Check(
            "every request completed on the server",
            not incomplete,
            "all completed" if not incomplete else f"outcomes: {incomplete}",
        ),
    )
    per_entry = (end - start) * 1024 / entries if entries else 0.0
    notes = (
        f"{job.clients} clients (peak {stats.peak_in_flight} streams in flight), "
        f"{job.seconds:g} s, {job.words} words per reply, {job.chunk_delay * 1000:g} ms between "
        "chunks, chunk plans: frames / inside UTF-8 / random",
        f"{stats.ok} streams completed ({stats.ok / stats.elapsed:.0f}/s), {stats.chunks} chunks, "
        f"{stats.body_bytes / 1e6:.1f} MB; server journal held {entries} entries at the end",
        f"latency p50 {median(stats.latencies) * 1000:.0f} ms, "
        f"p99 {_percentile(stats.latencies, 0.99) * 1000:.0f} ms; time to first byte p50 "
        f"{median(stats.first_byte) * 1000:.0f} ms, p99 "
        f"{_percentile(stats.first_byte, 0.99) * 1000:.0f} ms",
        f"CPU busy: server {server_cpu / stats.elapsed:.0%}, client "
        f"{stats.client_cpu / stats.elapsed:.0%} ({context.cpus.description}); other "
        "processes on the machine: "
        + ("unknown" if others is None else f"{others:.2f} CPUs busy during the measured load"),
        f"server RSS: start {start:.1f} MiB (after an identical warm-up load of "
        f"{warm_up.requests} streams and a reset), end {end:.1f} MiB (≈{per_entry:.2f} KiB per "
        f"journal entry kept), after the per-test reset {after_reset:.1f} MiB, after one more "
        f"identical load ({again.requests} streams, {again.errors} errors) and reset "
        f"{after_again:.1f} MiB; source: {memory[0]['source']}",
        "the journal keeps every request until a reset, by design (tests read it): growth at "
        "the end is mostly that; after a reset Python keeps some freed memory (allocator "
        "high-water mark), which must plateau from round to round — rising again would be a leak",
    )
    return Result(
        name="load",
        title=f"Load: {job.clients} streaming clients × {job.seconds:g} s, four fakes",
        unit="MiB RSS",
        ours=end,
        baseline=start,
        baseline_label="server RSS at start (after warm-up); ours = RSS at end, before reset",
        target=MEMORY_TARGET,
        checks=checks,
        notes=notes,
    )


register(Benchmark("load", "Load test (500 clients × 10 s)", "load", load_test, MEMORY_TARGET))
