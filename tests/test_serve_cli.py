"""`tapedeck serve` as a user runs it: a subprocess, driven by the adapters and by curl, stopped
by a signal. Usage errors are checked in-process (nothing starts, so nothing to stop)."""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fake_upstreams.registry import FAKES
from providers import PROVIDERS
from providers.wire import codelinkava
from tests.cli_process import CliProcess
from tests.fakes_support import CHAT_PATH, SUCCESS_STATUS
from tools.cli import main

HI = [{"role": "user", "content": "hi"}]
URL_LINE = re.compile(r"^(\w+) (http://127\.0\.0\.1:(\d+))$")
STOP_WITHIN = 5.0


class Serve(CliProcess):
    """A running `tapedeck serve`."""

    def __init__(self, *args: str) -> None:
        super().__init__("serve", *args)

    def urls(self, count: int, timeout: float = 30.0) -> dict[str, str]:
        """The first ``count`` stdout lines, each ``NAME URL``."""
        urls = {}
        for _ in range(count):
            line = self.next_line(timeout)
            match = URL_LINE.match(line)
            assert match, f"not a 'NAME URL' line: {line!r}"
            urls[match[1]] = match[2]
        return urls

    def stop(self, sig: signal.Signals) -> tuple[int, float, str, str]:
        """Send ``sig``; returns exit status, seconds to exit, the rest of stdout, stderr."""
        start = time.monotonic()
        err = self.send_and_wait(sig, timeout=STOP_WITHIN * 2)
        took = time.monotonic() - start
        return self.proc.returncode, took, "\n".join(self.rest_of_stdout()), err


@pytest.fixture
def serve() -> Iterator[list[Serve]]:
    started: list[Serve] = []
    yield started
    for process in started:
        process.kill()


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["curl", "-sS", "-N", "--max-time", "10", *args],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )


def sse_text(body: str) -> str:
    pieces = []
    for line in body.splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            pieces.append(json.loads(line[6:])["choices"][0]["delta"].get("content", ""))
    return "".join(pieces)


needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


@needs_curl
def test_serve_drives_adapters_and_curl_then_stops_on_sigterm(serve: list[Serve]) -> None:
    server = Serve("--port", "0")
    serve.append(server)
    urls = server.urls(len(FAKES))
    assert list(urls) == list(FAKES)
    assert len({url.rsplit(":", 1)[1] for url in urls.values()}) == len(FAKES)

    for name, provider in PROVIDERS.items():
        text = "".join(provider.create_completion("", HI, base_url=urls[name], timeout=10))
        assert text == "You said: hi", name

    # curl speaks for a client outside Python: the exact browser headers pass strict mode ...
    headers = [
        arg for name, value in codelinkava.BROWSER_HEADERS for arg in ("-H", f"{name}: {value}")
    ]
    body = json.dumps(
        {"messages": [{"role": "user", "content": "curl hi"}], "temperature": 0.6, "stream": True}
    )
    chat = f"{urls['CodeLinkAva']}/api/chat"
    reply = curl(*headers, "-H", "Content-Type: application/json", "-d", body, chat)
    assert reply.returncode == 0, reply.stderr
    assert sse_text(reply.stdout) == "You said: curl hi"
    assert reply.stdout.rstrip().endswith("data: [DONE]")
    # ... curl's own headers do not, and the answer names the difference.
    refused = curl("-H", "Content-Type: application/json", "-d", body, chat)
    assert json.loads(refused.stdout)["error"]["code"] == "not_like_original"
    # The control endpoint scripts a fake from outside.
    script = curl(
        "-H",
        "Content-Type: application/json",
        "-d",
        '{"text": "scripted by curl"}',
        f"{urls['GetGpt']}/__tapedeck__/script",
    )
    assert json.loads(script.stdout)["ok"] is True
    getgpt = PROVIDERS["GetGpt"].create_completion("", HI, base_url=urls["GetGpt"], timeout=10)
    assert "".join(getgpt) == "scripted by curl"

    status, took, rest, err = server.stop(signal.SIGTERM)
    assert status == 0, err
    assert took < STOP_WITHIN
    assert rest == ""  # stdout holds the URL lines and nothing else
    assert "Traceback" not in err
    log = [line for line in err.splitlines() if not line.startswith("tapedeck serve:")]
    request_line = re.compile(
        r"^(\w+) (POST|GET) (\S+) (\d{3}) (\d+)B (\d+\.\d)ms( rejected=\w+)?$"
    )
    assert all(request_line.match(line) for line in log), log
    # One adapter call per provider (written out from the hand-made tables), then curl's.
    adapters = [[name, "POST", CHAT_PATH[name], str(SUCCESS_STATUS[name])] for name in PROVIDERS]
    assert [line.split()[:4] for line in log] == [
        *adapters,
        ["CodeLinkAva", "POST", "/api/chat", "200"],
        ["CodeLinkAva", "POST", "/api/chat", "400"],
        ["GetGpt", "POST", "/__tapedeck__/script", "200"],
        ["GetGpt", "POST", "/api/chat/stream", "201"],
    ]
    by_curl, refused_line = log[len(adapters)], log[len(adapters) + 1]
    assert refused_line.endswith(" rejected=not_like_original")
    assert int(by_curl.split()[4][:-1]) > len("You said: curl hi")  # bytes as sent, framing too


