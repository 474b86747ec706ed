"""Running fakes on loopback: from async code in the current loop, or from sync code in a thread.

    async with FakeServer(make_app(codec)) as server:     # inside a running event loop
        ...server.url...

    with FakeServer(make_app(codec)) as server:           # from sync code: own loop in a thread
        requests.post(server.url + codec.chat_path, ...)

Port 0 (the default) binds an ephemeral port; :attr:`FakeServer.port` reads the real one back.
Handlers are cancelled when their client disconnects (aiohttp's ``handler_cancellation``), and
shutdown gives in-flight replies at most ``shutdown_timeout`` seconds. The running itself is
:class:`~fake_upstreams.lifecycle.AppServer`'s, shared with the replay server and the proxy.

Connections do not live forever: the app carries its own aiohttp handler options (set by
:func:`~fake_upstreams.app.make_app` from :class:`~fake_upstreams.app.FakeState`), so every way
of serving it gets them. An idle keep-alive connection, or one whose request head never
completes, is closed after ``idle_timeout`` (30 s; aiohttp's ``keepalive_timeout``, whose own
default is an hour); a body still arriving ``request_timeout`` (30 s) after its head gets 408 and
its connection closed (aiohttp has no option for that: the fake times its own read).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping

from aiohttp import web
from aiohttp.log import access_logger

from fake_upstreams.app import STATE_KEY, FakeState, make_app
from fake_upstreams.lifecycle import AppServer, Lifecycle
from providers.wire.common import UpstreamCodec


class FakeServer(AppServer):
    """One aiohttp app served on ``host:port``; a context manager, sync or async."""

    app: web.Application  # a fake is always an Application: its state lives in it

    def __init__(
        self,
        app: web.Application,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        shutdown_timeout: float = 1.0,
        access_log: logging.Logger | None = access_logger,
    ) -> None:
        super().__init__(
            app,
            host=host,
            port=port,
            shutdown_timeout=shutdown_timeout,
            access_log=access_log,
            handler_cancellation=True,
            label="the fake server",
        )

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


class FakeFleet(Lifecycle, Mapping[str, FakeServer]):
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
