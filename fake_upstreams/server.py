"""Running fakes on loopback: from async code in the current loop, or from sync code in a thread.

    async with FakeServer(make_app(codec)) as server:     # inside a running event loop
        ...server.url...

    with FakeServer(make_app(codec)) as server:           # from sync code: own loop in a thread
        requests.post(server.url + codec.chat_path, ...)

Port 0 (the default) binds an ephemeral port; :attr:`FakeServer.port` reads the real one back.
Handlers are cancelled when their client disconnects (aiohttp's ``handler_cancellation``), and
shutdown gives in-flight replies at most ``shutdown_timeout`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Coroutine, Iterator, Mapping
from types import TracebackType
from typing import Any, Self, TypeVar

from aiohttp import web
from aiohttp.log import access_logger

from fake_upstreams.app import STATE_KEY, FakeState, make_app
from providers.wire.common import UpstreamCodec

_T = TypeVar("_T")
_START_TIMEOUT = 30.0


class _LoopThread:
    """An event loop running forever in a daemon thread, for sync callers."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def call(self, coro: Coroutine[Any, Any, _T]) -> _T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(_START_TIMEOUT)

    def close(self) -> None:
        """Cancel what is left, stop the loop, join the thread, close the loop: no stray tasks."""
        self.call(_cancel_leftovers())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(_START_TIMEOUT)
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()


async def _cancel_leftovers() -> None:
    current = asyncio.current_task()
    tasks = [task for task in asyncio.all_tasks() if task is not current]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


class _Lifecycle(ABC):
    """``async with`` runs in the current loop; ``with`` runs a private loop in a thread."""

    _thread: _LoopThread | None = None

    @abstractmethod
    async def start(self) -> None: ...

    @abstractmethod
    async def stop(self) -> None: ...

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def __enter__(self) -> Self:
        thread = _LoopThread(f"tapedeck-{type(self).__name__}")
        try:
            thread.call(self.start())
        except BaseException:
            thread.close()
            raise
        self._thread = thread
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            try:
                thread.call(self.stop())
            finally:
                thread.close()


class FakeServer(_Lifecycle):
    """One aiohttp app served on ``host:port``; a context manager, sync or async."""

    def __init__(
        self,
        app: web.Application,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        shutdown_timeout: float = 1.0,
        access_log: logging.Logger | None = access_logger,
    ) -> None:
        self.app = app
        self.host = host
        self._requested_port = port
        self._shutdown_timeout = shutdown_timeout
        self._access_log = access_log
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    @classmethod
    def for_codec(
        cls,
        codec: UpstreamCodec,
        state: FakeState | None = None,
        *,
        extra_routes: tuple[web.AbstractRouteDef, ...] = (),
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> FakeServer:
        """A server for :func:`~fake_upstreams.app.make_app` of ``codec``."""
        return cls(make_app(codec, state, extra_routes=extra_routes), host=host, port=port)

    @property
    def state(self) -> FakeState:
        """The app's :class:`FakeState` (scripts, journal, strictness)."""
        return self.app[STATE_KEY]

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the fake server is not running")
        return self._port

    @property
    def url(self) -> str:
        """``http://host:port``, without a trailing slash."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        """Bind and start serving in the running loop."""
        if self._runner is not None:
            raise RuntimeError("the fake server is already running")
        runner = web.AppRunner(
            self.app,
            handle_signals=False,
            handler_cancellation=True,
            shutdown_timeout=self._shutdown_timeout,
            access_log=self._access_log,
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self._requested_port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = int(runner.addresses[0][1])

    async def stop(self) -> None:
        """Stop serving; replies still running get ``shutdown_timeout`` seconds, then are cut."""
        runner, self._runner, self._port = self._runner, None, None
        if runner is not None:
            await runner.cleanup()


class FakeFleet(_Lifecycle, Mapping[str, FakeServer]):
    """Several fakes started and stopped together (one loop thread for all in sync use)."""

    def __init__(self, servers: Mapping[str, FakeServer]) -> None:
        self._servers = dict(servers)

    def __getitem__(self, name: str) -> FakeServer:
        return self._servers[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._servers)

    def __len__(self) -> int:
        return len(self._servers)

    @property
    def urls(self) -> dict[str, str]:
        return {name: server.url for name, server in self._servers.items()}

    async def start(self) -> None:
        """Start every fake; if one fails, stop those already started and re-raise."""
        started: list[FakeServer] = []
        try:
            for server in self._servers.values():
                await server.start()
                started.append(server)
        except BaseException:
            for server in started:
                await server.stop()
            raise

    async def stop(self) -> None:
        for server in self._servers.values():
            await server.stop()
