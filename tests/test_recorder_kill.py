"""`tapedeck record` as a real process: its stdout contract, clean stops, and a SIGKILL mid-stream.

The fakes run in the test's loop; the recorder is a subprocess (``python -m tools.cli record``),
so signals hit a real process exactly as they would from a terminal or a CI runner.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import pytest

from cassettes import yamlio
from fake_upstreams.registry import build_server
from fake_upstreams.script import ResponseScript
from fake_upstreams.server import FakeServer
from providers import Aivvm, CodeLinkAva
from tests._rawclient import build_request, exchange
from tests.cli_process import start_cli
from tests.wire_literals import AIVVM_HI_BODY

ROOT = Path(__file__).resolve().parent.parent


class Recording:
    """A ``tapedeck record`` subprocess and the URL it printed."""

    def __init__(self, process: asyncio.subprocess.Process, url: str) -> None:
        self.process = process
        self.url = url

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    async def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str]:
        """Send ``sig``; the exit status and everything it wrote on stderr."""
        self.process.send_signal(sig)
        assert self.process.stderr is not None
        stderr = await asyncio.wait_for(self.process.stderr.read(), 20)
        return await asyncio.wait_for(self.process.wait(), 20), stderr.decode()


@contextlib.asynccontextmanager
async def recording(args: Sequence[str]) -> AsyncIterator[Recording]:
    """Start `tapedeck record ARGS`, wait for its ``record URL`` line; kill it if still running."""
    process = await start_cli("record", *args)
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        if not line.startswith("record http://127.0.0.1:"):
            assert process.stderr is not None
            problem = (await asyncio.wait_for(process.stderr.read(), 10)).decode()
            pytest.fail(f"expected 'record URL' on stdout, got {line!r}; stderr: {problem}")
        yield Recording(process, line.split()[1])
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


@pytest.fixture
async def aivvm() -> AsyncIterator[FakeServer]:
    async with build_server("Aivvm", strictness="lenient") as fake:
        yield fake


async def _wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("timed out waiting for the recorder")
        await asyncio.sleep(0.02)


async def test_record_prints_url_records_an_adapter_call_and_stops_cleanly_on_sigterm(
    tmp_path: Path,
) -> None:
    path = tmp_path / "session.yaml"
    async with build_server("CodeLinkAva") as fake:  # strict: the request must be the adapter's
        fake.state.scripts.push(ResponseScript(text="Recorded through a real process."))
        target = fake.url
        async with recording(["--target", target, "--cassette", str(path)]) as recorder:
            pieces = [
                piece
                async for piece in CodeLinkAva.create_async_generator(
                    "", [{"role": "user", "content": "hello"}], base_url=recorder.url
                )
            ]
            status, stderr = await recorder.stop(signal.SIGTERM)
    assert "".join(pieces) == "Recorded through a real process."
    assert status == 0, stderr
    assert "provenance source fake" in stderr
    assert "1 recorded" in stderr
    cassette = yamlio.load(path)
    assert len(cassette) == 1
    assert cassette.provenance is not None
    assert cassette.provenance.source == "fake"
    assert cassette.provenance.target_url == target
    assert cassette.interactions[0].response.status == 200


async def test_sigint_stops_cleanly_and_once_mode_replays_from_the_file(
    aivvm: FakeServer, tmp_path: Path
) -> None:
    path = tmp_path / "once.yaml"
    aivvm.state.scripts.push(ResponseScript(text="first and only"))
    args = ["--target", aivvm.url, "--cassette", str(path), "--mode", "once"]
    messages = [{"role": "user", "content": "hi"}]
    async with recording(args) as recorder:
        text = await asyncio.to_thread(
            lambda: "".join(Aivvm.create_completion("", messages, base_url=recorder.url))
        )
        status, _ = await recorder.stop(signal.SIGINT)
    assert (text, status) == ("first and only", 0)
    async with recording(args) as recorder:
        again = await asyncio.to_thread(
            lambda: "".join(Aivvm.create_completion("", messages, base_url=recorder.url))
        )
        status, stderr = await recorder.stop(signal.SIGINT)
    assert (again, status) == ("first and only", 0)
    assert "1 replayed" in stderr
    assert len(aivvm.state.journal) == 1


async def test_a_recording_killed_mid_stream_leaves_the_previous_cassette_intact(
    aivvm: FakeServer, tmp_path: Path
) -> None:
    path = tmp_path / "killed.yaml"
    aivvm.state.scripts.push(
        ResponseScript(raw=(b"complete ", b"answer")),
        ResponseScript(raw=(b"never ", b"finished ", b"stream"), chunk_delay=1.0),
    )
    args = ["--target", aivvm.url, "--cassette", str(path), "--mode", "all"]
    async with recording(args) as recorder:
        first = await exchange(
            recorder.port, build_request("/api/chat", AIVVM_HI_BODY), deadline=10.0
        )
        assert first.complete
        await _wait_for(path.exists)  # saved after the interaction, before any stop
        after_first = path.read_bytes()
        second = asyncio.create_task(
            exchange(recorder.port, build_request("/api/chat", AIVVM_HI_BODY), deadline=10.0)
        )
        await _wait_for(lambda: len(aivvm.state.journal) == 2)
        await asyncio.sleep(0.3)  # "never " is on its way; the fake sleeps before the rest
        status, _ = await recorder.stop(signal.SIGKILL)
        cut = await second
    assert status == -signal.SIGKILL
    assert cut.chunks == [b"never "]
    assert not cut.complete
    assert path.read_bytes() == after_first
    assert [i.response.body for i in yamlio.load(path).interactions] == [b"complete answer"]
    assert _partial_files(tmp_path) == []  # no save was under way to leave one behind


def _partial_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.partial"))
