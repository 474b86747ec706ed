"""What the fake-server fixtures cost a test suite, measured directly (not inferred from suites).

- Session: what ``tapedeck_fleet`` does, ``with build_fleet(): ...``, timed in this process
  against four bare aiohttp servers started and stopped the same way (own loop thread,
  ``AppRunner`` + ``TCPSite`` on port 0).
- Per test: the real plugin fixtures, in a real pytest run. A generated module of empty tests
  taking ``fake_upstreams`` (which settles and resets the session fleet around every test) is
  timed against the same tests without it, inside pytest from the end of collection to the end
  of the session, so start-up and collection cancel out. The reset alone is timed in-process
  too, and over HTTP (as a fixture for an out-of-process server would do it).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import requests
from aiohttp import web

from fake_upstreams.app import CONTROL_PREFIX
from fake_upstreams.registry import FAKES, build_fleet
from fake_upstreams.server import FakeFleet
from providers.errors import TapedeckError
from tools.bench.context import BenchContext
from tools.bench.core import Benchmark, Outcome, Result, ab_order, median, register, spread


def _timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def _fleet_cycle() -> None:
    with build_fleet():
        pass


async def _ok(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(body=b"ok")


class _BareFleet:
    """Four bare aiohttp servers on a loop thread: the least a session fixture could do."""

    def __init__(self, count: int = len(FAKES)) -> None:
        self._count = count
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runners: list[web.AppRunner] = []
        self.ports: list[int] = []

    def __enter__(self) -> _BareFleet:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(30)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
        self._loop.close()

    async def _start(self) -> None:
        for _ in range(self._count):
            app = web.Application()
            app.router.add_post("/", _ok)
            runner = web.AppRunner(app, handle_signals=False)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            self._runners.append(runner)
            self.ports.append(int(runner.addresses[0][1]))

    async def _stop(self) -> None:
        for runner in self._runners:
            await runner.cleanup()


def _bare_cycle() -> None:
    with _BareFleet():
        pass


def session_fixture(context: BenchContext) -> Outcome:
    """Fleet start + stop against four bare aiohttp servers, interleaved."""
    ours: list[float] = []
    base: list[float] = []
    _fleet_cycle()  # warm-up: imports, first-use caches
    _bare_cycle()
    for rep in range(context.options.fixture_reps):
        pair = ((ours, _fleet_cycle), (base, _bare_cycle))
        for which in ab_order(rep):
            samples, action = pair[which]
            samples.append(_timed(action) * 1000)
    return Result.of_samples(
        ours,
        base,
        name="fixture-session",
        title="Session fixture: start + stop the four fakes",
        unit="ms",
        baseline_label="four bare aiohttp servers started and stopped on a loop thread",
        notes=(f"run-to-run spread: ours {spread(ours):.0%}, baseline {spread(base):.0%}",),
    )


def _reset_cost(fleet: FakeFleet, resets: int) -> float:
    """Seconds per reset of the whole fleet, each fake holding one journal entry."""
    total = 0.0
    servers = list(fleet.values())
    for _ in range(resets):
        for server in servers:
            server.state.journal.open("POST", "/", [("Host", "127.0.0.1")], b"{}")
        started = time.perf_counter()
        for server in servers:
            server.state.reset()
        total += time.perf_counter() - started
    return total / resets


def _request_cost(session: requests.Session, url: str, count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        session.post(url, data=b"{}").raise_for_status()
    return (time.perf_counter() - started) / count


def _http_reset_cost(session: requests.Session, fleet: FakeFleet, count: int) -> float:
    urls = [server.url + CONTROL_PREFIX + "/reset" for server in fleet.values()]
    started = time.perf_counter()
    for _ in range(count):
        for url in urls:
            session.post(url).raise_for_status()
    return (time.perf_counter() - started) / count


def _reset_notes(context: BenchContext) -> tuple[str, ...]:
    """The reset alone, in-process and over HTTP, against one short request to a bare server."""
    resets = context.options.resets_per_rep
    count = max(resets // 10, 10)
    with build_fleet() as fleet, _BareFleet(1) as bare, requests.Session() as session:
        url = f"http://127.0.0.1:{bare.ports[0]}/"
        _reset_cost(fleet, 10)  # warm-up
        _request_cost(session, url, 10)
        reset = median(_reset_cost(fleet, resets) * 1e6 for _ in range(3))
        request = median(_request_cost(session, url, count) * 1e6 for _ in range(3))
        http = median(_http_reset_cost(session, fleet, max(count // 4, 5)) * 1e6 for _ in range(3))
    return (
        f"FakeState.reset of all four fakes (one journal entry each): {reset:.1f} µs; "
        f"one short POST to a bare aiohttp handler with requests: {request:.0f} µs",
        f"resetting over HTTP instead (POST {CONTROL_PREFIX}/reset to each of the four, as a "
        f"fixture for an out-of-process `tapedeck serve` would): {http:.0f} µs per test",
    )


def per_test_fixture(context: BenchContext) -> Outcome:
    """pytest's cost per test with the ``fake_upstreams`` fixture against without it."""
    count = context.options.fixture_tests
    ours: list[float] = []
    base: list[float] = []
    with tempfile.TemporaryDirectory(prefix="tapedeck-bench-") as folder:
        directory = Path(folder)
        (directory / "conftest.py").write_text(_TIMING_CONFTEST, encoding="utf-8")
        with_fixture = directory / "test_with_fixture.py"
        with_fixture.write_text(_TESTS.format(count=count, fixture=", fake_upstreams"))
        plain = directory / "test_plain.py"
        plain.write_text(_TESTS.format(count=count, fixture=""))
        if not context.options.quick:  # warm-up: bytecode caches, page cache
            _pytest_seconds(directory, with_fixture)
            _pytest_seconds(directory, plain)
        for rep in range(context.options.fixture_reps):
            pair = ((ours, with_fixture), (base, plain))
            for which in ab_order(rep):
                samples, module = pair[which]
                samples.append(_pytest_seconds(directory, module) / count * 1e6)
    return Result.of_samples(
        ours,
        base,
        name="fixture-per-test",
        title="Per-test cost of the fake-server fixtures (pytest)",
        unit="µs/test",
        baseline_label="the same empty test without fixtures",
        notes=(
            f"{count} parametrised empty tests per run, each taking `fake_upstreams` (the session "
            "fleet, settled and reset before and after every test); timed inside pytest from "
            "the end of collection to the end of the session (includes the session fleet's "
            "start and stop once)",
            f"overhead: {median(ours) - median(base):.0f} µs per test",
            *_reset_notes(context),
        ),
    )


