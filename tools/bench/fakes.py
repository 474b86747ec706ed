"""Throughput of the fakes against bare aiohttp: SSE events/s, raw MB/s, short replies/s.

Each benchmark drives one fake and its baseline from the client process (see
:mod:`tools.bench.abtest`), after checking that both write the very same chunks for the very same
request bytes. The fakes run strict, with their journal, as in a test; GetGpt's requests are
encrypted, so its fake pays for the decryption as it does in a test.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from fake_upstreams.registry import FAKES
from tools.bench.abtest import Side, interleave, same_reply_check, summarise
from tools.bench.context import BenchContext
from tools.bench.core import Benchmark, Check, Outcome, Target, register
from tools.bench.jobs import ThroughputJob, ThroughputSample
from tools.bench.server_proc import ServerHandle, ServerPlan
from tools.bench.workloads import Workload, raw_stream, short_reply, sse_stream

STREAM_TARGET = Target(">=", 0.9)
SHORT_TARGET = Target(">=", 0.7)
#: Why a fake can outrun the bare handler writing the same chunks: it sends fewer times.
_BURSTS_NOTE = (
    "sends: the fake frames chunks with no pause between them itself and sends them together, "
    "up to 64 KiB a send (fake_upstreams/coalesced.py); the bare handler makes one send per "
    "{unit}, as aiohttp's API does. Same bytes, same chunk framing (compared before measuring); "
    "a ratio above 1 means the fake's own cost per {unit} is below one aiohttp write's"
)
_SERVER_KEY = "fakes-server"
_WORKLOADS_KEY = "fakes-workloads"


def workloads(context: BenchContext) -> dict[str, Workload]:
    """Every fake benchmark's workload, built once per run."""

    def build() -> tuple[dict[str, Workload], Callable[[], None]]:
        options = context.options
        table = {
            "sse": sse_stream(options.sse_events),
            "raw": raw_stream(options.raw_bytes, options.raw_piece_bytes),
        }
        table.update({f"short:{name}": short_reply(name) for name in FAKES})
        return table, lambda: None

    return context.shared(_WORKLOADS_KEY, build)


def server(context: BenchContext) -> ServerHandle:
    """The server process with the four fakes and every baseline, started on first use."""

    def start() -> tuple[ServerHandle, Callable[[], None]]:
        table = workloads(context)
        plan = ServerPlan(
            fakes={name: {} for name in FAKES},
            baselines={label: workload.reply for label, workload in table.items()},
            cpu=context.cpus.server,
        )
        handle = ServerHandle(plan)
        return handle, handle.close

    return context.shared(_SERVER_KEY, start)


def _jobs(
    context: BenchContext, label: str, connections: int
) -> tuple[ThroughputJob, ThroughputJob, Workload]:
    workload = workloads(context)[label]
    handle = server(context)
    handle.script(workload.fake, workload.script)
    ours = ThroughputJob(
        port=handle.fake_ports[workload.fake],
        requests=workload.requests,
        connections=connections,
        duration=context.options.run_seconds,
        status=workload.reply.status,
        body_bytes=workload.reply.body_bytes,
    )
    return ours, replace(ours, port=handle.baseline_ports[label]), workload


def _first_chunks(context: BenchContext, job: ThroughputJob) -> tuple[bytes, ...] | None:
    sample: ThroughputSample = context.run_job(
        replace(job, keep_first=True, duration=0.0, connections=1), timeout=120.0
    )
    return sample.first_chunks


def _measure(
    context: BenchContext, label: str, connections: int
) -> tuple[tuple[Side, Side], Check, Workload]:
    """What every fake benchmark does: check both sides send the same chunks, then measure."""
    ours, base, workload = _jobs(context, label, connections)
    check = same_reply_check(_first_chunks(context, ours), _first_chunks(context, base))
    return interleave(context, server(context), ours, base), check, workload


def _events(sample: ThroughputSample) -> float:
    return sample.chunks / sample.elapsed


def _megabytes(sample: ThroughputSample) -> float:
    return sample.body_bytes / sample.elapsed / 1e6


def _replies(sample: ThroughputSample) -> float:
    return sample.replies / sample.elapsed


def sse_events(context: BenchContext) -> Outcome:
    """SSE events/s through the CodeLinkAva fake vs bare aiohttp writing the same frames."""
    sides, check, workload = _measure(context, "sse", context.options.stream_connections)
    return summarise(
        name="sse-events",
        title="Streaming SSE events/s, CodeLinkAva fake",
        unit="events/s",
        unit_name="event",
        sides=sides,
        rate=_events,
        units=lambda sample: sample.chunks,
        baseline_label="bare aiohttp handler writing the same pre-encoded frames",
        target=STREAM_TARGET,
        checks=(check,),
        notes=(
            f"{len(workload.reply.chunks)} events per reply (one chunk each), "
            f"{context.options.stream_connections} connection(s)",
            _BURSTS_NOTE.format(unit="event"),
        ),
    )


def raw_throughput(context: BenchContext) -> Outcome:
    """Raw streaming MB/s through the Aivvm fake vs bare aiohttp writing the same bytes."""
    sides, check, workload = _measure(context, "raw", context.options.stream_connections)
    return summarise(
        name="raw-mbps",
        title="Raw streaming MB/s, Aivvm fake",
        unit="MB/s",
        unit_name="MB",
        sides=sides,
        rate=_megabytes,
        units=lambda sample: sample.body_bytes / 1e6,
        baseline_label="bare aiohttp handler writing the same bytes",
        target=STREAM_TARGET,
        checks=(check,),
        notes=(
            f"{workload.reply.body_bytes} body bytes per reply in {len(workload.reply.chunks)} "
            f"chunks; MB = 10^6 bytes",
            _BURSTS_NOTE.format(unit="chunk"),
        ),
    )


def _short(fake: str) -> Callable[[BenchContext], Outcome]:
    def run(context: BenchContext) -> Outcome:
        label = f"short:{fake}"
        sides, check, workload = _measure(context, label, context.options.short_concurrency)
        extra = " (each request AES-decrypted by the fake)" if fake == "GetGpt" else ""
        return summarise(
            name=f"short-{fake.lower()}",
            title=f"Short replies/s at concurrency {context.options.short_concurrency}, {fake}",
            unit="replies/s",
            unit_name="reply",
            sides=sides,
            rate=_replies,
            units=lambda sample: sample.replies,
            baseline_label="bare aiohttp handler returning the same chunks",
            target=SHORT_TARGET,
            checks=(check,),
            notes=(
                f"{len(workload.reply.chunks)} chunks, {workload.reply.body_bytes} body bytes "
                f"per reply; {len(workload.requests)} distinct requests cycled{extra}",
                "sends per reply: ours 1 (no pause in the script, so headers, every chunk and "
                "the terminating chunk leave together: same bytes, same chunk framing), the bare "
                f"handler {len(workload.reply.chunks) + 2} (aiohttp's API: headers, each chunk, "
                "terminating chunk)",
            ),
        )

    return run


register(
    Benchmark(
        "sse-events", "Streaming SSE events/s (CodeLinkAva)", "fakes", sse_events, STREAM_TARGET
    )
)
register(
    Benchmark("raw-mbps", "Raw streaming MB/s (Aivvm)", "fakes", raw_throughput, STREAM_TARGET)
)
for _name in FAKES:
    register(
        Benchmark(
            f"short-{_name.lower()}",
            f"Short replies/s ({_name})",
            "fakes",
            _short(_name),
            SHORT_TARGET,
        )
    )
