"""The server child process: the four fakes and the bare baselines, on one event loop.

Fakes and baselines live in the same process, on the same loop, with the same aiohttp, and are
exercised one at a time, so the only difference between a fake and its baseline is the handler.
The fakes are built exactly as users get them (:func:`fake_upstreams.registry.build_server`,
strict); each baseline is a plain ``web.AppRunner`` with aiohttp's defaults and a handler that
reads the body and writes pre-planned chunks, one ``write`` each, as the fake does.

The parent talks to this process over a pipe, answered from a listener thread so that reading
CPU time or memory never runs on the loop being measured:

``("cpu",)`` process CPU seconds · ``("memory",)`` resident memory · ``("reset",)`` clear every
fake's journal and scripts, then set each default script again · ``("script", fake, dict)`` set
a fake's default script (kept across resets) ·
``("journal",)`` outcome counts per fake · ``("stop",)`` shut down.
"""

from __future__ import annotations

import asyncio
import gc
import os
import resource
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from aiohttp import web

from fake_upstreams.registry import build_server
from fake_upstreams.script import ResponseScript
from fake_upstreams.server import FakeServer
from tools.bench.procs import ChildProcess, answer_commands
from tools.bench.workloads import CannedReply


@dataclass(frozen=True, slots=True)
class ServerPlan:
    """What to serve: fakes by name (with a default script each) and labelled baselines."""

    fakes: Mapping[str, dict[str, Any]]
    baselines: Mapping[str, CannedReply]
    cpu: int | None = None


def baseline_app(reply: CannedReply) -> web.Application:
    """A bare aiohttp app answering ``reply`` on its path: the least a streaming server does."""
    chunks = reply.chunks
    headers = {"Content-Type": reply.content_type}

    async def handler(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(status=reply.status, headers=headers)
        response.enable_chunked_encoding()
        await response.prepare(request)
        for chunk in chunks:
            await response.write(chunk)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post(reply.path, handler)
    return app


def memory() -> dict[str, Any]:
    """Resident memory now (``/proc/self/status`` VmRSS), else the peak from getrusage."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return {"kib": int(line.split()[1]), "source": "/proc/self/status VmRSS"}
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"kib": int(peak), "source": "getrusage ru_maxrss (peak, not current)"}


def serve(conn: Connection, plan: ServerPlan) -> None:
    """Process entry point: pin, serve until told to stop."""
    if plan.cpu is not None:
        os.sched_setaffinity(0, {plan.cpu})
    asyncio.run(_serve(conn, plan))


async def _serve(conn: Connection, plan: ServerPlan) -> None:
    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()
    fakes: dict[str, FakeServer] = {}
    runners: list[web.AppRunner] = []
    try:
        for name, script in plan.fakes.items():
            server = build_server(name)
            server.state.scripts.replace(default=ResponseScript.from_dict(script))
            await server.start()
            fakes[name] = server
        baseline_ports: dict[str, int] = {}
        for label, reply in plan.baselines.items():
            runner = web.AppRunner(baseline_app(reply), handle_signals=False)
            await runner.setup()
            runners.append(runner)
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            baseline_ports[label] = int(runner.addresses[0][1])
        conn.send(
            {
                "fakes": {name: server.port for name, server in fakes.items()},
                "baselines": baseline_ports,
                "pid": os.getpid(),
            }
        )
        defaults = dict(plan.fakes)
        listener = threading.Thread(
            target=answer_commands,
            args=(conn, loop, stopped, lambda command: _answer(command, fakes, defaults)),
            name="bench-control",
            daemon=True,
        )
        listener.start()
        await stopped.wait()
    finally:
        for server in fakes.values():
            await server.stop()
        for runner in runners:
            await runner.cleanup()


def _answer(
    command: tuple[Any, ...],
    fakes: Mapping[str, FakeServer],
    defaults: dict[str, dict[str, Any]],
) -> Any:
    kind, args = command[0], command[1:]
    # Scripts and journals are thread-safe by design (tests drive them from another thread).
    if kind == "cpu":
        return time.process_time()
    if kind == "memory":
        return memory()
    if kind == "reset":
        # As a per-test fixture would: forget everything, then the test's script is set again.
        for name, server in fakes.items():
            server.state.reset()
            server.state.scripts.replace(default=ResponseScript.from_dict(defaults[name]))
        gc.collect()
        return "ok"
    if kind == "script":
        name, script = args
        defaults[name] = script
        fakes[name].state.scripts.replace(default=ResponseScript.from_dict(script))
        return "ok"
    if kind == "journal":
        return {name: _journal_summary(server) for name, server in fakes.items()}
    return f"unknown command {kind!r}"


def _journal_summary(server: FakeServer) -> dict[str, Any]:
    """Outcome counts, handler errors and the first problem, for the load test's verdict.

    Counted without building every entry (thousands after a load): the entries are only read
    when something went wrong, to name the first problem.
    """
    journal = server.state.journal
    outcomes = journal.outcome_counts()
    first_problem = ""
    if set(outcomes) - _UNPROBLEMATIC:
        first = next(entry for entry in journal.entries if entry.outcome not in _UNPROBLEMATIC)
        reason = first.verdict.message if first.verdict else first.error
        first_problem = f"{first.outcome}: {reason}"
    return {
        "requests": sum(outcomes.values()),
        "outcomes": outcomes,
        "handler_errors": len(journal.errors),
        "first_problem": first_problem,
    }


_UNPROBLEMATIC = frozenset({"completed", "pending"})


class ServerHandle:
    """The parent's side of a server process: ports, and the control commands."""

    def __init__(self, plan: ServerPlan, *, start_timeout: float = 120.0) -> None:
        self._process = ChildProcess(serve, plan, name="server")
        info = self._process.receive(start_timeout)
        self.fake_ports: dict[str, int] = info["fakes"]
        self.baseline_ports: dict[str, int] = info["baselines"]
        self.pid: int = info["pid"]

    def cpu(self) -> float:
        """CPU seconds the server process has used so far (user + system, all threads)."""
        return float(self._process.call(("cpu",)))

    def memory(self) -> dict[str, Any]:
        return dict(self._process.call(("memory",)))

    def reset(self) -> None:
        self._process.call(("reset",), timeout=60.0)

    def script(self, fake: str, script: dict[str, Any]) -> None:
        self._process.call(("script", fake, script))

    def journal(self) -> dict[str, Any]:
        return dict(self._process.call(("journal",), timeout=120.0))

    def close(self) -> None:
        self._process.close(("stop",))
