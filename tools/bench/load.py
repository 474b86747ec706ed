"""The load test: hundreds of concurrent streaming clients against the four fakes.

The fakes get a fresh server process of their own (so its memory figures are not those of earlier
benchmarks); the load generator runs in the client process. Sequence: an identical warm-up load
(so buffers, arenas and caches exist before the first reading), reset, resident memory at start,
the measured load, resident memory before the reset, a reset (what the per-test fixture does) and
memory again, then one more identical load and reset, and memory a last time (a leak keeps
rising; the allocator plateaus). After every load, before its reset, the fakes' journals are read
back (every request must have completed). Reading allocates (the journal folds its log into
records), so it is done after each of the three loads alike: read after the measured load only,
the allocator's high-water mark it leaves sat in that one reading and not the others. Errors and
transcripts are checked in all three loads; throughput and latency are the measured one's.

Memory is judged on comparable states only, each read after the per-test reset (journal and
scripts cleared), i.e. what a test suite's server looks like between tests: the figure is RSS
after the measured load against RSS after the warm-up load (target ``<= 1.1``), and a check that
the repeat load does not raise it again beyond noise (a leak rises round after round; the
allocator's high-water mark plateaus). When the repeat does rise beyond the noise allowance, one
more identical load (the confirmation) tells the two apart: a leak rises again, while a one-off
step (the allocator keeping one more arena or heap region) does not. The reading taken right
after the measured load, before
the reset, is reported but not judged: the journal keeps every request of the load until a
reset, by design (tests read it), so that figure is retained-on-purpose memory, not growth.

Resident memory is the server process's own ``VmRSS`` from ``/proc/self/status`` (Linux); where
that file does not exist, the peak from ``getrusage`` is used and the report says so (a peak
never falls, so then the after-reset readings are upper bounds).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fake_upstreams.registry import FAKES
from tools.bench.context import BenchContext
from tools.bench.core import Benchmark, Check, Outcome, Result, Target, median, register
from tools.bench.load_client import LoadJob, LoadStats
from tools.bench.machine import busy_seconds
from tools.bench.server_proc import ServerHandle, ServerPlan

MEMORY_TARGET = Target("<=", 1.1)
#: One load's journal summaries, per fake (see ``ServerHandle.journal``).
Journals = dict[str, dict[str, Any]]
_KEY = "load-server"

#: How much RSS the repeat load may add over the measured one (both read after the per-test
#: reset) and still count as a plateau: the larger of these two. Why not zero: RSS moves in
#: whole pages and CPython hands memory back only in whole pymalloc arenas (1 MiB on 64-bit
#: builds since 3.10) and from the top of glibc's heaps, so one arena or one fragmented heap
#: region kept or released moves a reading by a MiB or two without anything having leaked.
#: The fraction scales that with the heap for bigger processes (3% of the ~85 MiB seen on a
#: full run is 2.6 MiB). Why not more: one round is ~5,000 streams, so the tolerance still
#: catches a leak of about half a KiB per stream — a fifth of what one journal entry costs —
#: in a single round (the notes print the exact per-stream floor of each run).
PLATEAU_SLACK_MIB = 2.0
PLATEAU_SLACK_FRACTION = 0.03


def plateau_slack(mib: float) -> float:
    """The noise allowed between two after-reset readings around ``mib`` MiB."""
    return max(PLATEAU_SLACK_MIB, PLATEAU_SLACK_FRACTION * mib)


@dataclass(frozen=True, slots=True)
class MemoryReadings:
    """The server's RSS in MiB at the four points of the load test."""

    #: After the warm-up load and a reset: the baseline.
    start: float
    #: Right after the measured load, before the reset (the journal still holds the load).
    before_reset: float
    #: After the measured load and a reset: ours, the state ``start`` was read in.
    after_reset: float
    #: After one more identical load and a reset.
    after_again: float
    source: str = "/proc/self/status VmRSS"
    #: After the confirmation load and a reset; only taken when the repeat load rose.
    after_confirm: float | None = None

    @classmethod
    def from_kib(cls, readings: Sequence[dict[str, Any]]) -> MemoryReadings:
        """From the server's ``memory()`` answers, in the order above (four, or five with the
        confirmation load's)."""
        start, before_reset, after_reset, after_again, *confirm = (
            int(reading["kib"]) / 1024 for reading in readings
        )
        source = str(readings[0]["source"])
        after_confirm = confirm[0] if confirm else None
        return cls(start, before_reset, after_reset, after_again, source, after_confirm)

    def repeat_rose(self) -> bool:
        """True if the repeat load raised RSS beyond the noise allowance."""
        return self.after_again - self.after_reset > plateau_slack(self.after_reset)


