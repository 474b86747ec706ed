"""The offline guard: refuse every connection and name lookup that would leave this machine.

Tapedeck's tests must pass with no network at all, and must never *try* to reach one either. The
guard patches the socket layer that requests, urllib3, asyncio and aiohttp all go through, so a
test that tries to reach the internet fails loudly with :class:`NetworkBlockedError` instead of
waiting on a timeout or quietly succeeding on a developer's laptop.

Usage::

    with offline_guard() as violations:
        ...                      # loopback works, anything else raises NetworkBlockedError
    assert not violations        # every refused attempt is also recorded here
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from providers.errors import NetworkBlockedError

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", ""})


def is_loopback_host(host: object) -> bool:
    """True for loopback addresses and the names that always mean loopback."""
    if host is None:
        return True  # getaddrinfo(None, port) means the local wildcard, used by servers
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    name = host.strip("[]").split("%", 1)[0].lower()
    if name in _LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _address_host(address: Any) -> object:
    if isinstance(address, tuple) and address:
        return address[0]
    return None  # AF_UNIX paths and other families never leave the machine


@contextmanager
def offline_guard(violations: list[str] | None = None) -> Iterator[list[str]]:
    """Patch the socket module for the duration; yields the list of refused attempts.

    Pass ``violations`` to have refusals appended to a list you already hold.
    """
    if violations is None:
        violations = []
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def refuse(what: str) -> NetworkBlockedError:
        message = (
            f"Tapedeck's offline guard blocked {what}: tests may only reach 127.0.0.1/::1. "
            "Point the adapter at a fake (base_url=fake.url) or route the host with "
            "fake_upstreams.routing."
        )
        violations.append(message)
        return NetworkBlockedError(message)

    def guarded_connect(self: socket.socket, address: Any) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6) and not is_loopback_host(
            _address_host(address)
        ):
            raise refuse(f"a connection to {address!r}")
        return real_connect(self, address)

    def guarded_connect_ex(self: socket.socket, address: Any) -> int:
        if self.family in (socket.AF_INET, socket.AF_INET6) and not is_loopback_host(
            _address_host(address)
        ):
            raise refuse(f"a connection to {address!r}")
        return real_connect_ex(self, address)

    def guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not is_loopback_host(host):
            raise refuse(f"a DNS lookup of {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    # setattr: the stubs type these as C methods, which plain functions cannot be assigned to.
    setattr(socket.socket, "connect", guarded_connect)  # noqa: B010
    setattr(socket.socket, "connect_ex", guarded_connect_ex)  # noqa: B010
    socket.getaddrinfo = guarded_getaddrinfo
    try:
        yield violations
    finally:
        setattr(socket.socket, "connect", real_connect)  # noqa: B010
        setattr(socket.socket, "connect_ex", real_connect_ex)  # noqa: B010
        socket.getaddrinfo = real_getaddrinfo
