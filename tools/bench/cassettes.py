"""The cassette benchmarks (issue 4's record/replay), declared with their targets.

Each is declared here with its title and target and measured by a module listed after this one
in :data:`tools.bench.runner.MODULES`, which hands its function over with
:func:`~tools.bench.core.provide`: :mod:`~tools.bench.replay_bench` (replay),
:mod:`~tools.bench.lookup_bench` (lookup alone), :mod:`~tools.bench.cassette_loading` (load)
and :mod:`~tools.bench.proxy_bench` (first byte through the recording proxy). A declared
benchmark nobody provides reports "not available yet" with the reason; it never prints a number.
The measurements follow the fakes' method: the same client for both sides (``requests`` with
keep-alive), warm-up, interleaved repetitions, medians, absolute numbers in the result, our
server in its own process.

What each one compares, from the issue:

- ``replay-1000`` / ``replay-5000``: replay of a cassette of that many interactions, end to end,
  ours against plain vcrpy on the same file; vcrpy is sampled. Ratio ``baseline/ours``
  (× faster): ≥ 20 at 1,000, ≥ 100 at 5,000; ours should not depend on the cassette size.
  vcrpy matches on ``body`` there, the semantic equivalent of our matcher.
- ``replay-1000-raw`` / ``replay-5000-raw``: the same with vcrpy matching ``raw_body`` (body
  bytes), which is cheaper per request for vcrpy and measures close to the issue's figures;
  same targets.
- ``replay-lookup``: the request-lookup cost alone, index against vcrpy's scan (× faster; the
  issue sets no target for it).
- ``cassette-load``: loading a cassette against vcrpy's loader on the same file, ≤ 1.0×.
- ``proxy-ttfb``: time to first byte through the recording proxy against direct, ≤ 1.1×, with
  an upstream answering after a realistic delay; ``proxy-ttfb-0ms`` the same with an upstream
  answering at once (no target: it shows the proxy's own cost, see its notes).

Shared here: the sizes each mode uses (:func:`settings`) and the generated cassette files
(:func:`cassette_file`), written once per run into a temporary directory.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass

from tools.bench import cassette_gen
from tools.bench.context import BenchContext, BenchOptions
from tools.bench.core import Benchmark, Outcome, Target, Unavailable, register

_REPLAY = "the replay server and its request index (issue 4)"
_LOADER = "the cassette loader (issue 4)"
_PROXY = "the recording proxy (issue 4)"
#: The upstream's first-byte delay for the proxy-ttfb row: a live chat API over the internet
#: answers in tens to hundreds of milliseconds; 30 ms is at the quick end of that.
LATENCY_MS = 30.0


def _pending(
    name: str, title: str, subject: str, target: Target | None
) -> Callable[[BenchContext], Outcome]:
    def run(context: BenchContext) -> Outcome:
        return Unavailable(name, title, f"{subject} is not built yet", target)

    return run


#: name, title, subject, target (the issue sets none for the lookup: it is reported for insight)
HOOKS: tuple[tuple[str, str, str, Target | None], ...] = (
    ("replay-1000", "Replay, 1,000 interactions: × faster than vcrpy", _REPLAY, Target(">=", 20)),
    ("replay-5000", "Replay, 5,000 interactions: × faster than vcrpy", _REPLAY, Target(">=", 100)),
    (
        "replay-1000-raw",
        "Replay, 1,000 interactions: × faster than vcrpy matching raw_body",
        _REPLAY,
        Target(">=", 20),
    ),
    (
        "replay-5000-raw",
        "Replay, 5,000 interactions: × faster than vcrpy matching raw_body",
        _REPLAY,
        Target(">=", 100),
    ),
    ("replay-lookup", "Request lookup alone: × faster than vcrpy's scan", _REPLAY, None),
    (
        "cassette-load",
        "Cassette load time vs vcrpy's loader, 5,000 interactions",
        _LOADER,
        Target("<=", 1.0),
    ),
    (
        "proxy-ttfb",
        f"Time to first byte through the recording proxy vs direct, upstream at {LATENCY_MS:g} ms",
        _PROXY,
        Target("<=", 1.1),
    ),
    (
        "proxy-ttfb-0ms",
        "Time to first byte through the recording proxy vs direct, upstream at 0 ms",
        _PROXY,
        None,
    ),
)

for _name, _title, _subject, _target in HOOKS:
    register(
        Benchmark(_name, _title, "cassettes", _pending(_name, _title, _subject, _target), _target)
    )


def declared(name: str) -> tuple[str, Target | None]:
    """The title and target a cassette benchmark was declared with."""
    for hook, title, _subject, target in HOOKS:
        if hook == name:
            return title, target
    raise KeyError(name)


@dataclass(frozen=True, slots=True)
class CassetteSettings:
    """Sizes of the cassette benchmarks for one mode (full or quick)."""

    #: Interactions of the two replayed cassettes (the issue's 1,000 and 5,000).
    small: int
    large: int
    #: Requests per measured run: ours replays up to this many, spread over the cassette.
    ours_requests: int
    #: vcrpy's sample per run, by cassette size: its cost per request grows with the cassette.
    #: With the ``body`` matcher, then with ``raw_body`` (cheaper per request, so more requests).
    vcrpy_requests_small: int
    vcrpy_requests_large: int
    vcrpy_raw_requests_small: int
    vcrpy_raw_requests_large: int
    #: Requests of the unmeasured warm-up run of each side.
    warmup_requests: int
    #: First-byte timings per run and side.
    ttfb_requests: int
    #: Measured runs of each side (the bench's ``reps``).
    reps: int

    def vcrpy_requests(self, size: int, *, raw_body: bool = False) -> int:
        if raw_body:
            small, large = self.vcrpy_raw_requests_small, self.vcrpy_raw_requests_large
        else:
            small, large = self.vcrpy_requests_small, self.vcrpy_requests_large
        return small if size <= self.small else large


def settings(options: BenchOptions) -> CassetteSettings:
    """Full sizes, or tiny ones in quick mode (numbers meaningless, code exercised)."""
    if options.quick:
        return CassetteSettings(
            small=20,
            large=40,
            ours_requests=40,
            vcrpy_requests_small=3,
            vcrpy_requests_large=3,
            vcrpy_raw_requests_small=5,
            vcrpy_raw_requests_large=4,
            warmup_requests=2,
            ttfb_requests=3,
            reps=options.reps,
        )
    # vcrpy costs about 60 ms per request at 1,000 interactions and 300 ms at 5,000 with the
    # body matcher, 13 and 65 ms with raw_body: these samples keep each of its runs to 1.5 to
    # 3.5 s (ours: 1,000 requests, about 1 s).
    return CassetteSettings(
        small=1000,
        large=5000,
        ours_requests=1000,
        vcrpy_requests_small=40,
        vcrpy_requests_large=12,
        vcrpy_raw_requests_small=120,
        vcrpy_raw_requests_large=25,
        warmup_requests=20,
        ttfb_requests=30,
        reps=options.reps,
    )


def run_sample(size: int, wanted: int, rep: int, reps: int) -> tuple[int, ...]:
    """The interactions run ``rep`` of ``reps`` asks for: ``wanted`` of ``size``, spread evenly,
    shifted within their strides from run to run (the warm-up, ``rep`` -1, takes the middle)."""
    phase = (rep + 0.5) / reps if rep >= 0 else 0.5
    return cassette_gen.spread_sample(size, wanted, phase)


class _Files:
    def __init__(self) -> None:
        self.directory = tempfile.TemporaryDirectory(prefix="tapedeck-bench-cassettes-")
        self.paths: dict[int, str] = {}

    def path(self, size: int) -> str:
        if size not in self.paths:
            self.paths[size] = cassette_gen.write(size, self.directory.name)
        return self.paths[size]


def cassette_file(context: BenchContext, size: int) -> str:
    """The generated cassette of ``size`` interactions (written on first use, removed at the
    end of the run); every benchmark of the run reads the same file."""

    def start() -> tuple[_Files, Callable[[], None]]:
        files = _Files()
        return files, files.directory.cleanup

    files: _Files = context.shared("cassette-files", start)
    return files.path(size)
