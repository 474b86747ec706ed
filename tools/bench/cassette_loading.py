"""Loading a cassette file: :func:`cassettes.yamlio.load` against vcrpy's loader (cassette-load).

vcrpy's loader is what ``use_cassette`` reads a file with:
``FilesystemPersister.load_cassette(path, serializer=yamlserializer)`` (read the text, parse it
with its libyaml-based safe loader, build a ``Request`` per interaction and convert each response
with ``vcr.serializers.compat``). Ours parses, checks every field and builds the model with its
chunk plans. Both run in the client process on the same generated file, interleaved, one load
per run, with that process's caches dropped first so neither pays for the other's memory.

The row is the 5,000-interaction cassette; 1,000 is in the notes, and so is what each side does
in all before its first request: ours with the replay index built (``Replayer``), vcrpy with
``Cassette.load`` (the loader plus ``append`` of every interaction, which deep-copies each
response).
"""

from __future__ import annotations

from collections.abc import Callable

from tools.bench.cassette_ab import Meter, interleave, ms, spread_note
from tools.bench.cassette_jobs import CassetteLoadJob, ForgetJob, Loader, Timing
from tools.bench.cassettes import cassette_file, declared, settings
from tools.bench.context import BenchContext
from tools.bench.core import Outcome, Result, median, provide

_JOB_TIMEOUT = 600.0


def _loads(context: BenchContext, path: str, loader: Loader) -> Callable[[int], float]:
    def measure(rep: int) -> float:
        timing: Timing = context.run_job(CassetteLoadJob(path, loader), _JOB_TIMEOUT)
        return timing.seconds

    return measure


def _compare(
    context: BenchContext,
    size: int,
    sides: tuple[Loader, Loader],
    reps: int,
    *,
    warm_up: bool = True,
) -> tuple[list[float], list[float], Meter]:
    path = cassette_file(context, size)
    meter = Meter([context.client().pid])
    ours, baseline = (_loads(context, path, loader) for loader in sides)
    first, second = interleave(reps, ours, baseline, meter, warm_up=warm_up)
    return first, second, meter


def cassette_load(context: BenchContext) -> Outcome:
    """Load time of the same file, ours against vcrpy's loader, at both cassette sizes."""
    config = settings(context.options)
    try:
        context.run_job(ForgetJob(), _JOB_TIMEOUT)
        ours, vcrpy, meter = _compare(context, config.large, ("ours", "vcrpy"), config.reps)
        small_ours, small_vcrpy, _ = _compare(context, config.small, ("ours", "vcrpy"), config.reps)
        # Everything before the first request, once each (a single run: shown, not targeted).
        whole_ours, whole_vcrpy, _ = _compare(
            context, config.large, ("ours+index", "vcrpy-cassette"), 1, warm_up=False
        )
    finally:
        context.run_job(ForgetJob(), _JOB_TIMEOUT)
    title, target = declared("cassette-load")
    ours_ms, vcrpy_ms = ms(ours), ms(vcrpy)
    return Result.of_samples(
        ours_ms,
        vcrpy_ms,
        name="cassette-load",
        title=title,
        unit="ms",
        baseline_label="vcrpy's loader, FilesystemPersister.load_cassette(path, "
        "serializer=yamlserializer), on the same file",
        target=target,
        notes=(
            f"file: the replay benchmarks' generated cassette of {config.large:,} interactions "
            "(CodeLinkAva POSTs, SSE answers with chunk plans), written by yamlio.save; ours: "
            "yamlio.load(path), which checks every field and builds the model; one load per "
            f"run in the client process, warm-up load of each, {config.reps} interleaved runs, "
            "medians",
            f"at {config.small:,} interactions: ours {median(small_ours) * 1000:.0f} ms, vcrpy "
            f"{median(small_vcrpy) * 1000:.0f} ms "
            f"({median(small_ours) / median(small_vcrpy):.2f}×)",
            f"before the first request at {config.large:,} interactions (one run each): ours "
            f"with the replay index (Replayer(yamlio.load(path))) {whole_ours[0] * 1000:.0f} "
            f"ms, vcrpy's Cassette.load as use_cassette does it {whole_vcrpy[0] * 1000:.0f} ms "
            f"({whole_ours[0] / whole_vcrpy[0]:.2f}×)",
            spread_note(ours, vcrpy, "ours/baseline"),
            meter.describe(),
        ),
    )


provide("cassette-load", cassette_load)
