"""`tapedeck replay`, `inspect` and `lint` as users run them. Replay runs as a subprocess (it
serves until a signal); inspect and lint run in-process through the CLI's ``main``."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from cassettes import yamlio
from cassettes.model import (
    Cassette,
    Interaction,
    Provenance,
    RecordedRequest,
    RecordedResponse,
    chunks_from_sizes,
)
from providers import GetGpt
from providers.errors import UnsafeCassetteError
from providers.wire import getgpt
from tests.cli_process import ROOT, CliProcess
from tools.cli import main

ORIGIN = "http://127.0.0.1:8103"
REPLAY_LINE = re.compile(r"^replay (http://127\.0\.0\.1:\d+)$")
PROMPTS = {"first": "Answer one", "second": "Answer two"}


def getgpt_cassette() -> Cassette:
    """Two GetGpt calls, as the adapter sends them (fresh key, IV and uuid each)."""
    interactions = []
    for prompt, answer in PROMPTS.items():
        call = GetGpt.prepare("", [{"role": "user", "content": prompt}], {})
        request = RecordedRequest(
            "POST",
            ORIGIN + call.http.wire.path,
            {name: [value] for name, value in call.http.wire.headers},
            call.http.wire.body,
        )
        frames = getgpt.CODEC.encode_reply([answer[:4], answer[4:]])
        response = RecordedResponse(
            201,
            "Created",
            {"Content-Type": ["text/event-stream"], "Transfer-Encoding": ["chunked"]},
            b"".join(frames),
            chunks_from_sizes([len(frame) for frame in frames], [2.0, 3.5, 9.25]),
        )
        interactions.append(Interaction(request, response))
    provenance = Provenance(ORIGIN, "2024-05-01T00:00:00Z", "0.1.0", "fake")
    return Cassette(tuple(interactions), provenance)


@pytest.fixture
def cassette_path(tmp_path: Path) -> Path:
    path = tmp_path / "getgpt.yaml"
    yamlio.save(getgpt_cassette(), path)
    return path


class Replay(CliProcess):
    """A running `tapedeck replay`."""

    def __init__(self, *args: str) -> None:
        super().__init__("replay", *args)

    def url(self) -> str:
        line = self.next_line()
        match = REPLAY_LINE.match(line)
        assert match, f"not a 'replay URL' line: {line!r}"
        return match[1]

    def stop(self, sig: signal.Signals) -> tuple[int, str]:
        err = self.send_and_wait(sig)
        return self.proc.returncode, err


@pytest.fixture
def replays() -> Iterator[list[Replay]]:
    started: list[Replay] = []
    yield started
    for replay in started:
        replay.kill()


def test_replay_serves_an_adapter_logs_each_request_and_stops_on_sigterm(
    cassette_path: Path, replays: list[Replay]
) -> None:
    replay = Replay(str(cassette_path), "--port", "0")
    replays.append(replay)
    url = replay.url()
    messages = [{"role": "user", "content": "second"}]
    assert "".join(GetGpt.create_completion("", messages, base_url=url, timeout=10)) == (
        "Answer two"
    )
    assert requests.post(url + "/nowhere", json={}, timeout=10).status_code == 421
    status, err = replay.stop(signal.SIGTERM)
    assert status == 0, err
    assert "#1 POST /api/chat/stream -> 201, 3 chunk(s)" in err
    assert "miss POST /nowhere -> 421: no interaction in" in err
    assert "1 interaction(s) never played:" in err
    assert f"  #0 POST {ORIGIN}/api/chat/stream" in err


def test_replay_stops_on_ctrl_c_and_honours_speed_and_repeats(
    cassette_path: Path, replays: list[Replay]
) -> None:
    replay = Replay(str(cassette_path), "--speed", "1000", "--allow-repeats", "--quiet")
    replays.append(replay)
    url = replay.url()
    for _ in range(2):
        text = "".join(
            GetGpt.create_completion("", [{"role": "user", "content": "first"}], base_url=url)
        )
        assert text == "Answer one"
    status, err = replay.stop(signal.SIGINT)
    assert status == 0, err
    assert "miss" not in err
    assert "#1 POST" in err  # the summary still names what was never played


def test_replay_usage_and_loading_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["replay", str(tmp_path / "absent.yaml")]) == 1
    assert "cannot read" in capsys.readouterr().err
    unsafe = tmp_path / "unsafe.yaml"
    unsafe.write_text(UNSAFE)
    assert main(["replay", str(unsafe)]) == 1
    assert "refusing YAML tag !!python/object" in capsys.readouterr().err
    for bad in (["--speed", "-1"], ["--speed", "fast"], ["--port", "70000"]):
        with pytest.raises(SystemExit) as exited:
            main(["replay", str(unsafe), *bad])
        assert exited.value.code == 2


# -- inspect ---------------------------------------------------------------------------------


def test_inspect_shows_provenance_interactions_and_a_chunk_timeline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = b'data: "h\xc3\xa9"\n\n\x00tail'
    response = RecordedResponse(
        200, "OK", {}, body, chunks_from_sizes([9, len(body) - 9], [1.25, 40.5])
    )
    cassette = Cassette(
        (Interaction(RecordedRequest("POST", ORIGIN + "/api/chat?x=1", {}, b"{}"), response),),
        Provenance(ORIGIN, "2024-05-01T00:00:00Z", "0.1.0", "fake"),
    )
    path = tmp_path / "c.yaml"
    yamlio.save(cassette, path)
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"recorded from {ORIGIN} (a local fake upstream)" in out
    assert "recorded at   2024-05-01T00:00:00Z by tapedeck 0.1.0" in out
    assert "#0 POST /api/chat -> 200 OK  2 chunk(s), 18 B" in out
    # The first chunk ends inside the "é": its lead byte is shown escaped.
    assert re.search(r"^\s+1\.25\s+9\s+data: \"h\\xc3$", out, re.MULTILINE), out
    assert re.search(r"^\s+40\.50\s+9\s+\\xa9\"\\n\\n\\x00tail$", out, re.MULTILINE), out

    assert main(["inspect", "--json", str(path)]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["provenance"]["source"] == "fake"
    (entry,) = document["interactions"]
    assert (entry["status"], entry["chunk_count"], entry["bytes"]) == (200, 2, len(body))
    assert [c["size"] for c in entry["chunks"]] == [9, 9]
    assert [c["offset_ms"] for c in entry["chunks"]] == [1.25, 40.5]

    assert main(["inspect", "--no-chunks", str(path)]) == 0
    assert "preview" not in capsys.readouterr().out


def test_inspect_says_when_a_cassette_has_no_provenance(
    cassette_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plain = tmp_path / "plain.yaml"
    yamlio.save(Cassette(getgpt_cassette().interactions), plain)
    assert main(["inspect", str(plain)]) == 0
    out = capsys.readouterr().out
    assert "provenance    none (a plain vcrpy cassette)" in out
    assert "interactions  2" in out
    assert "#1 POST /api/chat/stream -> 201 Created  3 chunk(s)" in out


# -- lint --------------------------------------------------------------------------------------

UNSAFE = """\
version: 1
interactions:
- request: !!python/object/apply:os.system ["echo owned"]
  response: {}
