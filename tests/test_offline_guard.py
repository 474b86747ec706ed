"""The suite refuses every non-loopback connection, loudly."""

from __future__ import annotations

import socket

import aiohttp
import pytest
import requests

from fake_upstreams.offline import is_loopback_host
from providers.errors import NetworkBlockedError


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("api.localhost", True),
        ("10.0.0.1", False),
        ("192.168.1.1", False),
        ("8.8.8.8", False),
        ("chat.aivvm.com", False),
        ("::ffff:8.8.8.8", False),
    ],
)
def test_loopback_classification(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


def _forget(violations: list[str], before: int) -> None:
    # These tests provoke the guard on purpose; keep the autouse check from failing them.
    del violations[before:]


def test_raw_socket_to_public_address_is_refused(offline_violations: list[str]) -> None:
    before = len(offline_violations)
    with (
        socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock,
        pytest.raises(NetworkBlockedError, match=r"offline guard blocked a connection"),
    ):
        sock.connect(("93.184.216.34", 80))
    assert len(offline_violations) == before + 1
    _forget(offline_violations, before)


def test_dns_lookup_is_refused(offline_violations: list[str]) -> None:
    before = len(offline_violations)
    with pytest.raises(NetworkBlockedError, match=r"DNS lookup of 'chat\.getgpt\.world'"):
        socket.getaddrinfo("chat.getgpt.world", 443)
    _forget(offline_violations, before)


def test_requests_fails_loudly_not_with_a_connection_error(offline_violations: list[str]) -> None:
    before = len(offline_violations)
    with pytest.raises(NetworkBlockedError):
        requests.get("http://example.com/", timeout=5)
    _forget(offline_violations, before)


async def test_aiohttp_fails_loudly(offline_violations: list[str]) -> None:
    before = len(offline_violations)
    async with aiohttp.ClientSession() as session:
        with pytest.raises(NetworkBlockedError):
            await session.get("http://example.com/")
    _forget(offline_violations, before)


def test_loopback_still_works() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(server.getsockname(), timeout=5):
            conn, _ = server.accept()
            conn.close()
