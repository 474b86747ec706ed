"""Child processes for the bench: the server process, the client process, and their CPUs.

Why separate processes: the client's CPU time must not be taken from the server being measured,
and the server must not share a GIL with anything. Children are started with ``spawn`` (a fresh
interpreter: no inherited threads, loops or memory from the parent, so resident-memory figures are
the server's own) and talk to the parent over a pipe. Every wait on a child has a deadline; a
child that misses it is terminated, so the bench always ends by itself.

CPU plan: with two or more CPUs the server is pinned to one and the client to another, so each has
a whole CPU and neither can steal from the other (on a 2-core machine that is the whole machine;
the parent only waits on pipes). With one CPU nothing is pinned and the report says so.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import multiprocessing.connection
import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Protocol

from providers.errors import TapedeckError, UpstreamTimeoutError


def answer_commands(
    conn: Connection,
    loop: asyncio.AbstractEventLoop,
    stopped: asyncio.Event,
    answer: Callable[[tuple[Any, ...]], Any],
) -> None:
    """A server child's control thread: send back ``answer(command)`` for each parent command.

    ``("stop",)`` (or ``None``) sets ``stopped`` on the loop and is acknowledged with
    ``"stopping"``; a parent that went away (EOF) stops the server too, rather than let it linger.
    """
    while True:
        try:
            command = conn.recv()
        except EOFError:
            loop.call_soon_threadsafe(stopped.set)
            return
        if command is None or command[0] == "stop":
            loop.call_soon_threadsafe(stopped.set)
            conn.send("stopping")
            return
        conn.send(answer(command))


class Job(Protocol):
    """Work for the client process: a picklable object with an async ``execute``."""

    async def execute(self) -> Any: ...


@dataclass(frozen=True, slots=True)
class ChildFailure:
    """What a child sends back instead of a result when the work raised."""

    error: str
    traceback: str


@dataclass(frozen=True, slots=True)
class CpuPlan:
    """Which CPU the server and the client are pinned to (``None``: not pinned)."""

    server: int | None
    client: int | None

    @property
    def description(self) -> str:
        if self.server is None:
            return "not pinned (fewer than 2 CPUs available)"
        return f"server process pinned to CPU {self.server}, client process to CPU {self.client}"


def cpu_plan(pin: bool = True) -> CpuPlan:
    """One CPU for the server and another for the client, when there are two to give."""
    available = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if not pin or len(available) < 2:
        return CpuPlan(None, None)
    return CpuPlan(available[0], available[1])


class ChildProcess:
    """A spawned child with a pipe; :meth:`call` sends a message and waits for the answer."""

    def __init__(self, target: Callable[..., None], *args: Any, name: str) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child_conn = context.Pipe()
        self.name = name
        self._process = context.Process(
            target=target, args=(child_conn, *args), name=name, daemon=True
        )
        self._process.start()
        child_conn.close()

    @property
    def pid(self) -> int:
        return int(self._process.pid or 0)

    def receive(self, timeout: float) -> Any:
        """The next message from the child; terminates it if none comes within ``timeout``."""
        # Wait on the pipe and on the process together: a child that dies is noticed at once.
        ready = multiprocessing.connection.wait([self._conn, self._process.sentinel], timeout)
        if not ready:
            self.terminate()
            raise UpstreamTimeoutError(
                f"the bench's {self.name} process did not answer within {timeout:g} s "
                "and was terminated"
            )
        if self._conn not in ready and not self._conn.poll():
            self._process.join(5.0)
            raise TapedeckError(
                f"the bench's {self.name} process died (exit code {self._process.exitcode})"
            )
        try:
            message = self._conn.recv()
        except EOFError:
            raise TapedeckError(
                f"the bench's {self.name} process died (exit code {self._process.exitcode})"
            ) from None
        if isinstance(message, ChildFailure):
            raise TapedeckError(f"{self.name} process: {message.error}\n{message.traceback}")
        return message

    def call(self, message: Any, timeout: float = 30.0) -> Any:
        self._conn.send(message)
        return self.receive(timeout)

    def close(self, goodbye: Any = None, timeout: float = 10.0) -> None:
        """Ask the child to stop, wait a little, then terminate it."""
        if self._process.is_alive():
            try:
                self._conn.send(goodbye)
                if self._conn.poll(timeout):
                    self._conn.recv()
            except (OSError, EOFError):
                pass
            self._process.join(timeout)
        self.terminate()
        self._conn.close()

    def terminate(self) -> None:
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(5.0)
            if self._process.is_alive():
                self._process.kill()
                self._process.join(5.0)


def client_main(conn: Connection, cpu: int | None) -> None:
    """Client process entry point: run each job received, send back its result, until None."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            conn.send("bye")
            return
        try:
            result = asyncio.run(job.execute())
        except Exception as error:
            result = ChildFailure(f"{type(error).__name__}: {error}", traceback.format_exc())
        conn.send(result)


class Stopwatch:
    """Wall and CPU time of this process between start and stop."""

    def __init__(self) -> None:
        self.wall = 0.0
        self.cpu = 0.0
        self._wall0 = time.perf_counter()
        self._cpu0 = time.process_time()

    def stop(self) -> Stopwatch:
        self.wall = time.perf_counter() - self._wall0
        self.cpu = time.process_time() - self._cpu0
        return self
