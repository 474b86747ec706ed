"""The cassette benchmarks: their instruments, and a quick run of each. Never a timing target.

What is asserted is what makes the figures honest: the generated cassette is what both sides
read (distinct requests, streamed answers, readable by vcrpy), both sides' client code checks
every answer (and fails on a wrong one), samples are spread as documented, runs alternate, and a
quick run of every cassette benchmark gives finite numbers with their checks passing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import os
from pathlib import Path
from typing import Any

import pytest
import requests
from vcr.persisters.filesystem import FilesystemPersister
from vcr.serializers import yamlserializer

from cassettes import yamlio
from cassettes.replay import ReplayServer
from providers.errors import TapedeckError
from providers.wire.codelinkava import API
from tools.bench import BenchOptions, Result, Target, run_bench
from tools.bench.cassette_ab import Meter, interleave, process_cpu
from tools.bench.cassette_client import drive, forget, vcr_context
from tools.bench.cassette_gen import build, calls, spread_sample, write
from tools.bench.cassette_jobs import (
    IN_THREAD,
    VCRPY,
    CassetteLoadJob,
    FirstByteJob,
    LookupJob,
    ReplayPassJob,
)
from tools.bench.cassette_server import CassetteServer
from tools.bench.cassettes import HOOKS, declared, settings
from tools.bench.proxy_bench import _recorded_check

SIZE = 12


@pytest.fixture(scope="module")
def cassette_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    return write(SIZE, tmp_path_factory.mktemp("bench-cassettes"))


def run(job: Any) -> Any:
    return asyncio.run(job.execute())


# -- the cassette both sides read ------------------------------------------------------------


def test_generated_cassette_has_distinct_streamed_interactions(cassette_path: str) -> None:
    loaded = yamlio.load(cassette_path)
    assert loaded == build(SIZE)  # what was written is what is read back
    bodies = {interaction.request.body for interaction in loaded.interactions}
    assert len(bodies) == SIZE
    for interaction in loaded.interactions:
        assert interaction.request.uri == API + "/api/chat"
        assert len(interaction.response.plan) >= 7  # several chunks, one per SSE event
        assert interaction.response.body.endswith(b"data: [DONE]\n\n")


def test_vcrpy_reads_the_same_file(cassette_path: str) -> None:
    requests_, responses = FilesystemPersister.load_cassette(
        cassette_path, serializer=yamlserializer
    )[:2]
    ours = yamlio.load(cassette_path)
    assert len(requests_) == SIZE
    assert [r.body for r in requests_] == [i.request.body for i in ours.interactions]
    assert [r["body"]["string"] for r in responses] == [i.response.body for i in ours.interactions]


def test_client_calls_carry_the_recorded_request_and_answer(cassette_path: str) -> None:
    loaded = yamlio.load(cassette_path)
    made = calls(loaded)
    assert [call.body for call in made] == [i.request.body for i in loaded.interactions]
    assert [call.expected for call in made] == [i.response.body for i in loaded.interactions]
    assert all("content-length" not in dict(c.headers) for c in made)  # left to requests


@pytest.mark.parametrize(("total", "wanted"), [(1000, 40), (5000, 12), (7, 3), (5, 9)])
def test_samples_are_spread_evenly_and_move_with_the_phase(total: int, wanted: int) -> None:
    sample = spread_sample(total, wanted)
    assert len(sample) == min(total, wanted)
    assert list(sample) == sorted(set(sample))
    assert sample[0] >= 0
    assert sample[-1] < total
    if wanted < total:
        # Evenly spread: the mean position is the middle of the cassette, within one stride.
        assert abs(sum(sample) / len(sample) - (total - 1) / 2) <= total / wanted
        assert spread_sample(total, wanted, 0.1) != spread_sample(total, wanted, 0.9)


# -- the client code both sides run ----------------------------------------------------------


def test_drive_replays_through_our_server_and_refuses_a_wrong_answer(cassette_path: str) -> None:
    made = calls(yamlio.load(cassette_path))
    with ReplayServer(cassette_path) as server, requests.Session() as session:
        drive(session, server.url, made[:3])
        assert server.played == (0, 1, 2)
        wrong = dataclasses.replace(made[3], expected=made[4].expected)
        with pytest.raises(TapedeckError, match="recorded 200"):
            drive(session, server.url, [wrong])


def test_drive_replays_under_vcrpy_with_the_same_code(cassette_path: str) -> None:
    made = calls(yamlio.load(cassette_path))
    try:
        with vcr_context(cassette_path), requests.Session() as session:
            drive(session, API, [made[5], made[1]])  # vcrpy tells bodies apart
        with vcr_context(cassette_path), requests.Session() as session:
            drive(session, API, [made[5]])  # rewound: playable again
    finally:
        forget()


def test_replay_pass_jobs_time_both_sides(cassette_path: str) -> None:
    server = CassetteServer(None)
    try:
        url = server.replay(cassette_path)
        ours = run(ReplayPassJob(cassette_path, (0, 4, 8), url))
        server.reset(cassette_path)
        again = run(ReplayPassJob(cassette_path, (0, 4, 8), url))  # playable after reset
        vcrpy = run(ReplayPassJob(cassette_path, (0, 4, 8), VCRPY))
        raw = run(ReplayPassJob(cassette_path, (2, 3), VCRPY, ("method", "path", "raw_body")))
        threaded = run(ReplayPassJob(cassette_path, (1, 5), IN_THREAD, warm_up=2))
    finally:
        server.close()
        forget()
    assert (raw.count, threaded.count) == (2, 2)
    for timing in (ours, again, vcrpy):
        assert timing.count == 3
        assert timing.seconds > 0
        assert math.isfinite(timing.per_unit)


@pytest.mark.parametrize("side", ["ours", "vcrpy"])
def test_lookup_jobs_find_each_recording(cassette_path: str, side: Any) -> None:
    try:
        timing = run(LookupJob(cassette_path, (1, 6, 11), side))
        assert run(LookupJob(cassette_path, (1, 6, 11), side)).count == 3  # reset / rewound
    finally:
        forget()
    assert timing.count == 3
    assert timing.seconds > 0


@pytest.mark.parametrize("loader", ["ours", "vcrpy", "ours+index", "vcrpy-cassette"])
def test_load_jobs_load_the_file(cassette_path: str, loader: Any) -> None:
    timing = run(CassetteLoadJob(cassette_path, loader))
    assert timing.count == 1
    assert timing.seconds > 0


def test_first_byte_job_times_each_request_and_fails_on_a_miss(cassette_path: str) -> None:
    made = calls(yamlio.load(cassette_path))
    with ReplayServer(cassette_path, allow_repeats=True) as server:
        result = run(FirstByteJob(server.url, made[2], 3))
        assert len(result.seconds) == 3
        assert all(s > 0 for s in result.seconds)
        assert result.body == made[2].expected
        unknown = dataclasses.replace(made[2], body=b'{"messages": []}')
        with pytest.raises(TapedeckError, match="status 421"):
            run(FirstByteJob(server.url, unknown, 1))
        server.take_misses()


def test_recorded_check_fails_on_a_short_recording(cassette_path: str) -> None:
    body = yamlio.load(cassette_path).interactions[0].response.body
    assert not _recorded_check(Path(cassette_path), SIZE, body).ok  # other answers, too few
    assert not _recorded_check(Path(cassette_path) / "missing.yaml", 1, body).ok


# -- interleaving and the load meter ---------------------------------------------------------


def test_interleave_warms_up_then_alternates_the_order() -> None:
    order: list[tuple[str, int]] = []

    def side(label: str) -> Any:
        def measure(rep: int) -> float:
            order.append((label, rep))
            return 1.0 if label == "a" else 2.0

        return measure

    meter = Meter([])
    ours, base = interleave(3, side("a"), side("b"), meter)
    assert order == [
        ("a", -1),
        ("b", -1),
        ("a", 0),
        ("b", 0),
        ("b", 1),
        ("a", 1),
        ("a", 2),
        ("b", 2),
    ]
    assert (ours, base) == ([1.0] * 3, [2.0] * 3)
    assert len(meter.runs) == 6
    assert "CPUs busy" in meter.describe()


def test_process_cpu_reads_this_process() -> None:
    cpu = process_cpu(os.getpid())
    assert cpu is not None
    assert cpu >= 0
    assert process_cpu(2**22 + 12345) is None  # no such process


# -- quick runs, end to end -------------------------------------------------------------------


def test_quick_settings_are_tiny_and_full_ones_are_the_issues() -> None:
    quick, full = settings(BenchOptions.quick_mode()), settings(BenchOptions())
    assert (full.small, full.large) == (1000, 5000)
    assert quick.large < 100
    assert quick.reps <= 3


def test_vcrpy_samples_more_requests_when_it_matches_raw_body() -> None:
    # raw_body costs vcrpy less per request than body, so its rows sample more requests.
    full = settings(BenchOptions())
    for size in (full.small, full.large):
        assert full.vcrpy_requests(size, raw_body=True) > full.vcrpy_requests(size)
    assert full.vcrpy_requests(full.small) == full.vcrpy_requests_small
    assert full.vcrpy_requests(full.large, raw_body=True) == full.vcrpy_raw_requests_large


def test_raw_rows_are_declared_with_the_targets_of_the_body_rows() -> None:
    for size in (1000, 5000):
        title, target = declared(f"replay-{size}-raw")
        assert target is not None
        assert target == declared(f"replay-{size}")[1]
        assert "raw_body" in title
    assert declared("replay-1000")[1] == Target(">=", 20)
    assert declared("replay-5000")[1] == Target(">=", 100)


@pytest.fixture(scope="module")
def quick_cassette_run() -> dict[str, Any]:
    options = BenchOptions.quick_mode(only=tuple(name for name, *_ in HOOKS))
    report = run_bench(options, log=lambda line: None)
    return {outcome.name: outcome for outcome in report.outcomes}


def test_every_cassette_benchmark_gives_finite_checked_figures(
    quick_cassette_run: dict[str, Any],
) -> None:
    assert set(quick_cassette_run) == {name for name, *_ in HOOKS}
    for name, outcome in quick_cassette_run.items():
        assert isinstance(outcome, Result), (name, getattr(outcome, "reason", ""))
        for figure in (outcome.ours, outcome.baseline):
            assert math.isfinite(figure), name
            assert figure > 0, name
        assert all(check.ok for check in outcome.checks), (name, outcome.checks)
        assert len(outcome.ours_samples) == len(outcome.baseline_samples) == 2
        assert any("CPUs busy" in note for note in outcome.notes), name


def test_replay_results_say_how_vcrpy_was_sampled_and_compare_sizes(
    quick_cassette_run: dict[str, Any],
) -> None:
    large = quick_cassette_run["replay-5000"]
    assert large.ratio_kind == "baseline/ours"
    assert any("vcrpy 3 requests" in note for note in large.notes)
    assert any(note.startswith("ours at 40 vs 20 interactions") for note in large.notes)
    assert "match_on method, path, body" in large.baseline_label


@pytest.mark.parametrize(
    ("name", "matchers", "vcrpy_requests"),
    [
        ("replay-1000", "method, path, body", 3),
        ("replay-5000", "method, path, body", 3),
        ("replay-1000-raw", "method, path, raw_body", 5),
        ("replay-5000-raw", "method, path, raw_body", 4),
    ],
)
def test_each_replay_row_names_vcrpys_matchers_and_its_own_sample(
    quick_cassette_run: dict[str, Any], name: str, matchers: str, vcrpy_requests: int
) -> None:
    row = quick_cassette_run[name]
    assert row.ratio_kind == "baseline/ours"
    assert f"match_on {matchers})" in row.baseline_label  # the whole list, nothing after it
    assert row.notes[0].startswith(f"vcrpy matches on {matchers}: ")
    assert any(f"vcrpy {vcrpy_requests} requests" in note for note in row.notes)
    assert not any(note.startswith("one run with vcrpy") for note in row.notes)  # now rows
    in_thread = [note for note in row.notes if "ReplayServer in a thread" in note]
    assert len(in_thread) == (0 if name.endswith("-raw") else 1)
    if name.startswith("replay-5000"):  # compared with ours in the same pair of rows
        assert any(note.startswith("ours at 40 vs 20 interactions") for note in row.notes)


@pytest.mark.parametrize("name", ["replay-1000-raw", "replay-5000-raw"])
def test_raw_rows_state_the_floor_from_the_same_run(
    quick_cassette_run: dict[str, Any], name: str
) -> None:
    row = quick_cassette_run[name]
    (floor,) = [note for note in row.notes if note.startswith("floor, from these runs")]
    # The cap is this run's vcrpy figure over this run's client CPU per request for ours.
    (cpu,) = [note for note in row.notes if note.startswith("CPU per request")]
    client_ms = float(cpu.split("client process: ours ")[1].split(" ms")[0])
    assert f"vcrpy takes {row.baseline:.2f} ms/request" in floor
    cap = float(floor.split(f"{row.baseline:.2f} / {client_ms:.3f} = ")[1].split("×")[0])
    assert cap == pytest.approx(row.baseline / client_ms, rel=0.01, abs=0.06)
    assert f"ours takes {row.ours:.3f} ms/request" in floor
    needed = row.baseline / row.target.value  # ours' ms per request that meets the target
    assert f"target {row.target} needs ours at {needed:.3f} ms/request or less, " in floor
    if abs(needed - client_ms) > 0.002:  # clear of the CPU note's rounding
        assert ("out of reach of any server" in floor) == (needed < client_ms)
    body_row = quick_cassette_run[name.removesuffix("-raw")]
    assert not any(note.startswith("floor") for note in body_row.notes)
