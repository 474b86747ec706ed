"""How the load benchmark judges memory, on synthetic readings (no load is run here).

Growth is judged between two readings taken in the same state (after the per-test reset); the
reading before the reset, while the journal still holds the load by design, is reported only. A
repeat load must plateau within the noise tolerance. Every verdict is shown both ways.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from tools.bench.core import Result
from tools.bench.load import (
    MEMORY_TARGET,
    Journals,
    MemoryReadings,
    judge,
    judge_memory,
    plateau_slack,
)
from tools.bench.load_client import LoadJob, LoadStats

ENTRIES = 5000
STREAMS = 5000


def readings(start: float, before: float, after: float, again: float) -> MemoryReadings:
    return MemoryReadings(start=start, before_reset=before, after_reset=after, after_again=again)


def loaded(requests: int = STREAMS) -> LoadStats:
    return LoadStats(clients=10, elapsed=10.0, requests=requests, ok=requests, chunks=requests)


def clean_journal() -> Journals:
    return {"fake": {"requests": ENTRIES, "outcomes": {"completed": ENTRIES}}}


def result(
    memory: MemoryReadings, journals: tuple[Journals, Journals, Journals] | None = None
) -> Result:
    """The whole load verdict for a clean run (no errors) with these memory readings."""
    job = LoadJob(ports={}, clients=10, seconds=10.0, words=4, chunk_delay=0.0)
    return judge(
        cpus="not pinned",
        job=job,
        stats=loaded(),
        rounds=(loaded(), loaded()),
        journals=journals or (clean_journal(), clean_journal(), clean_journal()),
        memory=memory,
        server_cpu=1.0,
        others=None,
    )


def test_growth_compares_the_two_after_reset_readings_not_the_before_reset_one() -> None:
    # Before the reset the journal holds the whole load: far above the target if it were judged.
    verdict = judge_memory(
        readings(80.0, 200.0, 84.0, 84.0), entries=ENTRIES, repeat_streams=STREAMS
    )
    assert (verdict.baseline, verdict.ours) == (80.0, 84.0)
    assert MEMORY_TARGET.met(verdict.ours / verdict.baseline)
    assert verdict.plateau.ok
    assert result(readings(80.0, 200.0, 84.0, 84.0)).status == "met"


def test_growth_beyond_the_target_after_the_reset_is_missed() -> None:
    memory = readings(80.0, 100.0, 95.0, 95.0)  # 95 / 80 = 1.19: kept after the reset
    verdict = judge_memory(memory, entries=ENTRIES, repeat_streams=STREAMS)
    assert not MEMORY_TARGET.met(verdict.ours / verdict.baseline)
    assert verdict.plateau.ok  # the repeat did not rise: only the ratio misses
    outcome = result(memory)
    assert outcome.ratio == pytest.approx(95.0 / 80.0)
    assert outcome.status == "missed"


@pytest.mark.parametrize(
    ("again", "plateaus"),
    [
        (84.0, True),
        (82.5, True),  # falling is fine
        (84.0 + 1.9, True),  # within the 2 MiB floor
        (84.0 + 2.6, False),  # beyond max(2 MiB, 3% of 84 = 2.52 MiB)
        (100.0, False),
    ],
)
def test_a_repeat_load_must_plateau(again: float, plateaus: bool) -> None:
    memory = readings(82.0, 95.0, 84.0, again)
    verdict = judge_memory(memory, entries=ENTRIES, repeat_streams=STREAMS)
    assert verdict.plateau.ok is plateaus
    assert MEMORY_TARGET.met(verdict.ours / verdict.baseline)  # the ratio alone would pass
    outcome = result(memory)
    assert (outcome.status == "met") is plateaus
    assert verdict.plateau in outcome.checks


def test_plateau_tolerance_is_a_floor_or_a_fraction_whichever_is_larger() -> None:
    assert plateau_slack(10.0) == pytest.approx(2.0)
    assert plateau_slack(200.0) == pytest.approx(6.0)
    # At 300 MiB the floor alone would refuse a 7 MiB rise; 3% (9 MiB) allows it.
    memory = readings(300.0, 320.0, 300.0, 307.0)
    assert judge_memory(memory, entries=ENTRIES, repeat_streams=STREAMS).plateau.ok


def test_notes_and_labels_say_what_is_compared() -> None:
    memory = readings(81.3, 93.7, 83.9, 84.1)
    outcome = result(memory)
    text = "\n".join((outcome.title, outcome.baseline_label, *outcome.notes))
    for figure in ("81.3", "93.7", "83.9", "84.1"):
        assert f"{figure} MiB" in text
    per_entry = (93.7 - 81.3) * 1024 / ENTRIES
    assert f"≈{per_entry:.2f} KiB per entry" in text
    assert "not judged" in text
    assert "after the per-test reset" in outcome.title
    assert "ours = RSS after the measured load and the per-test reset" in outcome.baseline_label


def test_readings_from_the_server_are_converted_from_kib() -> None:
    answers = [{"kib": kib, "source": "test source"} for kib in (1024, 2048, 3072, 4096)]
    memory = MemoryReadings.from_kib(answers)
    assert memory == MemoryReadings(1.0, 2.0, 3.0, 4.0, "test source")
    confirmed = MemoryReadings.from_kib([*answers, {"kib": 5120, "source": "test source"}])
    assert confirmed == replace(memory, after_confirm=5.0)


@pytest.mark.parametrize("load", [0, 1, 2])
def test_a_request_left_unfinished_in_any_of_the_three_loads_fails_the_run(load: int) -> None:
    journals = [clean_journal(), clean_journal(), clean_journal()]
    journals[load] = {
        "fake": {"requests": ENTRIES, "outcomes": {"completed": ENTRIES - 1, "cancelled": 1}}
    }
    outcome = result(readings(80.0, 200.0, 84.0, 84.0), (journals[0], journals[1], journals[2]))
    check = next(c for c in outcome.checks if c.name == "every request completed on the server")
    assert not check.ok
    assert ("warm-up", "measured", "repeat")[load] in check.detail
    assert outcome.status == "missed"


# Run B of session 5's notes: the measured reading dipped, the repeat one rose past the allowance.
ROSE_ONCE = readings(92.4, 95.6, 90.6, 95.6)


@pytest.mark.parametrize(
    ("confirm", "plateaus"),
    [
        (95.0, True),  # a one-off step: the confirmation load does not rise again
        (95.6 + 2.7, True),  # within the allowance of the repeat's reading
        (95.6 + 2.8, False),  # rising again: a leak
        (101.0, False),
    ],
)
def test_a_repeat_that_rose_once_is_judged_by_a_confirmation_load(
    confirm: float, plateaus: bool
) -> None:
    assert ROSE_ONCE.repeat_rose()
    assert not judge_memory(ROSE_ONCE, entries=ENTRIES, repeat_streams=STREAMS).plateau.ok
    memory = replace(ROSE_ONCE, after_confirm=confirm)
    check = judge_memory(memory, entries=ENTRIES, repeat_streams=STREAMS).plateau
    assert check.ok is plateaus
    assert f"{confirm:.1f} MiB" in check.detail
    assert ("not rising again" in check.detail) is plateaus
    assert (result(memory).status == "met") is plateaus


def test_a_repeat_within_the_allowance_needs_no_confirmation_load() -> None:
    memory = readings(82.0, 95.0, 84.0, 85.0)
    assert not memory.repeat_rose()
    check = judge_memory(memory, entries=ENTRIES, repeat_streams=STREAMS).plateau
    assert check.ok
    assert "one more identical load" not in check.detail


def test_the_confirmation_load_is_checked_like_the_others() -> None:
    job = LoadJob(ports={}, clients=10, seconds=10.0, words=4, chunk_delay=0.0)
    broken = LoadStats(clients=10, elapsed=10.0, requests=STREAMS, ok=STREAMS - 1, errors=1)
    unfinished: Journals = {
        "fake": {"requests": ENTRIES, "outcomes": {"completed": ENTRIES - 1, "cancelled": 1}}
    }
    outcome = judge(
        cpus="not pinned",
        job=job,
        stats=loaded(),
        rounds=(loaded(), loaded()),
        journals=(clean_journal(), clean_journal(), clean_journal()),
        memory=replace(ROSE_ONCE, after_confirm=95.0),
        server_cpu=1.0,
        others=None,
        confirm=(broken, unfinished),
    )
    checks = {check.name: check for check in outcome.checks}
    assert not checks["zero errors"].ok
    assert "over the 4 loads" in checks["zero errors"].detail
    assert not checks["every request completed on the server"].ok
    assert "confirmation load" in checks["every request completed on the server"].detail
    assert checks["memory plateaus over a repeat load"].ok
    assert outcome.status == "missed"
    assert any("confirmation 5000 streams" in note for note in outcome.notes)