@dataclass(frozen=True, slots=True)
class MemoryVerdict:
    """What the load test says about memory: the judged pair, the plateau check, the notes."""

    ours: float
    baseline: float
    plateau: Check
    notes: tuple[str, ...]


def judge_memory(memory: MemoryReadings, *, entries: int, repeat_streams: int) -> MemoryVerdict:
    """Growth across the measured load (after reset vs after reset) and the repeat's plateau.

    ``entries`` is how many requests the journal held before the reset, ``repeat_streams`` how
    many streams the repeat load ran; both only feed the notes. A repeat that rose beyond the
    allowance still plateaus if the confirmation load (``after_confirm``) did not rise again.
    """
    rise = memory.after_again - memory.after_reset
    slack = plateau_slack(memory.after_reset)
    per_stream = rise * 1024 / repeat_streams if repeat_streams else float("nan")
    floor = slack * 1024 / repeat_streams if repeat_streams else float("nan")
    plateaus = not memory.repeat_rose()
    detail = (
        f"after the repeat load and reset {memory.after_again:.1f} MiB vs after the measured "
        f"load and reset {memory.after_reset:.1f} MiB: {rise:+.1f} MiB "
        f"({per_stream:+.2f} KiB per stream of the repeat); allowed noise "
        f"max({PLATEAU_SLACK_MIB:g} MiB, {PLATEAU_SLACK_FRACTION:.0%}) = {slack:.1f} MiB, "
        f"so a leak above ≈{floor:.2f} KiB per stream would show"
    )
    if not plateaus and memory.after_confirm is not None:
        again = memory.after_confirm - memory.after_again
        plateaus = again <= slack
        detail += (
            f"; it rose beyond that, so one more identical load was run: after it and its reset "
            f"{memory.after_confirm:.1f} MiB ({again:+.1f} MiB), "
            + (
                "not rising again: a one-off step of the allocator, not growth round after round"
                if plateaus
                else "rising again: growth round after round, a leak"
            )
        )
    plateau = Check("memory plateaus over a repeat load", plateaus, detail)
    per_entry = (memory.before_reset - memory.start) * 1024 / entries if entries else 0.0
    notes = (
        "server RSS, every reading after the per-test reset (journal and scripts cleared): "
        f"after the warm-up load {memory.start:.1f} MiB (baseline), after the measured load "
        f"{memory.after_reset:.1f} MiB (ours), after one more identical load "
        f"{memory.after_again:.1f} MiB"
        + (
            ""
            if memory.after_confirm is None
            else f", after the confirmation load {memory.after_confirm:.1f} MiB"
        )
        + f"; source: {memory.source}",
        f"not judged: RSS right after the measured load, before the reset, "
        f"{memory.before_reset:.1f} MiB with {entries} journal entries held "
        f"(≈{per_entry:.2f} KiB per entry, from before-reset minus baseline) — the journal "
        "keeps every request until a reset, by design (tests read it), so that is memory "
        "retained on purpose, not growth",
        "after a reset Python keeps some freed memory (the allocator's high-water mark), hence "
        "ours may sit a little above the baseline; it must plateau from round to round — "
        "rising again after the repeat load would be a leak",
    )
    return MemoryVerdict(
        ours=memory.after_reset, baseline=memory.start, plateau=plateau, notes=notes
    )


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
    warmed_journal = server.journal()
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
    before_reset = server.memory()
    server.reset()
    after_reset = server.memory()
    # The same load once more: memory that keeps rising round after round (with the per-test
    # reset between rounds) is a leak; memory that plateaus is the allocator's high-water mark.
    again: LoadStats = context.run_job(job, timeout=bound)
    again_journal = server.journal()
    server.reset()
    readings = [start, before_reset, after_reset, server.memory()]
    memory = MemoryReadings.from_kib(readings)
    confirm: tuple[LoadStats, Journals] | None = None
    if memory.repeat_rose():
        # Rising once is what the allocator does when it keeps one more arena or heap region;
        # a leak rises again. Only then is the 10 s of one more round spent to tell them apart.
        confirm = context.run_job(job, timeout=bound), server.journal()
        server.reset()
        memory = MemoryReadings.from_kib([*readings, server.memory()])
    context.release(_KEY)
    return judge(
        cpus=context.cpus.description,
        job=job,
        stats=stats,
        rounds=(warmed, again),
        journals=(warmed_journal, journal, again_journal),
        memory=memory,
        server_cpu=server_cpu,
        others=others,
        confirm=confirm,
    )


