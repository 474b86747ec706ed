"""The cassette benchmarks (issue 4's record/replay), declared with their targets.

Their subjects — the replay server, the cassette loader, the recording proxy — are being built
separately. Until one lands, its benchmark reports "not available yet" with the reason; it never
prints a number. To plug a measurement in, write a function ``(BenchContext) -> Outcome`` that
returns a :class:`~tools.bench.core.Result` (ours, baseline, the same ``unit``/``target`` as
declared here) and hand it over with :func:`~tools.bench.core.provide`::

    provide("replay-1000", measure_replay_1000)

from a module listed in :data:`tools.bench.runner.MODULES` (after this one). Each measurement
should follow the fakes' method: same client for both sides (requests with keep-alive), warm-up,
interleaved repetitions and medians (:func:`tools.bench.core.median`), absolute numbers in the
result, and the server side in its own process where one exists (:class:`ChildProcess`).

What each one compares, from the issue:

- ``replay-1000`` / ``replay-5000``: replay of a cassette of that many interactions, end to end,
  ours against plain vcrpy on the same file; vcrpy may be sampled (e.g. 200 requests) at 5,000.
  Ratio ``baseline/ours`` (× faster): ≥ 20 at 1,000, ≥ 100 at 5,000; ours should not depend on
  the cassette size (put ours at 1,000 against ours at 5,000 in the notes).
- ``replay-lookup``: the request-lookup cost alone, index against vcrpy's scan (× faster; the
  issue sets no target for it).
- ``cassette-load``: loading a cassette against vcrpy's loader on the same file, ≤ 1.0×.
- ``proxy-ttfb``: time to first byte through the recording proxy against direct, ≤ 1.1×.
"""

from __future__ import annotations

from collections.abc import Callable

from tools.bench.context import BenchContext
from tools.bench.core import Benchmark, Outcome, Target, Unavailable, register

_REPLAY = "the replay server and its request index (issue 4)"
_LOADER = "the cassette loader (issue 4)"
_PROXY = "the recording proxy (issue 4)"


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
    ("replay-lookup", "Request lookup alone: × faster than vcrpy's scan", _REPLAY, None),
    ("cassette-load", "Cassette load time vs vcrpy's loader", _LOADER, Target("<=", 1.0)),
    (
        "proxy-ttfb",
        "Time to first byte through the recording proxy vs direct",
        _PROXY,
        Target("<=", 1.1),
    ),
)

for _name, _title, _subject, _target in HOOKS:
    register(
        Benchmark(_name, _title, "cassettes", _pending(_name, _title, _subject, _target), _target)
    )
