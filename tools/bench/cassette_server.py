"""The cassette server process: replay servers and recording proxies, pinned to the server CPU.

Our side of the replay and first-byte comparisons runs here, in its own process as the fakes do
(see :mod:`tools.bench.procs`), so the client's work never shares a CPU or a GIL with it. The
parent drives it over a pipe, answered from a listener thread so the loop only ever serves:

``("replay", path)`` serve the cassette (:class:`~cassettes.replay.ReplayServer`, speed 0: no
delays), answer its port · ``("reset", path)`` every interaction playable again ·
``("record", target, cassette)`` replace the recording proxy by a fresh one in front of
``target``, recording into a new file (record mode ``all``), answer its port · ``("cpu",)``
process CPU seconds · ``("stop",)`` stop everything.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

from cassettes.proxy import RecordingProxy
from cassettes.recorder import Recorder
from cassettes.replay import ReplayServer
from providers.errors import TapedeckError
from tools.bench.procs import ChildProcess, answer_commands

_CALL_TIMEOUT = 120.0


class _Servers:
    """Everything the process serves, touched only from the event loop."""

    def __init__(self) -> None:
        self.replays: dict[str, ReplayServer] = {}
        self.proxy: RecordingProxy | None = None

    async def replay(self, path: str) -> int:
        if path not in self.replays:
            server = ReplayServer(path)
            await server.start()
            self.replays[path] = server
        return self.replays[path].port

    async def record(self, target: str, cassette: str) -> int:
        await self._stop_proxy()
        recorder = Recorder(cassette, target_url=target, source="fake", mode="all")
        self.proxy = RecordingProxy(recorder, target)
        await self.proxy.start()
        return int(self.proxy.url.rsplit(":", 1)[1])

    async def _stop_proxy(self) -> None:
        if self.proxy is not None:
            proxy, self.proxy = self.proxy, None
            await proxy.stop()

    async def stop(self) -> None:
        await self._stop_proxy()
        for server in self.replays.values():
            await server.stop()
        self.replays.clear()


def serve(conn: Connection, cpu: int | None) -> None:
    """Process entry point: pin, answer commands, serve until told to stop."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    asyncio.run(_serve(conn))


async def _serve(conn: Connection) -> None:
    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()
    servers = _Servers()
    listener = threading.Thread(
        target=answer_commands,
        args=(conn, loop, stopped, lambda command: _answer_safely(command, servers, loop)),
        name="bench-control",
        daemon=True,
    )
    try:
        conn.send({"pid": os.getpid()})
        listener.start()
        await stopped.wait()
    finally:
        await servers.stop()


def _answer_safely(
    command: tuple[Any, ...], servers: _Servers, loop: asyncio.AbstractEventLoop
) -> Any:
    try:
        return _answer(command, servers, loop)
    except Exception as error:  # sent back, raised by the parent's call
        return {"error": f"{type(error).__name__}: {error}"}


def _answer(command: tuple[Any, ...], servers: _Servers, loop: asyncio.AbstractEventLoop) -> Any:
    kind, args = command[0], command[1:]
    if kind == "cpu":
        return time.process_time()
    if kind == "replay":
        return _on_loop(servers.replay(args[0]), loop)
    if kind == "reset":
        # The index takes its own lock; the loop is idle between runs anyway.
        servers.replays[args[0]].reset()
        return "ok"
    if kind == "record":
        return _on_loop(servers.record(args[0], args[1]), loop)
    return {"error": f"unknown command {kind!r}"}


def _on_loop(coro: Any, loop: asyncio.AbstractEventLoop) -> Any:
    return asyncio.run_coroutine_threadsafe(coro, loop).result(_CALL_TIMEOUT)


class CassetteServer:
    """The parent's side of the cassette server process."""

    def __init__(self, cpu: int | None, *, start_timeout: float = 120.0) -> None:
        self._process = ChildProcess(serve, cpu, name="cassette-server")
        self.pid: int = self._process.receive(start_timeout)["pid"]

    def _call(self, *command: Any) -> Any:
        answer = self._process.call(command, _CALL_TIMEOUT + 10.0)
        if isinstance(answer, dict) and "error" in answer:
            raise TapedeckError(f"cassette server: {command[0]}: {answer['error']}")
        return answer

    def replay(self, path: str) -> str:
        """Serve the cassette at ``path``; its base URL."""
        return f"http://127.0.0.1:{self._call('replay', path)}"

    def reset(self, path: str) -> None:
        self._call("reset", path)

    def record(self, target: str, cassette: str) -> str:
        """A fresh recording proxy in front of ``target``; its base URL."""
        return f"http://127.0.0.1:{self._call('record', target, cassette)}"

    def cpu(self) -> float:
        return float(self._call("cpu"))

    def close(self) -> None:
        self._process.close(("stop",))
