"""Record what servers in this process hand to their sockets, write by write.

A reply's writes are what the code under test controls: on an idle loopback socket each
``transport.write`` is one ``send`` (asyncio sends at once while nothing is queued), which is the
cost the fakes and the replay server keep low. Test-only: it wraps a private asyncio class.
"""

from __future__ import annotations

from asyncio import selector_events
from collections.abc import Iterable
from typing import Any

import pytest

# Not in typeshed: the class every asyncio TCP connection on the default (selector) loop uses.
_Transport: Any = vars(selector_events)["_SelectorSocketTransport"]


class WriteLog:
    """Every write, grouped by transport, in order."""

    def __init__(self) -> None:
        self._writes: dict[int, list[bytes]] = {}

    def add(self, transport: object, data: bytes) -> None:
        self._writes.setdefault(id(transport), []).append(data)

    def replies(self) -> list[list[bytes]]:
        """The writes of each connection that answered with an HTTP response."""
        return [writes for writes in self._writes.values() if writes[0].startswith(b"HTTP/")]


def record_writes(monkeypatch: pytest.MonkeyPatch) -> WriteLog:
    """Start recording every socket transport's writes (undone with ``monkeypatch``)."""
    log = WriteLog()
    write = _Transport.write

    def recording_write(self: Any, data: Any) -> None:
        log.add(self, bytes(data))
        write(self, data)

    monkeypatch.setattr(_Transport, "write", recording_write)
    if "writelines" in vars(_Transport):  # Python 3.12+ sends these without calling write
        writelines = _Transport.writelines

        def recording_writelines(self: Any, chunks: Iterable[Any]) -> None:
            chunks = list(chunks)
            log.add(self, b"".join(bytes(chunk) for chunk in chunks))
            writelines(self, chunks)

        monkeypatch.setattr(_Transport, "writelines", recording_writelines)
    return log