def judge(
    *,
    cpus: str,
    job: LoadJob,
    stats: LoadStats,
    rounds: tuple[LoadStats, LoadStats],
    journals: tuple[Journals, Journals, Journals],
    memory: MemoryReadings,
    server_cpu: float,
    others: float | None,
    confirm: tuple[LoadStats, Journals] | None = None,
) -> Result:
    """The load test's result from its measurements (``cpus`` describes the CPU pinning).

    ``journals`` are the fakes' journal summaries after the warm-up, measured and repeat loads;
    ``confirm`` the confirmation load's figures and journals, when one was run.
    """
    warm_up, again = rounds
    entries = sum(int(summary["requests"]) for summary in journals[1].values())
    loads = [
        ("warm-up", warm_up, journals[0]),
        ("measured", stats, journals[1]),
        ("repeat", again, journals[2]),
    ]
    if confirm is not None:
        loads.append(("confirmation", *confirm))
    incomplete = {
        f"{label} load, {name}": summary["outcomes"]
        for label, _, journal in loads
        for name, summary in journal.items()
        if set(summary["outcomes"]) - {"completed"}
    }
    every = tuple(run for _, run, _ in loads)
    all_loads = "the three loads" if len(loads) == 3 else f"the {len(loads)} loads"
    errors = sum(run.errors for run in every)
    text, data, cuts = (
        sum(getattr(run, field) for run in every)
        for field in ("text_mismatches", "byte_mismatches", "chunk_mismatches")
    )
    problems = [problem for run in every for problem in run.problems][:5]
    verdict = judge_memory(memory, entries=entries, repeat_streams=again.requests)
    checks = (
        Check(
            "zero errors",
            errors == 0 and stats.ok > 0,
            f"{errors} errors in {sum(run.requests for run in every)} requests over {all_loads}; "
            + " | ".join(problems),
        ),
        Check(
            "every transcript byte-exact",
            text + data + cuts == 0,
            f"mismatches over {all_loads}: text {text}, bytes {data}, chunk boundaries {cuts}; "
            f"{sum(run.ok for run in every)} transcripts exact",
        ),
        Check(
            "every request completed on the server",
            not incomplete,
            f"all completed, in {all_loads}" if not incomplete else f"outcomes: {incomplete}",
        ),
        verdict.plateau,
    )
    notes = (
        f"{job.clients} clients (peak {stats.peak_in_flight} streams in flight), "
        f"{job.seconds:g} s, {job.words} words per reply, {job.chunk_delay * 1000:g} ms between "
        "chunks, chunk plans: frames / inside UTF-8 / random",
        f"{stats.ok} streams completed ({stats.ok / stats.elapsed:.0f}/s), {stats.chunks} chunks, "
        f"{stats.body_bytes / 1e6:.1f} MB; warm-up {warm_up.requests} streams, repeat "
        f"{again.requests} streams ({again.errors} errors)"
        + ("" if confirm is None else f", confirmation {confirm[0].requests} streams"),
        f"latency p50 {median(stats.latencies) * 1000:.0f} ms, "
        f"p99 {_percentile(stats.latencies, 0.99) * 1000:.0f} ms; time to first byte p50 "
        f"{median(stats.first_byte) * 1000:.0f} ms, p99 "
        f"{_percentile(stats.first_byte, 0.99) * 1000:.0f} ms",
        f"CPU busy: server {server_cpu / stats.elapsed:.0%}, client "
        f"{stats.client_cpu / stats.elapsed:.0%} ({cpus}); other "
        "processes on the machine: "
        + ("unknown" if others is None else f"{others:.2f} CPUs busy during the measured load"),
        *verdict.notes,
    )
    return Result(
        name="load",
        title=f"Load: {job.clients} streaming clients × {job.seconds:g} s, four fakes; server "
        "RSS after vs before the measured load, both read after the per-test reset",
        unit="MiB RSS",
        ours=verdict.ours,
        baseline=verdict.baseline,
        baseline_label="server RSS after the warm-up load and the per-test reset; ours = RSS "
        "after the measured load and the per-test reset (same state: journal and scripts "
        "cleared; the before-reset reading is in the notes, not judged)",
        target=MEMORY_TARGET,
        checks=checks,
        notes=notes,
    )


register(Benchmark("load", "Load test (500 clients × 10 s)", "load", load_test, MEMORY_TARGET))
