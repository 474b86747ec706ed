"""The recording reverse proxy, run: :class:`RecordingProxy` serves the app of
:mod:`cassettes.proxy_app` for one :class:`~cassettes.recorder.Recorder` and one target URL.

    async with RecordingProxy(recorder, "http://127.0.0.1:8101") as proxy:
        ...  # send requests to proxy.url

Stopping it gives replies in flight ``shutdown_timeout`` seconds (a relay whose client already
hung up included), then writes whatever was recorded and not yet saved, and closes the recorder,
which releases the cassette's session lock (see :mod:`cassettes.recorder`).
"""

from __future__ import annotations

import asyncio

from cassettes.proxy_app import PROXY_KEY, ProxyState, make_proxy_app
from cassettes.recorder import Recorder
from cassettes.relay import RelaySettings
from fake_upstreams.lifecycle import AppServer, AsyncLifecycle

__all__ = ["RecordingProxy"]


class RecordingProxy(AsyncLifecycle):
    """The proxy for ``recorder`` in front of ``target``, on ``host:port`` (port 0: any free).

    ``record_as`` writes request URIs as if they went to that base URL instead of ``target``
    (e.g. the real site a local stand-in replaces), so plain vcrpy matches them by host.

        async with RecordingProxy(recorder, "http://127.0.0.1:8101") as proxy:
            ...  # send requests to proxy.url

    Unlike the fakes, it runs without aiohttp's handler cancellation: a client that hangs up
    early must not stop the recording of the upstream's whole response.
    """

    def __init__(
        self,
        recorder: Recorder,
        target: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        record_as: str | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float = 300.0,
        shutdown_timeout: float = 2.0,
    ) -> None:
        settings = RelaySettings(
            record_base=(record_as or target).rstrip("/"),
            connect_timeout=connect_timeout,
            head_timeout=read_timeout,
            read_timeout=read_timeout,
        )
        self.recorder = recorder
        self.host = host
        self.app = make_proxy_app(ProxyState(recorder, target, settings))
        self._shutdown_timeout = shutdown_timeout
        self._server = AppServer(
            self.app,
            host=host,
            port=port,
            shutdown_timeout=shutdown_timeout,
            handler_cancellation=False,
            label="the recording proxy",
        )

    @property
    def url(self) -> str:
        """``http://host:port`` of the running proxy, without a trailing slash."""
        return self._server.url

    async def start(self) -> None:
        """Bind and serve in the running loop (``OSError`` if the port is taken)."""
        await self._server.start()

    async def stop(self) -> None:
        """Stop serving (replies in flight get ``shutdown_timeout`` seconds), then write what
        was recorded and not saved yet, and close the recorder (ending its session lock). A
        write that fails is not raised here: ``recorder.write_problem`` says why."""
        forwards = self.app[PROXY_KEY].forwards
        try:
            if forwards:  # before cleanup, which closes the upstream session
                await asyncio.wait(list(forwards), timeout=self._shutdown_timeout)
            await self._server.stop()
            for task in forwards.values():
                if task is not None:
                    task.cancel()  # recorded anyway if its body was complete
            if forwards:
                await asyncio.wait(list(forwards), timeout=self._shutdown_timeout)
        finally:
            await self.recorder.close()