_TESTS = """
import pytest


@pytest.mark.parametrize("number", range({count}))
def test_case(number{fixture}):
    assert number >= 0
"""

# Times the run from the end of collection to the end of the session, so interpreter start-up,
# plugin loading and collection (the same for both modules) stay out of the figure.
_TIMING_CONFTEST = """
import os
import time

_STARTED = []


def pytest_collection_finish(session):
    _STARTED.append(time.perf_counter())


def pytest_sessionfinish(session, exitstatus):
    with open(os.environ["TAPEDECK_BENCH_TIMING"], "w") as timing:
        timing.write(repr(time.perf_counter() - _STARTED[0]))
"""


def _pytest_seconds(directory: Path, module: Path) -> float:
    timing = directory / "timing.txt"
    environment = {**os.environ, "TAPEDECK_BENCH_TIMING": str(timing)}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-o",
            "addopts=",
            module.name,
        ],
        cwd=directory,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise TapedeckError(f"pytest failed on {module.name}:\n{done.stdout[-2000:]}")
    return float(timing.read_text(encoding="utf-8"))


register(Benchmark("fixture-session", "Session fixture cost", "fakes", session_fixture))
register(
    Benchmark(
        "fixture-per-test", "Per-test cost of the fixtures (pytest)", "fakes", per_test_fixture
    )
)
