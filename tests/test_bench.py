"""`tapedeck bench`: the measuring instruments, the verdict logic, and a quick end-to-end run.

Nothing here asserts a timing target: CI machines are noisy and the quick mode's numbers mean
nothing. What is asserted is structure (every benchmark answers, figures are finite numbers, the
report is written) and the checks that make a number honest (same bytes on both sides, zero
errors, exact transcripts), each shown to be able to fail.
"""

from __future__ import annotations

import argparse
import asyncio
import math
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fake_upstreams.journal import Verdict
from fake_upstreams.registry import FAKES, build_fleet, build_server
from fake_upstreams.server import FakeServer
from providers.errors import StreamResetError, UpstreamTimeoutError
from tools.bench import (
    BenchOptions,
    Check,
    Failed,
    Result,
    Target,
    Unavailable,
    provide,
    register,
    registered,
)
from tools.bench.abtest import same_reply_check
from tools.bench.cassettes import HOOKS, _pending
from tools.bench.context import BenchContext
from tools.bench.core import median, ratio, spread
from tools.bench.httpclient import Connection, _Parser, encode_request
from tools.bench.jobs import ThroughputJob
from tools.bench.load_client import LoadJob
from tools.bench.report import command_line, render_markdown, write_report
from tools.bench.runner import BenchReport, benchmarks
from tools.bench.server_proc import _journal_summary
from tools.bench.workloads import short_reply, sse_stream
from tools.bench_cmd import add_arguments, options_from
from tools.cli import main

CHUNKED = (
    b"HTTP/1.1 201 Created\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n1;ext=1\r\n \r\nb\r\nw\xc3\xb6rld-tail\r\n0\r\n\r\n"
)


def test_a_result_of_samples_reports_each_sides_median_and_keeps_the_samples() -> None:
    result = Result.of_samples(
        iter([3.0, 1.0, 2.0]),
        [40.0, 10.0, 30.0, 20.0],
        name="n",
        title="t",
        unit="ms",
        baseline_label="b",
        target=Target(">=", 10),
        ratio_kind="baseline/ours",
    )
    assert (result.ours, result.baseline) == (2.0, 25.0)
    assert result.ours_samples == (3.0, 1.0, 2.0)
    assert result.baseline_samples == (40.0, 10.0, 30.0, 20.0)
    assert (result.ratio, result.status) == (12.5, "met")


# -- the client: a measuring instrument must be right before it is fast -----------------------


@pytest.mark.parametrize("piece", [1, 2, 3, 7, len(CHUNKED)])
def test_parser_reads_chunks_whatever_the_read_sizes(piece: int) -> None:
    parser = _Parser(keep=True)
    done = [parser.feed(CHUNKED[i : i + piece]) for i in range(0, len(CHUNKED), piece)]
    assert done[-1]
    assert not any(done[:-1])
    reply = parser.reply
    assert reply.status == 201
    assert reply.chunks == [b"hello", b" ", "wörld-tail".encode()]
    assert (reply.chunk_count, reply.body_bytes) == (3, 17)


