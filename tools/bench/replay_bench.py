"""Replay against plain vcrpy, end to end: ``replay-1000`` and ``replay-5000``, and the same with
vcrpy matching body bytes: ``replay-1000-raw`` and ``replay-5000-raw``.

End to end, both sides run the same client code (:func:`~tools.bench.cassette_client.drive`: a
``requests`` session POSTing each recorded request and reading the answer whole) in the client
process. Ours goes over loopback HTTP to a :class:`~cassettes.replay.ReplayServer` in the
cassette server process (its own CPU); vcrpy answers in-process, without a socket, from its
patched HTTP connection, which is how vcrpy users replay. Every answer is checked against the
recording on both sides.

vcrpy's cost per request grows with the cassette (it compares the request with every recorded
one until an unplayed match), so it is sampled: each run takes requests spread evenly over the
cassette, which keeps the mean scan position of a full replay; each run takes other ones.

vcrpy's matchers decide its cost. ``body`` (the plain rows) parses JSON bodies before comparing,
as our matcher ignores key order and spacing: the semantic equivalent of ours, and costly on each
of the many mismatches of a scan. ``raw_body`` (the ``-raw`` rows) compares bytes: stricter than
ours, several times cheaper for vcrpy, and closer to the figures the issue measured. Every row is
its own interleaved comparison, measured by :func:`replay`; the ``-raw`` rows also say how far
any server could go with this client (the client's own CPU per request).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

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
from tools.bench.core import Check, Outcome, Result, Target, median, provide

_JOB_TIMEOUT = 900.0
_OURS_KEY = "replay-ours-by-size"
#: vcrpy's matchers in the ``-raw`` rows: the body compared as bytes.
RAW_MATCH_ON = ("method", "path", "raw_body")
_Known = dict[tuple[tuple[str, ...], int], tuple[float, float]]


def _ours_by_size(context: BenchContext) -> _Known:
    """Ours' median ms per request and server CPU ms per request, by vcrpy's matchers (the row
    pair) and cassette size, this run."""

    def start() -> tuple[_Known, Callable[[], None]]:
        return {}, lambda: None

    return context.shared(_OURS_KEY, start)


def replay(
    context: BenchContext, size: int, name: str, match_on: tuple[str, ...] = VCR_MATCH_ON
) -> Outcome:
    """Replay a cassette of ``size`` interactions end to end, ours against vcrpy matching on
    ``match_on``."""
    config = settings(context.options)
    raw_body = "raw_body" in match_on
    wanted = config.vcrpy_requests(size, raw_body=raw_body)
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
            indices = warm if rep < 0 else run_sample(size, wanted, rep, config.reps)
            timing = context.run_job(ReplayPassJob(path, indices, VCRPY, match_on), _JOB_TIMEOUT)
            if rep >= 0:
                vcrpy_runs.append(timing)
            return float(timing.per_unit * 1000)

        meter = Meter([client.pid, server.pid])
        ours_ms, vcrpy_ms = interleave(config.reps, ours, vcrpy, meter)
        extra = () if raw_body else (_in_thread_note(context, path, size, config),)
    finally:
        server.close()
        context.run_job(ForgetJob(), _JOB_TIMEOUT)
    server_ms = median(server_cpu) * 1000
    _ours_by_size(context)[match_on, size] = (median(ours_ms), server_ms)
    title, target = declared(name)
    floor = _floor_note(ours_runs, median(ours_ms), median(vcrpy_ms), target)
    replies = sum(t.count for t in ours_runs) + sum(t.count for t in vcrpy_runs)
    return Result.of_samples(
        ours_ms,
        vcrpy_ms,
        name=name,
        title=title,
        unit="ms/request",
        baseline_label=f"plain vcrpy (use_cassette, record_mode none, match_on "
        f"{', '.join(match_on)}), same client code, same file",
        target=target,
        ratio_kind="baseline/ours",
        checks=(
            Check(
                "every reply equals the recording, both sides",
                True,
                f"{replies} replies checked (status and body bytes)",
            ),
        ),
        notes=(
            _matcher_note(match_on),
            *_method_notes(size, config, wanted),
            f"CPU per request: our replay server {server_ms:.3f} ms; client process: ours "
            f"{_cpu_ms(ours_runs):.3f} ms, vcrpy {_cpu_ms(vcrpy_runs):.3f} ms (vcrpy's work is "
            "all in the client)",
            *((floor,) if raw_body else ()),
            spread_note(ours_ms, vcrpy_ms),
            meter.describe(),
            *extra,
            *_size_notes(context, match_on, size),
        ),
    )


def _in_thread_note(context: BenchContext, path: str, size: int, config: CassetteSettings) -> str:
    """Our server in a thread of the client process, one run, for context (not in the ratio)."""
    ours_sample = run_sample(size, config.ours_requests, 0, config.reps)
    thread_job = ReplayPassJob(path, ours_sample, IN_THREAD, warm_up=config.warmup_requests)
    thread_run: Timing = context.run_job(thread_job, _JOB_TIMEOUT)
    return (
        f"one run with our ReplayServer in a thread of the client process instead (as `with "
        f"ReplayServer(...)` in a test): {thread_run.per_unit * 1000:.3f} ms/request on "
        f"{thread_run.count} requests"
    )


#: What the issue measured, to set beside either row's baseline (it names no matchers).
_ISSUE = "the issue measured vcrpy 9.4 at 10 ms per request at 1,000 interactions, 53 ms at 5,000"


def _matcher_note(match_on: Sequence[str]) -> str:
    """Why vcrpy matches on ``match_on`` in this row, and what it costs vcrpy."""
    matchers = ", ".join(match_on)
    if "raw_body" not in match_on:
        return (
            f"vcrpy matches on {matchers}: body parses both JSON bodies before comparing, so it "
            "ignores key order and spacing as ours does (canonical JSON): the semantic "
            "equivalent of our matcher; on each mismatch of its scan it also re-serialises both "
            "parsed bodies, indented, and diffs them, which makes it costly (the -raw rows "
            f"match on raw_body instead); {_ISSUE}"
        )
    return (
        f"vcrpy matches on {matchers}: compares body bytes, cheaper on a mismatch (no JSON "
        "parsing; the diff it builds is of two one-line texts); stricter than ours, which "
        "ignores JSON key order and spacing (body, in the rows without -raw, is the semantic "
        f"equivalent); {_ISSUE}"
    )


def _floor_note(
    ours_runs: list[Timing], ours_ms: float, vcrpy_ms: float, target: Target | None
) -> str:
    """How much faster than vcrpy any server could make ours with this client: one request
    costs the client process at least its own CPU time, whatever answers it."""
    client_ms = _cpu_ms(ours_runs)
    cap = vcrpy_ms / client_ms if client_ms else float("nan")
    verdict = ""
    if target is not None and target.op == ">=":
        needed = vcrpy_ms / target.value
        left = needed - client_ms
        room = (
            f"{left:.3f} ms beyond the client's own CPU for the server and the loopback round trip"
            if left >= 0
            else "less than the client's own CPU: out of reach of any server with this client"
        )
        verdict = f"; target {target} needs ours at {needed:.3f} ms/request or less, {room}"
    return (
        f"floor, from these runs: on our side the client process alone spends {client_ms:.3f} "
        "ms of CPU per request (requests sending the POST, parsing the reply, decoding the "
        "chunked body, checking it; measured as its CPU time over the timed runs), so even a "
        f"server costing nothing would leave ours at {client_ms:.3f} ms/request or more; "
        f"vcrpy takes {vcrpy_ms:.2f} ms/request, so the ratio cannot exceed {vcrpy_ms:.2f} / "
        f"{client_ms:.3f} = {cap:.1f}×{verdict} (ours takes {ours_ms:.3f} ms/request, "
        f"{client_ms / ours_ms:.0%} of it the client's CPU)"
    )


def _cpu_ms(runs: list[Timing]) -> float:
    return median(t.cpu / t.count for t in runs) * 1000


def _method_notes(size: int, config: CassetteSettings, wanted: int) -> tuple[str, ...]:
    ours_n, vcrpy_n = min(config.ours_requests, size), min(wanted, size)
    return (
        f"cassette: {size:,} distinct CodeLinkAva POSTs (distinct prompts), SSE answers of 7 to "
        "16 recorded chunks, written by yamlio.save; both sides read the same file",
        "client: one requests.Session (keep-alive, trust_env off: no per-request reading of "
        "proxy variables and ~/.netrc) in the client process, POST each recorded request, read "
        "the body with iter_content(4096), check status and bytes; ours: the "
        "ReplayServer (speed 0) in its own process over loopback HTTP; vcrpy: in-process, "
        "its patched connection answers without a socket (vcrpy scans the cassette twice per "
        "request: can_play_response_for, then play_response)",
        f"per run: ours {ours_n:,} requests, vcrpy {vcrpy_n} requests, each spread evenly over "
        f"the {size:,} interactions (a different spread each run: "
        f"{config.reps * vcrpy_n} vcrpy requests in all); warm-up run of "
        f"{config.warmup_requests} requests per side; interleaved runs, medians; the replay "
        "server is reset and vcrpy's cassette rewound before every run",
    )


def _size_notes(context: BenchContext, match_on: tuple[str, ...], size: int) -> tuple[str, ...]:
    """Ours here against ours at the other size, in the same pair of rows."""
    known = _ours_by_size(context)
    others = sorted(other for row, other in known if row == match_on and other != size)
    if not others:
        return ("our cost at the other cassette size: not measured in this run",)
    lines = []
    for other in others:
        wall, cpu = known[match_on, other]
        here_wall, here_cpu = known[match_on, size]
        lines.append(
            f"ours at {size:,} vs {other:,} interactions (same requests per run): "
            f"{here_wall:.3f} vs {wall:.3f} ms/request ({here_wall / wall:.2f}×), server CPU "
            f"{here_cpu:.3f} vs {cpu:.3f} ms/request ({here_cpu / cpu:.2f}×)"
        )
    return tuple(lines)


@dataclass(frozen=True, slots=True)
class _Row:
    """One replay row: its name, the larger cassette or the smaller, vcrpy's matchers."""

    name: str
    large: bool
    match_on: tuple[str, ...]

    def __call__(self, context: BenchContext) -> Outcome:
        config = settings(context.options)
        size = config.large if self.large else config.small
        return replay(context, size, self.name, self.match_on)


ROWS = (
    _Row("replay-1000", False, VCR_MATCH_ON),
    _Row("replay-5000", True, VCR_MATCH_ON),
    _Row("replay-1000-raw", False, RAW_MATCH_ON),
    _Row("replay-5000-raw", True, RAW_MATCH_ON),
)

for _row in ROWS:
    provide(_row.name, _row)
