"""`tapedeck record` never loses a session quietly: the cassette is checked writable before the
proxy is announced, a write that fails later is reported at once, two sessions never record into
one cassette, symlinks are written through, and bad options or paths are one line, not a
traceback.

The sessions run as real processes (``python -m tools.cli record``) against a fake in the test's
loop; the checks that need no proxy run the Recorder in-process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import pytest

from cassettes import yamlio
from cassettes.model import Cassette, Interaction, RecordedRequest, RecordedResponse
from cassettes.recorder import Recorder, RecordMode
from fake_upstreams.registry import build_server
from fake_upstreams.server import FakeServer
from providers.errors import CassetteError
from tests._rawclient import build_request, exchange
from tests.cli_process import start_cli
from tests.wire_literals import AIVVM_HI_BODY
from tools.cli import build_parser, main

ROOT = Path(__file__).resolve().parent.parent
AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def _body(words: str) -> bytes:
    """AIVVM_HI_BODY with another message: a request of its own."""
    body = json.loads(AIVVM_HI_BODY)
    body["messages"] = [{"role": "user", "content": words}]
    return json.dumps(body).encode()


class Session:
    """A running ``tapedeck record``: its URL, and its stderr lines as they come."""

    def __init__(self, process: asyncio.subprocess.Process, url: str) -> None:
        self.process = process
        self.url = url
        self.port = int(url.rsplit(":", 1)[1])
        self.lines: list[str] = []
        self._reader = asyncio.create_task(self._read_stderr())

    async def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        while line := await self.process.stderr.readline():
            self.lines.append(line.decode().rstrip("\n"))

    async def post(self, words: str) -> int:
        reply = await exchange(self.port, build_request("/api/chat", _body(words)), deadline=10)
        assert reply.complete, reply.problem
        return reply.status

    async def wait_for_line(self, *needles: str, seconds: float = 10.0) -> str:
        """The first stderr line holding every needle, waiting for it if need be."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while loop.time() < deadline:
            for line in self.lines:
                if all(needle in line for needle in needles):
                    return line
            await asyncio.sleep(0.02)
        pytest.fail(f"no stderr line with {needles}; stderr so far:\n" + "\n".join(self.lines))

    async def stop(self, sig: int = signal.SIGINT) -> tuple[int, str]:
        self.process.send_signal(sig)
        status = await asyncio.wait_for(self.process.wait(), 20)
        await asyncio.wait_for(self._reader, 10)
        return status, "\n".join(self.lines)


async def _start(args: Sequence[str]) -> asyncio.subprocess.Process:
    return await start_cli("record", *args)


@contextlib.asynccontextmanager
async def session(args: Sequence[str]) -> AsyncIterator[Session]:
    """A `tapedeck record ARGS` that printed its ``record URL`` line; killed if left running."""
    process = await _start(args)
    try:
        assert process.stdout is not None
        assert process.stderr is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        if not line.startswith("record http://"):
            problem = (await asyncio.wait_for(process.stderr.read(), 10)).decode()
            pytest.fail(f"expected 'record URL', got {line!r}; stderr: {problem}")
        yield Session(process, line.split()[1])
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def refused(args: Sequence[str], seconds: float = 30.0) -> tuple[int, str, str]:
    """Run `tapedeck record ARGS`, which must exit by itself: status, stdout, stderr."""
    process = await _start(args)
    try:
        out, err = await asyncio.wait_for(process.communicate(), seconds)
    except TimeoutError:
        process.kill()
        out, err = await process.communicate()
        pytest.fail(f"record did not refuse to start; stdout {out!r}, stderr {err!r}")
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.fixture
async def aivvm() -> AsyncIterator[FakeServer]:
    async with build_server("Aivvm", strictness="lenient") as fake:
        yield fake


