"""What the long-running commands (`serve`, `record`, `replay`) share: serving until signalled.

Each of them starts one or more servers, prints one ``NAME URL`` line per server on stdout once
all listen (flushed, so a script can read the URLs and start at once), serves until SIGINT or
SIGTERM, stops everything and exits 0; a port it cannot listen on is one line on stderr and exit
status 1. An empty ``--host`` is refused as a usage error (:func:`listen_host`). What differs
(which servers, what they say when ready, the summary after) stays in each command.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import signal
import sys
from collections.abc import Callable, Mapping
from typing import Protocol

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_BUSY = "the port is already in use (use --port 0)"


class Service(Protocol):
    """Something with a URL that starts and stops in the running loop."""

    @property
    def url(self) -> str: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def port_number(value: str) -> int:
    """An argparse type: a TCP port, 0..65535 (0: a free ephemeral one)."""
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {value!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0..65535, got {port}")
    return port


def listen_host(value: str) -> str:
    """An argparse type: the address a server listens on, never empty.

    An empty address is not "nowhere" but the wildcard: asyncio then listens on every interface
    (IPv4 and IPv6 on different ports), beyond loopback, while the printed URL has no host at
    all. Every interface must be asked for by name (0.0.0.0 or ::), which also warns.
    """
    if not value.strip():
        raise argparse.ArgumentTypeError(
            "an empty address would listen on every interface: name one, e.g. 127.0.0.1 "
            "(or 0.0.0.0 for every interface, on purpose)"
        )
    return value


def cannot_load(path: str, error: OSError | RecursionError) -> str:
    """Why a cassette could not be opened for serving, in one line (record and replay)."""
    if isinstance(error, RecursionError):  # a body normaliser ran out of stack indexing it
        return f"cannot index {path}: a recorded request body is nested too deeply"
    return f"cannot read {path}: {error.strerror or error}"


def cannot_listen(where: str, error: OSError, busy: str = _BUSY) -> str:
    """``cannot listen on WHERE: why``, with ``busy`` as the why of a port already in use."""
    if error.errno == errno.EADDRINUSE:
        return f"cannot listen on {where}: {busy}"
    return f"cannot listen on {where}: {error.strerror or error}"


async def serve_until_signalled(
    services: Mapping[str, Service],
    *,
    say: Callable[[str], None],
    cannot_start: Callable[[str, OSError], str],
    ready: str,
    say_stopping: bool = True,
) -> int:
    """Start ``services`` in order and serve until SIGINT or SIGTERM; the exit status.

    Once all listen, stdout gets ``NAME URL`` for each and ``ready`` is said. A signal then says
    ``stopping`` (unless ``say_stopping`` is false) and returns 0. If one cannot listen
    (``OSError``), ``cannot_start(name, error)`` is said and 1 returned. Either way, and on any
    other error, every service is stopped, last first, even one that never started (stopping
    that must be harmless, and may be how it releases what it holds). The signal handlers are
    removed on return.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in _STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    try:
        for name, service in services.items():
            try:
                await service.start()
            except OSError as error:
                say(cannot_start(name, error))
                return 1
        with contextlib.suppress(BrokenPipeError):  # a reader that went away must not stop us
            for name, service in services.items():
                print(f"{name} {service.url}")
            sys.stdout.flush()
        say(ready)
        await stop.wait()
        if say_stopping:
            say("stopping")
        return 0
    finally:
        try:
            for service in reversed(list(services.values())):
                await service.stop()
        finally:
            for sig in _STOP_SIGNALS:
                loop.remove_signal_handler(sig)
