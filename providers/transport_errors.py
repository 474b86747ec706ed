"""The one boundary where requests', urllib3's and aiohttp's exceptions become Tapedeck's.

Each foreign class has an explicit entry in a table; a raised exception is mapped through its
MRO, most specific class first, so a subclass a library adds later still lands somewhere sane.
``tests/test_transport_errors.py`` checks that every public exception class of both libraries
has its own entry, so a library upgrade that adds one fails the suite instead of slipping by.

A connection that could not be opened (refused, unresolvable, connect timeout) is a
:class:`ConnectError`; one that was open and then dropped or answered with garbage is a
:class:`StreamResetError`, whether or not a status line had arrived. Where a library hides the
real cause inside a generic error (requests wraps urllib3's), the cause decides.
"""

from __future__ import annotations

import asyncio
from typing import Literal

import aiohttp
import requests.exceptions as rex
import urllib3.exceptions as uex

from providers.errors import (
    ConnectError,
    LocalProtocolError,
    MalformedReplyError,
    RemoteProtocolError,
    StreamResetError,
    TapedeckError,
    TransportError,
    UpstreamHTTPError,
    UpstreamTimeoutError,
)

Phase = Literal["connect", "read"]

# "by-phase" means ConnectError while connecting and StreamResetError while reading the body.
_Target = type[TapedeckError] | Literal["by-phase"]

REQUESTS_TABLE: dict[type[BaseException], _Target] = {
    rex.ConnectTimeout: UpstreamTimeoutError,
    rex.ReadTimeout: UpstreamTimeoutError,
    rex.Timeout: UpstreamTimeoutError,
    rex.SSLError: ConnectError,
    rex.ProxyError: ConnectError,
    rex.ConnectionError: "by-phase",
    rex.ChunkedEncodingError: StreamResetError,
    rex.ContentDecodingError: MalformedReplyError,
    rex.StreamConsumedError: LocalProtocolError,
    rex.RetryError: TransportError,
    rex.TooManyRedirects: RemoteProtocolError,
    rex.InvalidURL: LocalProtocolError,
    rex.InvalidProxyURL: LocalProtocolError,
    rex.InvalidSchema: LocalProtocolError,
    rex.MissingSchema: LocalProtocolError,
    rex.URLRequired: LocalProtocolError,
    rex.InvalidHeader: LocalProtocolError,
    rex.InvalidJSONError: LocalProtocolError,
    rex.JSONDecodeError: MalformedReplyError,
    rex.UnrewindableBodyError: LocalProtocolError,
    rex.HTTPError: UpstreamHTTPError,
    rex.RequestException: TransportError,
    # urllib3 errors normally arrive wrapped by requests; these catch the ones that do not.
    uex.ReadTimeoutError: UpstreamTimeoutError,
    uex.ProtocolError: "by-phase",
    uex.DecodeError: MalformedReplyError,
    uex.HTTPError: TransportError,
}

AIOHTTP_TABLE: dict[type[BaseException], _Target] = {
    aiohttp.ConnectionTimeoutError: UpstreamTimeoutError,
    aiohttp.SocketTimeoutError: UpstreamTimeoutError,
    aiohttp.ServerTimeoutError: UpstreamTimeoutError,
    aiohttp.ClientConnectorDNSError: ConnectError,
    aiohttp.ClientConnectorCertificateError: ConnectError,
    aiohttp.ClientConnectorSSLError: ConnectError,
    aiohttp.ClientProxyConnectionError: ConnectError,
    aiohttp.ClientConnectorError: ConnectError,
    aiohttp.ClientSSLError: ConnectError,
    aiohttp.ServerFingerprintMismatch: ConnectError,
    # The connection was open: whatever broke it, the reply is what got cut.
    aiohttp.ServerDisconnectedError: StreamResetError,
    aiohttp.ClientConnectionResetError: StreamResetError,
    aiohttp.ClientPayloadError: StreamResetError,
    aiohttp.ClientOSError: StreamResetError,
    aiohttp.ServerConnectionError: StreamResetError,
    aiohttp.ClientConnectionError: "by-phase",
    aiohttp.ClientHttpProxyError: ConnectError,
    aiohttp.ContentTypeError: MalformedReplyError,
    aiohttp.WSServerHandshakeError: RemoteProtocolError,
    aiohttp.TooManyRedirects: RemoteProtocolError,
    # We never call aiohttp's raise_for_status, so this only comes from its response parser
    # (e.g. "Bad status line" for garbage): the status it carries was never sent by the server.
    aiohttp.ClientResponseError: StreamResetError,
    aiohttp.InvalidUrlRedirectClientError: RemoteProtocolError,
    aiohttp.NonHttpUrlRedirectClientError: RemoteProtocolError,
    aiohttp.RedirectClientError: RemoteProtocolError,
    aiohttp.NonHttpUrlClientError: LocalProtocolError,
    aiohttp.InvalidUrlClientError: LocalProtocolError,
    aiohttp.InvalidURL: LocalProtocolError,
    aiohttp.UploadAbortedError: StreamResetError,
    aiohttp.WSMessageTypeError: RemoteProtocolError,
    aiohttp.WebSocketError: RemoteProtocolError,
    aiohttp.BadContentDispositionHeader: MalformedReplyError,
    aiohttp.BadContentDispositionParam: MalformedReplyError,
    aiohttp.EofStream: StreamResetError,
    aiohttp.ClientError: TransportError,
}

