"""Foreign exceptions are mapped at one boundary, and the mapping has no holes."""

from __future__ import annotations

import inspect

import aiohttp
import pytest
import requests.exceptions as rex
from aiohttp import RequestInfo
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from providers import errors
from providers.errors import StreamResetError
from providers.transport_errors import (
    AIOHTTP_TABLE,
    REQUESTS_TABLE,
    Phase,
    target_for,
    translate,
)


def _public_exceptions(module: object, names: list[str]) -> list[type[BaseException]]:
    found = []
    for name in names:
        obj = getattr(module, name)
        if inspect.isclass(obj) and issubclass(obj, BaseException):
            if issubclass(obj, Warning):
                continue  # warnings are not failures of a request
            found.append(obj)
    return found


# Re-exports of urllib3's base error and the json module's error: never raised by a request.
NOT_TRANSPORT = {getattr(rex, "BaseHTTPError"), getattr(rex, "CompatJSONDecodeError")}  # noqa: B009
REQUESTS_PUBLIC = [
    exc
    for exc in _public_exceptions(rex, [n for n in dir(rex) if not n.startswith("_")])
    if exc not in NOT_TRANSPORT
]
AIOHTTP_PUBLIC = _public_exceptions(aiohttp, list(aiohttp.__all__))


@pytest.mark.parametrize("exc_type", REQUESTS_PUBLIC, ids=lambda t: t.__name__)
def test_every_requests_exception_has_its_own_entry(exc_type: type[BaseException]) -> None:
    assert exc_type in REQUESTS_TABLE, f"add {exc_type.__name__} to REQUESTS_TABLE"


@pytest.mark.parametrize("exc_type", AIOHTTP_PUBLIC, ids=lambda t: t.__name__)
def test_every_aiohttp_exception_has_its_own_entry(exc_type: type[BaseException]) -> None:
    assert exc_type in AIOHTTP_TABLE, f"add {exc_type.__name__} to AIOHTTP_TABLE"


@pytest.mark.parametrize(
    "exc_type", [*REQUESTS_TABLE, *AIOHTTP_TABLE], ids=lambda t: f"{t.__module__}.{t.__name__}"
)
def test_every_entry_lands_in_the_hierarchy(exc_type: type[BaseException]) -> None:
    phases: tuple[Phase, ...] = ("connect", "read")
    for phase in phases:
        target = target_for(exc_type, phase)
        assert target is not None
        assert issubclass(target, errors.TapedeckError)


@pytest.mark.parametrize(
    ("exc", "phase", "expected", "builtin"),
    [
        (rex.ConnectTimeout("slow"), "connect", errors.UpstreamTimeoutError, TimeoutError),
        (rex.ReadTimeout("slow"), "read", errors.UpstreamTimeoutError, TimeoutError),
        (rex.ConnectionError("refused"), "connect", errors.ConnectError, ConnectionError),
        (rex.ConnectionError("reset"), "read", errors.StreamResetError, ConnectionError),
        (rex.ChunkedEncodingError("bad"), "read", errors.StreamResetError, ConnectionError),
        (rex.InvalidURL("nope"), "connect", errors.LocalProtocolError, ValueError),
        (TimeoutError(), "read", errors.UpstreamTimeoutError, TimeoutError),
        (ConnectionResetError(), "read", errors.StreamResetError, ConnectionError),
        (aiohttp.ServerDisconnectedError(), "read", errors.StreamResetError, ConnectionError),
        (aiohttp.ClientPayloadError("cut"), "read", errors.StreamResetError, ConnectionError),
        (aiohttp.ServerTimeoutError("slow"), "read", errors.UpstreamTimeoutError, TimeoutError),
    ],
)
def test_translate_picks_the_class_and_keeps_the_builtin(
    exc: BaseException, phase: str, expected: type[Exception], builtin: type[Exception]
) -> None:
    mapped = translate(exc, provider="Aivvm", url="http://127.0.0.1:1/api/chat", phase=phase)  # type: ignore[arg-type]
    assert type(mapped) is expected
    assert isinstance(mapped, builtin)
    assert "Aivvm" in str(mapped)
    assert "127.0.0.1:1" in str(mapped)


def test_our_own_errors_pass_through_untouched() -> None:
    original = errors.TruncatedStreamError("cut", partial="ab")
    assert translate(original, provider="x", url="u", phase="read") is original


def test_unknown_exception_is_not_a_transport_failure() -> None:
    assert target_for(KeyError, "read") is None
    mapped = translate(KeyError("k"), provider="x", url="u", phase="read")
    assert type(mapped) is errors.TransportError


def test_a_reply_aiohttp_could_not_parse_does_not_read_like_an_http_400() -> None:
    garbage = aiohttp.ClientResponseError(
        RequestInfo(URL("http://127.0.0.1:1/"), "POST", CIMultiDictProxy(CIMultiDict()), URL()),
        (),
        status=400,
        message="Bad status line 'nonsense'",
    )
    mapped = translate(garbage, provider="AI365VIP", url="http://127.0.0.1:1/", phase="connect")
    assert isinstance(mapped, StreamResetError)
    assert "the reply could not be parsed as HTTP: Bad status line 'nonsense'" in str(mapped)
    assert "400" not in str(mapped)


def test_a_proxy_refusal_keeps_its_own_words() -> None:
    refusal = aiohttp.ClientHttpProxyError(
        RequestInfo(URL("http://127.0.0.1:1/"), "POST", CIMultiDictProxy(CIMultiDict()), URL()),
        (),
        status=407,
        message="Proxy Authentication Required",
    )
    mapped = translate(refusal, provider="AI365VIP", url="http://127.0.0.1:1/", phase="connect")
    assert isinstance(mapped, errors.ConnectError)
    assert "could not be parsed" not in str(mapped)
    assert "Proxy Authentication Required" in str(mapped)
