"""Time to first byte through the recording proxy against direct (``proxy-ttfb``, ``-0ms``).

The upstream is the CodeLinkAva fake (strict, as tests get it) in the bench's server process,
scripted to wait ``first_byte_delay`` before its first SSE event: a live chat API answers after
tens to hundreds of milliseconds, and that wait is what the proxy's own cost is compared with.
The :class:`~cassettes.proxy.RecordingProxy` runs in the cassette server process (record mode
``all``: it forwards and records every request, and rewrites the cassette file after each one,
as ``tapedeck record`` does). Both server processes share the server CPU; the client process,
with the same ``requests`` code for both sides, times each request from sending it to the first
body bytes.

Each run is a fresh recording session (a new proxy and cassette file), so the file being
rewritten stays the size of a test session's; the fake is reset before every run. At 0 ms the
ratio is the proxy's cost against a bare loopback round trip, which no extra HTTP hop can keep
under 1.1×: that row has no target, and both rows give the overhead in milliseconds.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from cassettes import yamlio
from providers.wire.codelinkava import CODEC
from tools.bench.cassette_ab import Meter, interleave, spread_note
from tools.bench.cassette_gen import ClientCall
from tools.bench.cassette_jobs import FirstByteJob, FirstBytes
from tools.bench.cassette_server import CassetteServer
from tools.bench.cassettes import LATENCY_MS, CassetteSettings, declared, settings
from tools.bench.context import BenchContext
from tools.bench.core import Check, Outcome, Result, median, provide
from tools.bench.server_proc import ServerHandle, ServerPlan
from tools.bench.workloads import words

_FAKE = "CodeLinkAva"
_JOB_TIMEOUT = 300.0


def _call() -> ClientCall:
    wire = CODEC.build_request("", [{"role": "user", "content": "Say hi"}], {})
    headers = (*wire.headers, ("Content-Type", wire.body_content_type or "application/json"))
    return ClientCall(wire.method, wire.path, headers, wire.body, CODEC.success_status, b"")


class _Sides:
    """The two measured sides and what they saw."""

    def __init__(
        self,
        context: BenchContext,
        upstream: ServerHandle,
        proxy: CassetteServer,
        folder: Path,
        config: CassetteSettings,
    ) -> None:
        self.context, self.upstream, self.proxy, self.folder = context, upstream, proxy, folder
        self.count = config.ttfb_requests
        self.direct_url = f"http://127.0.0.1:{upstream.fake_ports[_FAKE]}"
        self.bodies: dict[str, bytes] = {}
        self.proxy_cpu: list[float] = []
        self.sessions = 0
        self.call = _call()

    def _first_bytes(self, url: str, side: str) -> float:
        job = FirstByteJob(url, self.call, self.count)
        result: FirstBytes = self.context.run_job(job, _JOB_TIMEOUT)
        self.bodies.setdefault(side, result.body)
        return median(result.seconds) * 1000

    def direct(self, rep: int) -> float:
        self.upstream.reset()
        return self._first_bytes(self.direct_url, "direct")

    def proxied(self, rep: int) -> float:
        self.upstream.reset()
        self.sessions += 1
        url = self.proxy.record(self.direct_url, str(self.last_cassette))
        before = self.proxy.cpu()
        figure = self._first_bytes(url, "proxy")
        if rep >= 0:
            self.proxy_cpu.append((self.proxy.cpu() - before) / self.count * 1000)
        return figure

    @property
    def last_cassette(self) -> Path:
        return self.folder / f"session-{self.sessions}.yaml"


def _recorded_check(path: Path, count: int, body: bytes) -> Check:
    """The last session's cassette must hold every request, each with the upstream's answer."""
    name = "the proxy recorded every request of a run, answers byte-exact"
    try:
        cassette = yamlio.load(path)
    except (OSError, ValueError) as error:
        return Check(name, False, f"{path.name}: {error}")
    bodies = [interaction.response.body for interaction in cassette.interactions]
    ok = len(bodies) == count and all(recorded == body for recorded in bodies)
    return Check(name, ok, f"{len(bodies)} of {count} interactions in the last session's file")


def first_byte(context: BenchContext, name: str, latency_ms: float) -> Outcome:
    """Median time to first byte, through the recording proxy and direct."""
    config = settings(context.options)
    script = {"text": words(12), "first_byte_delay": latency_ms / 1000.0}
    plan = ServerPlan(fakes={_FAKE: script}, baselines={}, cpu=context.cpus.server)
    upstream = ServerHandle(plan)
    proxy = CassetteServer(context.cpus.server)
    with tempfile.TemporaryDirectory(prefix="tapedeck-bench-proxy-") as folder:
        try:
            sides = _Sides(context, upstream, proxy, Path(folder), config)
            meter = Meter([context.client().pid, upstream.pid, proxy.pid])
            ours, direct = interleave(config.reps, sides.proxied, sides.direct, meter)
        finally:
            proxy.close()  # stops the last proxy, which writes its cassette
            upstream.close()
        recorded = _recorded_check(sides.last_cassette, sides.count, sides.bodies["direct"])
    same = sides.bodies.get("proxy") == sides.bodies["direct"]
    title, target = declared(name)
    overhead = median(ours) - median(direct)
    return Result.of_samples(
        ours,
        direct,
        name=name,
        title=title,
        unit="ms",
        baseline_label=f"the same requests straight to the upstream fake (first byte after "
        f"{latency_ms:g} ms)",
        target=target,
        checks=(
            Check(
                "same body through the proxy and direct",
                same,
                f"{len(sides.bodies['direct'])} bytes, " + ("identical" if same else "different"),
            ),
            recorded,
        ),
        notes=(
            f"upstream: the {_FAKE} fake, strict, scripted to send its first SSE event after "
            f"{latency_ms:g} ms (12 events); proxy: RecordingProxy, record mode all, a fresh "
            "session and cassette file per run, in its own process; both on the server CPU",
            f"per run: {sides.count} sequential requests on one keep-alive requests.Session, "
            "each timed from sending to its first body bytes (iter_content), then read whole; "
            "figure of a run = median of its requests; warm-up run per side, "
            f"{config.reps} interleaved runs, medians",
            f"the proxy adds {overhead:.2f} ms to the first byte; proxy process CPU "
            f"{median(sides.proxy_cpu):.2f} ms per request (relaying, recording, rewriting the "
            "cassette)",
            spread_note(ours, direct, "ours/baseline"),
            meter.describe(),
        ),
    )


def _ttfb(latency_ms: float, name: str) -> Callable[[BenchContext], Outcome]:
    def run(context: BenchContext) -> Outcome:
        return first_byte(context, name, latency_ms)

    return run


provide("proxy-ttfb", _ttfb(LATENCY_MS, "proxy-ttfb"))
provide("proxy-ttfb-0ms", _ttfb(0.0, "proxy-ttfb-0ms"))