# Plain OS- and asyncio-level failures can escape both libraries (e.g. a reset on a raw socket).
BUILTIN_TABLE: dict[type[BaseException], _Target] = {
    asyncio.TimeoutError: UpstreamTimeoutError,  # an alias of the built-in TimeoutError
    ConnectionRefusedError: ConnectError,
    ConnectionResetError: "by-phase",
    BrokenPipeError: "by-phase",
    ConnectionAbortedError: "by-phase",
    ConnectionError: "by-phase",
    OSError: "by-phase",
}

_TABLE: dict[type[BaseException], _Target] = {**REQUESTS_TABLE, **AIOHTTP_TABLE, **BUILTIN_TABLE}


def _hidden_cause(exc: BaseException) -> type[TapedeckError] | None:
    """The class that requests' generic ConnectionError really means, judged by its cause."""
    if not isinstance(exc, rex.ConnectionError) or isinstance(exc, rex.Timeout):
        return None
    reason: object = exc.args[0] if exc.args else None
    if isinstance(reason, uex.MaxRetryError):
        reason = reason.reason
    if isinstance(reason, uex.ReadTimeoutError):
        return UpstreamTimeoutError  # a read timeout inside iter_content
    if isinstance(reason, uex.NewConnectionError | uex.ConnectTimeoutError):
        return ConnectError  # never connected (refused, DNS)
    if isinstance(reason, uex.ProtocolError):
        return StreamResetError  # connected, then aborted or answered with garbage
    return None


def target_for(exc_type: type[BaseException], phase: Phase) -> type[TapedeckError] | None:
    """The Tapedeck class an exception type maps to, or None if it is not a transport failure."""
    for klass in exc_type.__mro__:
        target = _TABLE.get(klass)
        if target == "by-phase":
            return ConnectError if phase == "connect" else StreamResetError
        if target is not None:
            return target
    return None


def translate(exc: BaseException, *, provider: str, url: str, phase: Phase) -> TapedeckError:
    """Wrap a foreign exception in the matching Tapedeck error, with an actionable message.

    Tapedeck's own errors pass through unchanged. Anything not in the tables is a bug in the
    harness and is wrapped in the root :class:`TransportError` so it still carries the context.
    """
    if isinstance(exc, TapedeckError):
        return exc
    target = _hidden_cause(exc) or target_for(type(exc), phase) or TransportError
    detail = str(exc) or type(exc).__name__
    if type(exc) is aiohttp.ClientResponseError:
        # The class itself (not a proxy's refusal or a redirect loop, its subclasses) comes from
        # aiohttp's reply parser, and its str() leads with a 400 the server never sent.
        detail = f"the reply could not be parsed as HTTP: {exc.message}"
    if target is ConnectError:
        hint = "is the fake or replay server running, and is base_url right?"
        message = f"{provider}: could not connect to {url}: {detail} ({hint})"
    elif target is UpstreamTimeoutError:
        message = f"{provider}: timed out talking to {url} ({phase} phase): {detail}"
    elif target is StreamResetError:
        message = f"{provider}: the connection to {url} broke while reading the reply: {detail}"
    else:
        message = f"{provider}: {type(exc).__name__} from {url}: {detail}"
    if issubclass(target, UpstreamHTTPError):
        status = getattr(exc, "status", 0) or 0
        return target(provider, int(status), detail, url)
    return target(message)