"""


def planted(tmp_path: Path) -> Path:
    """A cassette saved without scrubbing, with secrets planted by hand."""
    request = RecordedRequest(
        "POST",
        ORIGIN + "/api/chat",
        {"Authorization": ["Bearer abcdef0123456789abcdef"], "Cookie": ["session=s3cr3t"]},
        b'{"prompt": "hi"}',
    )
    response = RecordedResponse.whole(
        200, "OK", {"Content-Type": ["text/plain"]}, b"your key is sk-abcdefghijklmnopqrstuvwx"
    )
    path = tmp_path / "nested" / "deeper" / "planted.yml"
    yamlio.save(Cassette((Interaction(request, response),)), path)
    return path


def lint(capsys: pytest.CaptureFixture[str], *paths: Path | str) -> tuple[int, list[str], str]:
    status = main(["lint", *map(str, paths)])
    captured = capsys.readouterr()
    return status, captured.out.splitlines(), captured.err


def test_lint_is_quiet_and_zero_on_a_clean_cassette(
    cassette_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert lint(capsys, cassette_path) == (0, [], "tapedeck lint: 1 file(s) clean\n")


def test_lint_finds_planted_secrets_on_the_lines_that_hold_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = planted(tmp_path)
    status, lines, err = lint(capsys, tmp_path)  # a directory: found by recursion
    assert status == 1
    assert "finding(s) in 1 file(s)" in err
    found: dict[str, int] = {}
    for line in lines:
        match = re.fullmatch(r"(.+):(\d+): ([a-z-]+): (.+)", line)
        assert match, line
        assert match[1] == str(path)
        found.setdefault(match[3], int(match[2]))
    assert {"bearer-token", "secret-header", "cookie", "sk-key"} <= found.keys()
    text = path.read_text().splitlines()
    assert "Bearer abcdef" in text[found["bearer-token"] - 1]
    assert "session=s3cr3t" in text[found["cookie"] - 1]
    assert "sk-abcdef" in text[found["sk-key"] - 1]
    assert not any("s3cr3t" in line or "abcdef0123" in line for line in lines)


def test_a_python_object_cassette_is_refused_by_load_and_flagged_by_lint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "unsafe.yaml"
    path.write_text(UNSAFE)
    with pytest.raises(UnsafeCassetteError, match="python/object"):
        yamlio.load(path)
    status, lines, _ = lint(capsys, path)
    assert status == 1
    assert lines[0].startswith(f"{path}:3: unsafe-tag: YAML tag !!python/object/apply:os.system")


def test_lint_usage_errors_exit_2(
    tmp_path: Path, cassette_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, lines, err = lint(capsys, cassette_path, tmp_path / "absent.yaml")
    assert (status, lines) == (2, [])
    assert "no such file or directory" in err
    with pytest.raises(SystemExit) as exited:
        main(["lint"])
    assert exited.value.code == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert lint(capsys, empty)[0] == 0


def test_lint_runs_as_a_console_command(tmp_path: Path) -> None:
    path = planted(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "tools.cli", "lint", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert f"{path}:" in result.stdout


def test_output_cut_short_by_its_reader_ends_quietly(tmp_path: Path) -> None:
    # `tapedeck inspect big.yaml | head -1`: the reader leaves after one line, and the command
    # must end at once, silently, with SIGPIPE's status rather than a BrokenPipeError traceback.
    from tools.bench import cassette_gen

    path = cassette_gen.write(200, tmp_path)  # ~170 KB of inspect output: beyond any pipe buffer
    process = subprocess.Popen(
        [sys.executable, "-m", "tools.cli", "inspect", path],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    assert process.stdout.readline().startswith(b"cassette")
    process.stdout.close()
    _, stderr = process.communicate(timeout=60)
    assert (process.returncode, stderr.decode()) == (141, "")