@needs_curl
def test_sigint_stops_a_lenient_server_mid_stream(serve: list[Serve]) -> None:
    server = Serve("--port", "0", "--only", "aivvm", "--lenient")
    serve.append(server)
    urls = server.urls(1)
    assert list(urls) == ["Aivvm"]
    slow = json.dumps({"text": "one two three four five six", "chunk_delay": 2})
    body = {"model": {"id": "gpt-4"}, "messages": HI, "key": "", "prompt": "", "temperature": 0.7}
    command = ["curl", "-sS", "-N", "--max-time", "20", "-H", "Content-Type: application/json"]
    command += ["-H", f"X-Tapedeck-Script: {slow}", "-d", json.dumps(body)]
    stream = subprocess.Popen(
        [*command, urls["Aivvm"] + "/api/chat"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert stream.stdout is not None
        assert stream.stdout.read(4) == b"one "  # lenient: curl's headers are fine; streaming now
        status, took, _, err = server.stop(signal.SIGINT)
    finally:
        stream.kill()
        stream.communicate()
    assert status == 0, err
    assert took < STOP_WITHIN
    assert "Traceback" not in err
    assert "KeyboardInterrupt" not in err
    lines = err.splitlines()
    assert "tapedeck serve: stopping" in lines
    # The reply in flight was cut by the shutdown, and its log line says so.
    assert re.match(r"^Aivvm POST /api/chat - \d+B \d+\.\dms cancelled$", lines[-1]), lines


def test_a_busy_port_is_named_with_a_way_out(serve: list[Serve]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        server = Serve("--only", "GetGpt", "--port", str(port))
        serve.append(server)
        _, err = server.proc.communicate(timeout=30)
    assert server.proc.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port} for GetGpt: the port is already in use" in err
    assert "--port 0" in err
    assert "Traceback" not in err


def test_usage_errors_start_nothing(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["serve", "--port", "8200"]) == 1
    assert "--port 8200 fits one fake only" in capsys.readouterr().err
    assert main(["serve", "--base-port", "65534"]) == 1
    assert "beyond 65535" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("GetGpt: {txt: 1}\n")
    assert main(["serve", "--scenario", str(bad)]) == 1
    assert f"scenario {bad}: fake GetGpt: unknown script key 'txt'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        main(["serve", "--only", "Aivvm,Nope"])
    assert usage.value.code == 2
    assert "no fake named 'Nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["serve", "--port", "0", "--base-port", "9000"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_a_host_beyond_loopback_warns(capsys: pytest.CaptureFixture[str]) -> None:
    # 192.0.2.1 (TEST-NET-1) is never a local address: the warning comes, then the bind fails.
    assert main(["serve", "--host", "192.0.2.1", "--only", "Aivvm", "--port", "0"]) == 1
    err = capsys.readouterr().err
    assert "warning: listening on 192.0.2.1, beyond loopback" in err
    assert "cannot listen on 192.0.2.1:0 for Aivvm" in err


def test_help_documents_ports_output_and_signals(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = capsys.readouterr().out
    for spec in FAKES.values():
        assert (
            f"{spec.name:<12} {spec.default_port}  stands in for https://{spec.real_host}" in text
        )
    for option in ("--only", "--host", "--port", "--base-port", "--scenario", "--lenient"):
        assert option in text
    assert "SIGTERM" in text
