"""Options of one bench run and the context every benchmark receives.

The context owns the child processes and shares them between benchmarks (started on first use,
closed at the end of the run), so a benchmark asks for what it needs and never cleans up itself.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from tools.bench.procs import ChildProcess, CpuPlan, Job, client_main, cpu_plan

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class BenchOptions:
    """Sizes and durations. The defaults are the full run; :meth:`quick` only keeps code alive."""

    quick: bool = False
    #: Seconds of one measured run, and of the warm-up run before a subject's first run.
    run_seconds: float = 1.5
    warmup_seconds: float = 0.5
    #: Measured runs per subject (interleaved ours/baseline); medians are reported.
    reps: int = 7
    sse_events: int = 2000
    raw_bytes: int = 1024 * 1024
    raw_piece_bytes: int = 16 * 1024
    #: Concurrent streams: enough to keep the server busy while the client drains a reply's
    #: tail and sends the next request (with one, the server idles between replies).
    stream_connections: int = 4
    short_concurrency: int = 16
    fixture_reps: int = 5
    #: Empty tests per pytest run when timing the per-test fixture cost.
    fixture_tests: int = 500
    resets_per_rep: int = 2000
    load_clients: int = 500
    load_seconds: float = 10.0
    load_words: int = 24
    load_chunk_delay: float = 0.01
    #: Before each benchmark, wait up to this many seconds for other processes to use less
    #: than ``quiet_cpus`` CPUs (0: do not wait). For shared machines.
    quiet_wait: float = 0.0
    quiet_cpus: float = 0.15
    run_suite: bool = False
    skip_load: bool = False
    #: Run only benchmarks whose name contains one of these (empty: all).
    only: tuple[str, ...] = ()
    pin: bool = True

    @classmethod
    def quick_mode(cls, **changes: Any) -> BenchOptions:
        """Every benchmark, tiny: seconds in total, numbers meaningless, code exercised."""
        tiny = cls(
            quick=True,
            run_seconds=0.1,
            warmup_seconds=0.05,
            reps=2,
            sse_events=50,
            raw_bytes=64 * 1024,
            raw_piece_bytes=4096,
            short_concurrency=4,
            fixture_reps=1,
            fixture_tests=10,
            resets_per_rep=20,
            load_clients=8,
            load_seconds=0.5,
            load_words=6,
            load_chunk_delay=0.002,
        )
        return replace(tiny, **changes)

    def selects(self, name: str) -> bool:
        return not self.only or any(part in name for part in self.only)


class BenchContext:
    """Shared state of one run: options, CPU plan, lazily started processes, a log."""

    def __init__(self, options: BenchOptions, log: Callable[[str], None] | None = None) -> None:
        self.options = options
        self.cpus: CpuPlan = cpu_plan(options.pin)
        self._log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        self._shared: dict[str, tuple[object, Callable[[], None]]] = {}
        self._client: ChildProcess | None = None

    def log(self, line: str) -> None:
        self._log(line)

    def shared(self, key: str, start: Callable[[], tuple[_T, Callable[[], None]]]) -> _T:
        """The resource under ``key``, started by ``start`` (value, closer) on first use."""
        if key not in self._shared:
            self._shared[key] = start()
        return self._shared[key][0]  # type: ignore[return-value]

    def release(self, key: str) -> None:
        """Close a shared resource now (e.g. to measure memory in a fresh server later)."""
        entry = self._shared.pop(key, None)
        if entry is not None:
            entry[1]()

    def client(self) -> ChildProcess:
        """The client process (pinned to the client CPU), started on first use."""
        if self._client is None:
            self._client = ChildProcess(client_main, self.cpus.client, name="client")
        return self._client

    def run_job(self, job: Job, timeout: float) -> Any:
        """Run ``job`` in the client process; raises if it fails or overruns ``timeout``."""
        return self.client().call(job, timeout)

    def close(self) -> None:
        for key in list(self._shared):
            self.release(key)
        if self._client is not None:
            self._client.close()
            self._client = None