def _one_line_error(err: str, *needles: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("tapedeck record: "), err
    for needle in needles:
        assert needle in lines[0], err


# -- 1. the cassette must be writable before the proxy is announced -----------------------------


async def test_a_cassette_under_a_regular_file_is_refused_before_the_url(
    aivvm: FakeServer, tmp_path: Path
) -> None:
    (tmp_path / "one.yaml").write_text("not a directory\n")
    path = tmp_path / "one.yaml" / "x.yaml"
    status, out, err = await refused(["--target", aivvm.url, "--cassette", str(path)])
    assert (status, out) == (1, "")
    _one_line_error(err, f"cannot write {path}", "is not a directory")


async def test_a_directory_as_the_cassette_is_refused_in_mode_all(
    aivvm: FakeServer, tmp_path: Path
) -> None:
    path = tmp_path / "adir"
    path.mkdir()
    args = ["--target", aivvm.url, "--cassette", str(path), "--mode", "all"]
    status, out, err = await refused(args)
    assert (status, out) == (1, "")
    _one_line_error(err, f"cannot write {path}", "directory")


@pytest.mark.skipif(AS_ROOT, reason="root writes into read-only directories")
async def test_a_read_only_directory_is_refused_before_the_url(
    aivvm: FakeServer, tmp_path: Path
) -> None:
    locked = tmp_path / "ro"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        path = locked / "x.yaml"
        status, out, err = await refused(["--target", aivvm.url, "--cassette", str(path)])
    finally:
        locked.chmod(0o755)
    assert (status, out) == (1, "")
    _one_line_error(err, f"cannot write {path}", "Permission denied")


def test_the_recorder_probes_the_directory_and_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "new" / "deeper" / "c.yaml"
    recorder = _recorder(path, "once")
    assert _names(path.parent) == [".c.yaml.lock"]  # the session's
    asyncio.run(recorder.close())
    assert list(path.parent.iterdir()) == []  # the directory was made; the probe and lock went

    def no_room(*args: object, **kwargs: object) -> tuple[int, str]:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", no_room)
    with pytest.raises(CassetteError, match=r"cannot write .*c\.yaml: Permission denied"):
        _recorder(path, "new_episodes")


async def test_a_write_failing_mid_session_is_said_at_once_and_retried(
    aivvm: FakeServer, tmp_path: Path
) -> None:
    path = tmp_path / "c.yaml"
    async with session(["--target", aivvm.url, "--cassette", str(path), "--mode", "all"]) as s:
        assert await s.post("first") == 200
        await s.wait_for_line("recorded POST /api/chat")
        await _wait_until(path.exists)
        path.unlink()
        path.mkdir()  # a directory where the file goes: the rename over it fails
        assert await s.post("second") == 200
        problem = await s.wait_for_line("cannot write", str(path))
        assert problem.startswith("tapedeck record: ")
        assert await s.post("third") == 200
        third = await s.wait_for_line("recorded POST /api/chat", "3 recorded")
        assert "not saved" in third.lower()
        path.rmdir()  # fixed: the next write saves everything
        assert await s.post("fourth") == 200
        await s.wait_for_line("written again")
        status, err = await s.stop()
    assert status == 0, err
    assert "Traceback" not in err
    assert len(yamlio.load(path)) == 4


async def test_a_write_still_failing_at_the_end_is_one_line_and_exit_1(
    aivvm: FakeServer, tmp_path: Path
) -> None:
    path = tmp_path / "c.yaml"
    async with session(["--target", aivvm.url, "--cassette", str(path), "--mode", "all"]) as s:
        assert await s.post("first") == 200
        await _wait_until(path.exists)
        path.unlink()
        path.mkdir()
        assert await s.post("second") == 200
        await s.wait_for_line("cannot write")
        status, err = await s.stop()
    assert status == 1, err
    assert "Traceback" not in err
    summary = err.strip().splitlines()[-1]
    assert "2 recorded" in summary
    assert "NOT SAVED" in summary
    assert str(path) in summary


# -- 2. one session per cassette -----------------------------------------------------------------


async def test_a_second_session_on_the_same_cassette_is_refused(
    aivvm: FakeServer, tmp_path: Path
) -> None:
    path = tmp_path / "shared.yaml"
    args = ["--target", aivvm.url, "--cassette", str(path), "--mode", "new_episodes"]
    async with session(args) as first:
        assert await first.post("one") == 200
        status, out, err = await refused(args)
        assert (status, out) == (1, "")
        _one_line_error(err, str(path), "another", f"pid {first.process.pid}")
        assert await first.post("two") == 200
        status, stderr = await first.stop()
    assert status == 0, stderr
    assert len(yamlio.load(path)) == 2
    async with session(args) as again:  # released at the end of the first session
        assert await again.post("three") == 200
        status, stderr = await again.stop()
    assert status == 0, stderr
    assert len(yamlio.load(path)) == 3
    assert _names(tmp_path) == ["shared.yaml"]  # no lock file left behind


async def test_a_killed_session_does_not_keep_the_cassette_locked(
    aivvm: FakeServer, tmp_path: Path
) -> None:
    path = tmp_path / "shared.yaml"
    args = ["--target", aivvm.url, "--cassette", str(path), "--mode", "new_episodes"]
    async with session(args) as first:
        assert await first.post("one") == 200
        await _wait_until(path.exists)
        status, _ = await first.stop(signal.SIGKILL)
    assert status == -signal.SIGKILL
    async with session(args) as second:
        assert await second.post("two") == 200
        status, stderr = await second.stop()
    assert status == 0, stderr
    assert len(yamlio.load(path)) == 2


def test_sessions_through_a_symlink_and_its_target_exclude_each_other(tmp_path: Path) -> None:
    real = tmp_path / "real.yaml"
    link = tmp_path / "link.yaml"
    link.symlink_to(real.name)
    first = _recorder(real, "new_episodes")
    try:
        with pytest.raises(CassetteError, match="another"):
            _recorder(link, "all")
    finally:
        asyncio.run(first.close())
    asyncio.run(_recorder(link, "all").close())  # free again


def test_replay_only_sessions_take_no_lock(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    yamlio.save(_cassette("old"), path)
    recording = _recorder(path, "new_episodes")
    try:
        for mode in ("none", "once"):  # the cassette exists: both only replay
            asyncio.run(_recorder(path, mode).close())
    finally:
        asyncio.run(recording.close())


def test_a_write_after_close_never_clobbers_the_next_session(tmp_path: Path) -> None:
    path = tmp_path / "shared.yaml"
    first = _recorder(path, "new_episodes")
    first.add(_interaction("one"))
    asyncio.run(first.close())
    second = _recorder(path, "new_episodes")  # takes the lock the first one released
    first.add(_interaction("late"))  # a relay of the first session that outlived its stop
    first.persist_now()
    assert first.write_problem is not None
    assert "after this session ended" in first.write_problem
    assert [i.request.uri for i in yamlio.load(path).interactions] == ["http://127.0.0.1:9/one"]
    asyncio.run(second.close())
    first.persist_now()  # nobody holds the lock now: the late interaction is written after all
    assert first.write_problem is None
    assert len(yamlio.load(path)) == 2


def test_record_help_documents_the_lock() -> None:
    text = " ".join(_subcommand_help("record").split())
    assert "lock" in text
    assert "refused" in text


# -- 3. symlinks are written through ------------------------------------------------------------


def test_a_symlinked_cassette_is_written_through_to_its_target(tmp_path: Path) -> None:
    real = tmp_path / "real.yaml"
    link = tmp_path / "link.yaml"
    yamlio.save(_cassette("old"), real)
    link.symlink_to(real.name)
    recorder = _recorder(link, "new_episodes")
    recorder.add(_interaction("new"))
    asyncio.run(recorder.close())
    assert link.is_symlink()
    assert os.readlink(link) == real.name
    assert [i.request.uri for i in yamlio.load(real).interactions] == [
        "http://127.0.0.1:9/old",
        "http://127.0.0.1:9/new",
    ]


def test_a_dangling_symlink_gets_its_target_created(tmp_path: Path) -> None:
    link = tmp_path / "link.yaml"
    link.symlink_to("sub/real.yaml")
    recorder = _recorder(link, "once")
    recorder.add(_interaction("new"))
    asyncio.run(recorder.close())
    assert link.is_symlink()
    assert len(yamlio.load(tmp_path / "sub" / "real.yaml")) == 1


# -- 4. unreadable cassettes are one line ---------------------------------------------------------


@pytest.mark.parametrize("mode", ["once", "new_episodes", "none"])
async def test_a_directory_as_the_cassette_is_one_line_not_a_traceback(
    aivvm: FakeServer, tmp_path: Path, mode: RecordMode
) -> None:
    path = tmp_path / "somedir"
    path.mkdir()
    args = ["--target", aivvm.url, "--cassette", str(path), "--mode", mode]
    status, out, err = await refused(args)
    assert (status, out) == (1, "")
    _one_line_error(err, str(path), "directory")


async def test_an_empty_cassette_path_is_one_line(aivvm: FakeServer) -> None:
    status, out, err = await refused(["--target", aivvm.url, "--cassette", ""])
    assert (status, out) == (1, "")
    _one_line_error(err, "cannot read ''")


@pytest.mark.skipif(AS_ROOT, reason="root reads unreadable files")
async def test_an_unreadable_cassette_is_one_line(aivvm: FakeServer, tmp_path: Path) -> None:
    path = tmp_path / "secret.yaml"
    yamlio.save(_cassette("old"), path)
    path.chmod(0)
    try:
        status, out, err = await refused(["--target", aivvm.url, "--cassette", str(path)])
    finally:
        path.chmod(0o644)
    assert (status, out) == (1, "")
    _one_line_error(err, f"cannot read {path}", "Permission denied")


# -- 5. URL options are checked up front -----------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value", "needle"),
    [
        ("--target", "http://127.0.0.1:99999", "port"),
        ("--target", "http://127.0.0.1:abc", "port"),
        ("--target", "http://127.0.0.1:0", "port"),
        ("--target", "http://[::1", "not a valid URL"),
        ("--target", "ftp://example.com", "http(s)"),
        ("--record-as", "ftp://x", "http(s)"),
        ("--record-as", "https://example.com:70000", "port"),
        ("--record-as", "http://[::1", "not a valid URL"),
    ],
)
def test_url_options_are_validated_with_messages_naming_the_option(
    option: str, value: str, needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["record", "--target", "http://127.0.0.1:8101", "--cassette", "c.yaml"]
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args([*args, option, value])
    assert exited.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith(f"tapedeck record: error: argument {option}: "), error
    assert needle in error
    assert "_target" not in error
    assert "the target" not in error or option == "--target"


def test_good_url_options_still_parse() -> None:
    target, record_as = "http://[::1]:8101/", "https://chat.example.com"
    args = build_parser().parse_args(
        ["record", "--target", target, "--cassette", "c.yaml", "--record-as", record_as]
    )
    assert (args.target, args.record_as) == ("http://[::1]:8101", "https://chat.example.com")


# -- helpers -------------------------------------------------------------------------------------


def _recorder(path: Path, mode: RecordMode) -> Recorder:
    return Recorder(path, target_url="http://127.0.0.1:9", source="fake", mode=mode)


def _interaction(name: str) -> Interaction:
    request = RecordedRequest("GET", f"http://127.0.0.1:9/{name}")
    return Interaction(request, RecordedResponse.whole(200, "OK", {}, name.encode()))


def _cassette(name: str) -> Cassette:
    return Cassette((_interaction(name),))


def _names(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


def _subcommand_help(name: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "tools.cli", name, "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout


async def _wait_until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not condition():
        if loop.time() > deadline:
            pytest.fail("timed out")
        await asyncio.sleep(0.02)


def test_main_reports_an_unreadable_cassette_in_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "adir"
    path.mkdir()
    assert main(["record", "--target", "http://127.0.0.1:9", "--cassette", str(path)]) == 1
    assert f"cannot read {path}: Is a directory" in capsys.readouterr().err