def test_parser_counts_without_keeping_and_reads_sized_bodies() -> None:
    counting = _Parser(keep=False)
    assert counting.feed(CHUNKED)
    assert (counting.reply.chunks, counting.reply.chunk_count, counting.reply.body_bytes) == (
        [],
        3,
        17,
    )
    sized = _Parser(keep=True)
    assert not sized.feed(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 4\r\n\r\nab")
    assert sized.feed(b"cd")
    assert (sized.reply.status, sized.reply.body) == (400, b"abcd")


@pytest.mark.parametrize(
    "wire",
    [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nab",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n",
        b"garbage\r\n\r\n",
    ],
    ids=["bad-size", "no-crlf-after-data", "extra-bytes", "close-delimited", "bad-status"],
)
def test_parser_rejects_broken_framing(wire: bytes) -> None:
    with pytest.raises(StreamResetError):
        _Parser(keep=True).feed(wire)


def test_encode_request_keeps_an_explicit_content_length() -> None:
    data = encode_request("POST", "/x", [("content-length", "2")], b"{}", content_type=None)
    assert data.lower().count(b"content-length") == 1
    data = encode_request("POST", "/x", [("A", "b")], b"{}", content_type="application/json")
    assert data.endswith(b"Content-Length: 2\r\nContent-Type: application/json\r\n\r\n{}")


async def test_connection_times_out_on_a_silent_server() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)
        await asyncio.sleep(5)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        connection = await Connection.open("127.0.0.1", port)
        with pytest.raises(UpstreamTimeoutError):
            await connection.request(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", within=0.2)
    finally:
        server.close()
        await server.wait_closed()


# -- jobs against real fakes, in this process ---------------------------------------------------


@pytest.fixture
async def codelinkava() -> AsyncIterator[FakeServer]:
    async with build_server("CodeLinkAva") as server:
        yield server


async def test_throughput_job_counts_what_a_fake_sends(codelinkava: FakeServer) -> None:
    workload = sse_stream(20)
    codelinkava.state.scripts.load(workload.script)
    job = ThroughputJob(
        port=codelinkava.port,
        requests=workload.requests,
        connections=2,
        duration=0.2,
        status=workload.reply.status,
        body_bytes=workload.reply.body_bytes,
        keep_first=True,
    )
    sample = await job.execute()
    assert sample.error_count == 0
    assert sample.replies >= 1
    assert sample.chunks == sample.replies * len(workload.reply.chunks)
    assert sample.first_chunks == workload.reply.chunks  # the baseline's canned chunks
    assert len(codelinkava.state.journal) == sample.replies + 1


async def test_throughput_job_reports_wrong_replies_as_errors(codelinkava: FakeServer) -> None:
    workload = sse_stream(5)
    codelinkava.state.scripts.load(workload.script)
    job = ThroughputJob(
        port=codelinkava.port,
        requests=workload.requests,
        connections=1,
        duration=0.1,
        status=workload.reply.status,
        body_bytes=workload.reply.body_bytes + 1,
    )
    sample = await job.execute()
    assert sample.replies == 0
    assert sample.error_count >= 1
    assert "expected 200" in sample.errors[0]


def test_same_reply_check_fails_on_any_difference() -> None:
    chunks = (b"ab", b"c")
    assert same_reply_check(chunks, chunks).ok
    assert not same_reply_check(chunks, (b"a", b"bc")).ok  # same bytes, other boundaries
    assert not same_reply_check(chunks, None).ok


def test_short_workload_requests_are_accepted_by_the_strict_fakes() -> None:
    import requests as http

    with build_fleet() as fleet:
        for name in FAKES:
            workload = short_reply(name, requests=2)
            head, _, body = workload.requests[1].partition(b"\r\n\r\n")
            method_line, *header_lines = head.decode("latin-1").split("\r\n")
            headers = dict(line.split(": ", 1) for line in header_lines)
            headers.pop("Host")
            reply = http.post(
                fleet[name].url + method_line.split()[1], data=body, headers=headers, timeout=10
            )
            assert reply.status_code == workload.reply.status, reply.text
            assert reply.content == b"".join(workload.reply.chunks)


async def test_load_job_verifies_every_transcript() -> None:
    async with build_fleet() as fleet:
        job = LoadJob(
            ports={name: server.port for name, server in fleet.items()},
            clients=8,
            seconds=0.3,
            words=5,
            chunk_delay=0.001,
        )
        stats = await job.execute()
    assert stats.ok >= 8
    assert stats.errors == 0, stats.problems
    assert stats.text_mismatches == stats.byte_mismatches == stats.chunk_mismatches == 0
    assert stats.peak_in_flight == 8


async def test_load_job_counts_errors_when_pointed_at_the_wrong_fake() -> None:
    async with build_fleet(["CodeLinkAva", "Aivvm"]) as fleet:
        # GetGpt's requests sent to the Aivvm fake: no such route, every request must fail.
        job = LoadJob(
            ports={"GetGpt": fleet["Aivvm"].port}, clients=2, seconds=0.1, words=3, chunk_delay=0
        )
        stats = await job.execute()
    assert stats.ok == 0
    assert stats.errors == stats.requests >= 2
    assert "status 404" in stats.problems[0]


# -- verdicts, registry and report -----------------------------------------------------------


def test_ratios_targets_and_statuses() -> None:
    assert ratio(9.0, 10.0) == pytest.approx(0.9)
    assert ratio(1.0, 50.0, "baseline/ours") == pytest.approx(50.0)
    assert math.isnan(ratio(1.0, 0.0))
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert spread([1.0, 2.0, 3.0]) == pytest.approx(1.0)
    base = Result(
        "x", "X", "u", ours=9.0, baseline=10.0, baseline_label="b", target=Target(">=", 0.9)
    )
    assert base.status == "met"
    assert Result("x", "X", "u", 8.9, 10.0, "b", Target(">=", 0.9)).status == "missed"
    assert Result("x", "X", "u", 1.2, 1.0, "b", Target("<=", 1.1)).status == "missed"
    assert Result("x", "X", "u", 1.0, 1.0, "b").status == "no target"
    failing = Result("x", "X", "u", 10.0, 10.0, "b", Target(">=", 0.9), checks=(Check("c", False),))
    assert failing.status == "missed"


def test_registry_refuses_duplicates_and_provide_keeps_the_declaration() -> None:
    names = [benchmark.name for benchmark in benchmarks()]
    assert len(names) == len(set(names))
    with pytest.raises(ValueError, match="twice"):
        register(registered()[0])
    with pytest.raises(KeyError):
        provide("no-such-benchmark", lambda context: Failed("n", "N", "r"))
    declared = next(b for b in registered() if b.name == "proxy-ttfb")
    try:
        provided = provide("proxy-ttfb", lambda context: Failed("proxy-ttfb", "T", "measured"))
        assert (provided.title, provided.target, provided.group) == (
            declared.title,
            declared.target,
            declared.group,
        )
    finally:
        provide("proxy-ttfb", declared.run)


def test_a_declared_benchmark_without_its_subject_says_so_and_gives_no_number() -> None:
    # Every cassette benchmark is provided now; what remains to pin is the placeholder each one
    # is declared with, which a benchmark whose subject is missing must fall back to. Calling it
    # directly runs no real benchmark (and leaves no client process behind).
    context = BenchContext(BenchOptions.quick_mode())
    try:
        for name, title, subject, target in HOOKS:
            outcome = _pending(name, title, subject, target)(context)
            assert isinstance(outcome, Unavailable)
            assert outcome.status == "not available yet"
            assert outcome.target == target
            assert "not built yet" in outcome.reason
            assert not hasattr(outcome, "ours")  # no field that could carry a made-up number
    finally:
        context.close()


def test_markdown_report_lists_every_outcome(tmp_path: Path) -> None:
    report = BenchReport(BenchOptions.quick_mode(), {"CPU": "Test CPU 9000"})
    report.outcomes = [
        Result("a", "Alpha", "events/s", 90.0, 100.0, "bare", Target(">=", 0.9)),
        Unavailable("b", "Beta", "subject missing", Target("<=", 1.0)),
        Failed("c", "Gamma", "it broke"),
    ]
    text = render_markdown(report)
    assert "| Alpha | 90.0 | 100 | events/s | 0.90 | >= 0.9 | met |" in text
    assert "| Beta | — | — |  | — | <= 1 | not available yet |" in text
    assert "failed: it broke" in text
    assert "Test CPU 9000" in text
    assert "Quick mode" in text
    path = tmp_path / "deep" / "BENCHMARKS.md"
    write_report(text, path)
    assert path.read_text(encoding="utf-8") == text
    assert [p.name for p in path.parent.iterdir()] == ["BENCHMARKS.md"]  # no temporary left


# -- the quick mode, end to end through the command line -------------------------------------


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, Path]:
    """One quick run for the module: it spawns processes, so it is made once."""
    output = tmp_path_factory.mktemp("bench") / "BENCHMARKS.md"
    return main(["bench", "--quick", "--output", str(output)]), output


