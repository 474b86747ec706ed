"""Finding the recording for one request, alone: our index against vcrpy's scan (replay-lookup).

Ours: :meth:`InteractionIndex.lookup <cassettes.index.InteractionIndex.lookup>` of a
:class:`~cassettes.replay.Replayer`, given the request as the replay server builds it from HTTP
(one key computation: scrubbing, canonical JSON of the body; then one dict lookup). vcrpy:
``Cassette.play_response`` on the cassette ``use_cassette`` would build (its HTTP stubs call it,
after ``can_play_response_for``, which scans once more). Both run in the client process on the
replay benchmarks' generated cassettes, requests spread evenly over the cassette, answers checked
after the timed part. The row is the 1,000-interaction cassette; 5,000 is in the notes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from tools.bench.cassette_ab import Meter, interleave, spread_note
from tools.bench.cassette_client import VCR_MATCH_ON
from tools.bench.cassette_jobs import ForgetJob, LookupJob, Timing
from tools.bench.cassettes import (
    cassette_file,
    declared,
    run_sample,
    settings,
)
from tools.bench.context import BenchContext
from tools.bench.core import Outcome, Result, median, provide

_JOB_TIMEOUT = 900.0


def lookup(context: BenchContext) -> Outcome:
    """Finding the recording for one request: our index against vcrpy's ``play_response``."""
    config = settings(context.options)
    client = context.client()
    figures: dict[int, tuple[list[float], list[float], Meter]] = {}
    try:
        context.run_job(ForgetJob(), _JOB_TIMEOUT)
        for size in (config.small, config.large):
            path = cassette_file(context, size)
            ours = _lookups(context, path, "ours", size=size, wanted=config.ours_requests)
            vcrpy = _lookups(context, path, "vcrpy", size=size, wanted=config.vcrpy_requests(size))
            meter = Meter([client.pid])
            ours_us, vcrpy_us = interleave(config.reps, ours, vcrpy, meter)
            figures[size] = (ours_us, vcrpy_us, meter)
    finally:
        context.run_job(ForgetJob(), _JOB_TIMEOUT)
    ours_us, vcrpy_us, meter = figures[config.small]
    large_ours, large_vcrpy, _ = figures[config.large]
    title, target = declared("replay-lookup")
    return Result.of_samples(
        ours_us,
        vcrpy_us,
        name="replay-lookup",
        title=title,
        unit="µs/lookup",
        baseline_label=f"vcrpy's Cassette.play_response (match_on {', '.join(VCR_MATCH_ON)}) "
        f"on the same {config.small:,}-interaction cassette",
        target=target,
        ratio_kind="baseline/ours",
        notes=(
            "ours: Replayer(cassette).index.lookup(request), the request built as the replay "
            "server builds it (method, path, headers, body; key = method, path, query, "
            "scrubbed body as canonical JSON); vcrpy: cassette.play_response(vcr Request), one "
            "scan (its HTTP stubs do two per request); both in the client process, requests "
            "spread evenly over the cassette, answers checked after timing",
            f"at {config.large:,} interactions: ours {median(large_ours):.1f} µs, vcrpy "
            f"{median(large_vcrpy):,.0f} µs per lookup "
            f"({median(large_vcrpy) / median(large_ours):,.0f}× faster); ours at "
            f"{config.large:,} / ours at {config.small:,}: "
            f"{median(large_ours) / median(ours_us):.2f}",
            spread_note(ours_us, vcrpy_us),
            meter.describe(),
        ),
    )


def _lookups(
    context: BenchContext, path: str, side: Literal["ours", "vcrpy"], *, size: int, wanted: int
) -> Callable[[int], float]:
    """One side of the lookup comparison: µs per lookup of a run of ``wanted`` lookups."""
    reps = context.options.reps

    def measure(rep: int) -> float:
        indices = run_sample(size, wanted, rep, reps)
        timing: Timing = context.run_job(LookupJob(path, indices, side), _JOB_TIMEOUT)
        return float(timing.per_unit * 1e6)

    return measure


provide("replay-lookup", lookup)
