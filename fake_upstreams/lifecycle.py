"""Running an aiohttp app on loopback, from async code in the current loop or from sync code.

    async with AppServer(app) as server:     # inside a running event loop
        ...server.url...

    with AppServer(app) as server:           # from sync code: a private loop in a daemon thread
        requests.get(server.url + "/")

Everything that serves an app here goes through this module: the fakes
(:class:`~fake_upstreams.server.FakeServer`), the replay server and the recording proxy. It knows
nothing of what the app does, so the cassettes can use it without the fakes' codecs. It does say
which HTTP versions all of them answer (:data:`SPOKEN_VERSIONS`), and how each refuses another
(:func:`version_not_supported`).

An app is a ``web.Application``, or a single request handler, served on aiohttp's low-level
server: no router, no middlewares, for a server that answers every method and path the same way.

Port 0 (the default) binds an ephemeral port; :attr:`AppServer.port` reads the real one back.
Shutdown gives in-flight replies at most ``shutdown_timeout`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from types import TracebackType
from typing import Any, Self, TypeVar

from aiohttp import web
from aiohttp.http import HttpVersion10, HttpVersion11

from providers.errors import InvalidRequestError

_T = TypeVar("_T")
#: The HTTP versions every server here answers. aiohttp's parser also lets "HTTP/2.0" and
#: "HTTP/0.9" request lines through, for which no streamed reply can be framed (chunked framing
#: is HTTP/1.1's; aiohttp raises instead of answering: a 500 and a traceback).
SPOKEN_VERSIONS = (HttpVersion11, HttpVersion10)
#: A request handler that answers every request of a low-level server.
RequestHandler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]
_START_TIMEOUT = 30.0


def version_not_supported(request: web.BaseRequest, server: str) -> InvalidRequestError:
    """The 505 for a request whose version is not one of :data:`SPOKEN_VERSIONS`."""
    major, minor = request.version
    return InvalidRequestError(
        f"HTTP/{major}.{minor} is not supported: {server} speaks HTTP/1.1 (and HTTP/1.0)",
        status=505,
        code="http_version_not_supported",
    )


class LoopThread:
    """An event loop running forever in a daemon thread, for sync callers."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def call(self, coro: Coroutine[Any, Any, _T]) -> _T:
        """Run ``coro`` in the thread's loop and wait for its result."""
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


class AsyncLifecycle(ABC):
    """``start``/``stop``, and ``async with`` running them in the current loop."""

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


class Lifecycle(AsyncLifecycle):
    """Also ``with``, which runs ``start`` and ``stop`` in a private loop in a daemon thread."""

    _thread: LoopThread | None = None

    def __enter__(self) -> Self:
        thread = LoopThread(f"tapedeck-{type(self).__name__}")
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


class AppServer(Lifecycle):
    """One aiohttp app served on ``host:port``; a context manager, sync or async.

    ``app`` is a ``web.Application`` or one request handler for everything (see the module
    docstring); ``handler_args`` are aiohttp's request-handler options for the latter (an
    Application carries its own). ``handler_cancellation`` cancels a handler whose client hung
    up (aiohttp's option of that name); ``label`` names the server in the errors of a wrong
    start or stop.
    """

    def __init__(
        self,
        app: web.Application | RequestHandler,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        shutdown_timeout: float = 1.0,
        access_log: logging.Logger | None = None,
        handler_cancellation: bool = True,
        label: str = "the server",
        handler_args: Mapping[str, Any] | None = None,
    ) -> None:
        self.app = app
        self._handler_args = dict(handler_args or {})
        self.host = host
        self._requested_port = port
        self._shutdown_timeout = shutdown_timeout
        self._access_log = access_log
        self._handler_cancellation = handler_cancellation
        self._label = label
        self._runner: web.BaseRunner | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        """The port actually bound (``RuntimeError`` when not running)."""
        if self._port is None:
            raise RuntimeError(f"{self._label} is not running")
        return self._port

    @property
    def url(self) -> str:
        """``http://host:port``, without a trailing slash."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        """Bind and start serving in the running loop (``OSError`` if the port is taken)."""
        if self._runner is not None:
            raise RuntimeError(f"{self._label} is already running")
        runner: web.BaseRunner
        if isinstance(self.app, web.Application):
            runner = web.AppRunner(
                self.app,
                handle_signals=False,
                handler_cancellation=self._handler_cancellation,
                shutdown_timeout=self._shutdown_timeout,
                access_log=self._access_log,
            )
        else:
            low_level = web.Server(
                self.app,
                handler_cancellation=self._handler_cancellation,
                access_log=self._access_log,
                **self._handler_args,
            )
            runner = web.ServerRunner(low_level, shutdown_timeout=self._shutdown_timeout)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self._requested_port).start()
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