def test_quick_bench_runs_every_benchmark_and_writes_the_report(
    quick_run: tuple[int, Path],
) -> None:
    status, output = quick_run
    text = output.read_text(encoding="utf-8")
    assert status == 0, text
    for benchmark in benchmarks():
        if benchmark.group != "suite":
            assert f"### {benchmark.name}: " in text
    assert "failed" not in text.split("## Machine")[0]
    for label in ("CPU", "cores", "Python", "aiohttp", "CPU pinning"):
        assert f"| {label} |" in text


def test_quick_bench_figures_are_finite_numbers(quick_run: tuple[int, Path]) -> None:
    _, output = quick_run
    summary = output.read_text(encoding="utf-8").split("## Machine")[0]
    rows = [line.split(" | ") for line in summary.splitlines() if line.startswith("| ")][2:]
    measured = [row for row in rows if "not available yet" not in row[-1]]
    assert len(measured) >= len(FAKES) + 4  # four short, SSE, raw, two fixtures, load
    for row in measured:
        for cell in row[1:3] + row[4:5]:
            assert math.isfinite(float(cell.replace(",", "").rstrip("×"))), row
    assert any(
        "same chunks from fake and baseline" in line for line in output.read_text().splitlines()
    )


def test_cli_lists_benchmarks(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--list"]) == 0
    listed = capsys.readouterr().out
    assert "sse-events" in listed
    assert "replay-5000" in listed
    assert "target >= 100" in listed


def test_quick_options_can_be_overridden_from_the_command_line() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    options = options_from(
        parser.parse_args(["--quick", "--reps", "3", "--only", "sse", "--wait-quiet", "5"])
    )
    assert options.quiet_wait == 5.0
    assert command_line(options) == "tapedeck bench --quick --only sse --reps 3 --wait-quiet 5"
    assert options.quick
    assert options.reps == 3
    assert options.only == ("sse",)
    assert options.selects("sse-events")
    assert not options.selects("load")
    assert BenchOptions().run_seconds > options.run_seconds  # quick stays quick


def test_the_load_tests_journal_summary_counts_outcomes_and_names_the_first_problem() -> None:
    server = build_server("Aivvm")  # never started: only its journal is written and read
    journal = server.state.journal
    for _ in range(3):
        journal.finish(journal.open("POST", "/api/chat", [], b"{}"), "completed")
    journal.judge(journal.open("POST", "/api/chat", [], b""), Verdict(False, 400, "bad", "nope"))
    journal.open("POST", "/api/chat", [], b"{}")  # still running
    summary = _journal_summary(server)
    assert summary == {
        "requests": 5,
        "outcomes": {"completed": 3, "rejected": 1, "pending": 1},
        "handler_errors": 0,
        "first_problem": "rejected: nope",
    }
    journal.clear()
    journal.finish(journal.open("POST", "/api/chat", [], b"{}"), "completed")
    assert _journal_summary(server)["first_problem"] == ""
