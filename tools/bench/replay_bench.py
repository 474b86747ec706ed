"""Replay against plain vcrpy, end to end: ``replay-1000`` and ``replay-5000``.

End to end, both sides run the same client code (:func:`~tools.bench.cassette_client.drive`: a
``requests`` session POSTing each recorded request and reading the answer whole) in the client
process. Ours goes over loopback HTTP to a :class:`~cassettes.replay.ReplayServer` in the
cassette server process (its own CPU); vcrpy answers in-process, without a socket, from its
patched HTTP connection, which is how vcrpy users replay. Every answer is checked against the
recording on both sides.

vcrpy's cost per request grows with the cassette (it compares the request with every recorded
one until an unplayed match), so it is sampled: each run takes requests spread evenly over the
cassette, which keeps the mean scan position of a full replay; each run takes other ones.
"""

from __future__ import annotations

from collections.abc import Callable

from tools.bench.cassette_ab import Meter, interleave, spread_note
from tools.bench.cassette_client import VCR_MATCH_ON
from tools.bench.cassette_jobs import (
    IN_THREAD,
    VCRPY,
    ForgetJob,
    ReplayPassJob,
    Timing,
)
from tools.bench.cassette_server import CassetteServer
from tools.bench.cassettes import (
    CassetteSettings,
    cassette_file,
    declared,
    run_sample,
    settings,
)
from tools.bench.context import BenchContext
from tools.bench.core import Check, Outcome, Result, median, provide

_JOB_TIMEOUT = 900.0
_OURS_KEY = "replay-ours-by-size"


def _ours_by_size(context: BenchContext) -> dict[int, tuple[float, float]]:
    """Ours' median ms per request and server CPU ms per request, by cassette size, this run."""

    def start() -> tuple[dict[int, tuple[float, float]], Callable[[], None]]:
        return {}, lambda: None

    return context.shared(_OURS_KEY, start)


def replay(context: BenchContext, size: int, name: str) -> Outcome:
    """Replay a cassette of ``size`` interactions end to end, ours against vcrpy."""
    config = settings(context.options)
    path = cassette_file(context, size)
    client = context.client()
    server = CassetteServer(context.cpus.server)
    try:
        context.run_job(ForgetJob(), _JOB_TIMEOUT)
        base_url = server.replay(path)
        warm = tuple(range(min(config.warmup_requests, size)))
        ours_runs: list[Timing] = []
        vcrpy_runs: list[Timing] = []
        server_cpu: list[float] = []

        def ours(rep: int) -> float:
            indices = warm if rep < 0 else run_sample(size, config.ours_requests, rep, config.reps)
            server.reset(path)
            before = server.cpu()
            timing = context.run_job(ReplayPassJob(path, indices, base_url), _JOB_TIMEOUT)
            if rep >= 0:
                server_cpu.append((server.cpu() - before) / timing.count)
                ours_runs.append(timing)
            return float(timing.per_unit * 1000)

        def vcrpy(rep: int) -> float:
            wanted = config.vcrpy_requests(size)
            indices = warm if rep < 0 else run_sample(size, wanted, rep, config.reps)
            timing = context.run_job(ReplayPassJob(path, indices, VCRPY), _JOB_TIMEOUT)
            if rep >= 0:
                vcrpy_runs.append(timing)
            return float(timing.per_unit * 1000)

        meter = Meter([client.pid, server.pid])
        ours_ms, vcrpy_ms = interleave(config.reps, ours, vcrpy, meter)
        extra = _one_run_notes(context, path, size, config)
    finally:
        server.close()
        context.run_job(ForgetJob(), _JOB_TIMEOUT)
    server_ms = median(server_cpu) * 1000
    _ours_by_size(context)[size] = (median(ours_ms), server_ms)
    title, target = declared(name)
    replies = sum(t.count for t in ours_runs) + sum(t.count for t in vcrpy_runs)
    return Result(
        name=name,
        title=title,
        unit="ms/request",
        ours=median(ours_ms),
        baseline=median(vcrpy_ms),
        baseline_label=f"plain vcrpy (use_cassette, record_mode none, match_on "
        f"{', '.join(VCR_MATCH_ON)}), same client code, same file",
        target=target,
        ratio_kind="baseline/ours",
        ours_samples=tuple(ours_ms),
        baseline_samples=tuple(vcrpy_ms),
        checks=(
            Check(
                "every reply equals the recording, both sides",
                True,
                f"{replies} replies checked (status and body bytes)",
            ),
        ),
        notes=(
            *_method_notes(size, config),
            f"CPU per request: our replay server {server_ms:.3f} ms; client process: ours "
            f"{_cpu_ms(ours_runs):.3f} ms, vcrpy {_cpu_ms(vcrpy_runs):.3f} ms (vcrpy's work is "
            "all in the client)",
            spread_note(ours_ms, vcrpy_ms),
            meter.describe(),
            *extra,
            *_size_notes(context, size),
        ),
    )


def _one_run_notes(
    context: BenchContext, path: str, size: int, config: CassetteSettings
) -> tuple[str, ...]:
    """Two variants, one run each, for context (not in the ratio)."""
    raw = ("method", "path", "raw_body")
    vcrpy_sample = run_sample(size, config.vcrpy_requests(size), 0, config.reps)
    raw_job = ReplayPassJob(path, vcrpy_sample, VCRPY, raw)
    raw_run: Timing = context.run_job(raw_job, _JOB_TIMEOUT)
    ours_sample = run_sample(size, config.ours_requests, 0, config.reps)
    thread_job = ReplayPassJob(path, ours_sample, IN_THREAD, warm_up=config.warmup_requests)
    thread_run: Timing = context.run_job(thread_job, _JOB_TIMEOUT)
    return (
        f"one run with vcrpy matching {', '.join(raw)} instead (compares body bytes, cheaper "
        "on a mismatch: no JSON parsing and no diff of parsed bodies; stricter than ours, "
        f"which ignores JSON key order and spacing): {raw_run.per_unit * 1000:.1f} ms/request "
        f"on {raw_run.count} requests",
        f"one run with our ReplayServer in a thread of the client process instead (as `with "
        f"ReplayServer(...)` in a test): {thread_run.per_unit * 1000:.3f} ms/request on "
        f"{thread_run.count} requests",
    )


def _cpu_ms(runs: list[Timing]) -> float:
    return median(t.cpu / t.count for t in runs) * 1000


def _method_notes(size: int, config: CassetteSettings) -> tuple[str, ...]:
    ours_n, vcrpy_n = min(config.ours_requests, size), min(config.vcrpy_requests(size), size)
    return (
        f"cassette: {size:,} distinct CodeLinkAva POSTs (distinct prompts), SSE answers of 7 to "
        "16 recorded chunks, written by yamlio.save; both sides read the same file",
        "client: one requests.Session (keep-alive) in the client process, POST each recorded "
        "request, read the body with iter_content(4096), check status and bytes; ours: the "
        "ReplayServer (speed 0) in its own process over loopback HTTP; vcrpy: in-process, "
        "its patched connection answers without a socket (vcrpy scans the cassette twice per "
        "request: can_play_response_for, then play_response)",
        f"per run: ours {ours_n:,} requests, vcrpy {vcrpy_n} requests, each spread evenly over "
        f"the {size:,} interactions (a different spread each run: "
        f"{config.reps * vcrpy_n} vcrpy requests in all); warm-up run of "
        f"{config.warmup_requests} requests per side; interleaved runs, medians; the replay "
        "server is reset and vcrpy's cassette rewound before every run",
    )


def _size_notes(context: BenchContext, size: int) -> tuple[str, ...]:
    known = _ours_by_size(context)
    others = sorted(other for other in known if other != size)
    if not others:
        return ("our cost at the other cassette size: not measured in this run",)
    lines = []
    for other in others:
        wall, cpu = known[other]
        here_wall, here_cpu = known[size]
        lines.append(
            f"ours at {size:,} vs {other:,} interactions (same requests per run): "
            f"{here_wall:.3f} vs {wall:.3f} ms/request ({here_wall / wall:.2f}×), server CPU "
            f"{here_cpu:.3f} vs {cpu:.3f} ms/request ({here_cpu / cpu:.2f}×)"
        )
    return tuple(lines)


def _replay_small(context: BenchContext) -> Outcome:
    return replay(context, settings(context.options).small, "replay-1000")


def _replay_large(context: BenchContext) -> Outcome:
    return replay(context, settings(context.options).large, "replay-5000")


provide("replay-1000", _replay_small)
provide("replay-5000", _replay_large)
