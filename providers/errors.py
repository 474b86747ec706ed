"""The one exception hierarchy of Tapedeck.

Every error the harness raises on purpose is a :class:`TapedeckError`. Where a built-in exception
means the same thing, the class inherits it too, so ``except ValueError`` or ``except
ConnectionError`` in caller code keeps working::

    TapedeckError
    ├── ModelNotSupportedError (ValueError)     unknown model, raised before any request is sent
    ├── ProtocolError                           bytes that break an upstream's wire contract
    │   ├── LocalProtocolError (ValueError)     we were asked to send something the wire can't say
    │   └── RemoteProtocolError (ValueError)    the peer sent something the wire does not allow
    │       ├── InvalidRequestError             a server rejects a request (has .status)
    │       │   └── SignatureError              GetGpt's encrypted `signature` does not decrypt
    │       ├── MalformedReplyError             a reply frame that cannot be decoded
    │       └── TruncatedStreamError            the stream ended early (no `[DONE]`, cut line)
    ├── UpstreamHTTPError                       a non-success status (has .status, .body_excerpt)
    │   ├── AccessDeniedError                   403 / Cloudflare "Access denied" page
    │   └── RateLimitedError                    429 (has .retry_after)
    ├── TransportError (ConnectionError)        the connection itself failed
    │   ├── ConnectError                        could not connect (refused, DNS, offline guard)
    │   ├── StreamResetError                    connection dropped or mangled mid-response
    │   └── UpstreamTimeoutError (TimeoutError) connect, read or total deadline passed
    ├── CassetteError                           anything about cassette files
    │   ├── CassetteFormatError (ValueError)    not a cassette, wrong version, bad field
    │   ├── UnsafeCassetteError                 a YAML tag that could run code, a leaked secret
    │   └── NoMatchingInteractionError (LookupError)
    ├── FakeUpstreamError                       a fault inside a fake's own handler, re-raised in
    │                                           the test that caused it
    └── NetworkBlockedError (RuntimeError)      the offline guard stopped a non-loopback connection

Foreign exceptions (requests, urllib3, aiohttp) are translated in exactly one place,
:mod:`providers.transport_errors`.
"""

from __future__ import annotations

from collections.abc import Sequence

_EXCERPT_LIMIT = 300


def excerpt(body: bytes | str, limit: int = _EXCERPT_LIMIT) -> str:
    """A short, printable, single-line preview of a body for error messages."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class TapedeckError(Exception):
    """Root of every error Tapedeck raises on purpose."""


class ModelNotSupportedError(TapedeckError, ValueError):
    """The caller asked for a model the provider does not list."""

    def __init__(self, provider: str, model: str, supported: Sequence[str]) -> None:
        self.provider = provider
        self.model = model
        self.supported = tuple(supported)
        super().__init__(
            f"{provider} does not support model {model!r}; "
            f"use one of: {', '.join(self.supported)} (or '' for the default)"
        )


class ProtocolError(TapedeckError):
    """Bytes that break an upstream's wire contract."""


class LocalProtocolError(ProtocolError, ValueError):
    """We were asked to send something the upstream's wire format cannot express."""


class RemoteProtocolError(ProtocolError, ValueError):
    """The other side sent bytes its wire contract does not allow."""


class InvalidRequestError(RemoteProtocolError):
    """A server (fake or replay) rejects a request.

    ``status`` is the HTTP status the real service would have answered with, ``code`` a stable
    machine-readable name for the problem, ``field`` the offending JSON field or header if any.
    """

    def __init__(
        self, message: str, *, status: int = 400, code: str = "invalid_request", field: str = ""
    ) -> None:
        self.status = status
        self.code = code
        self.field = field
        super().__init__(message)

    def to_json(self) -> dict[str, object]:
        error: dict[str, object] = {"code": self.code, "message": str(self)}
        if self.field:
            error["field"] = self.field
        return {"error": error}


class SignatureError(InvalidRequestError):
    """GetGpt's `signature` could not be decrypted into a request.

    Every failure carries the same public message (a fake must not be a padding oracle);
    ``reason`` keeps the precise cause for the journal and for tests.
    """

    reason: str = ""


class MalformedReplyError(RemoteProtocolError):
    """A reply frame that cannot be decoded (bad JSON, wrong shape, invalid UTF-8)."""


class TruncatedStreamError(RemoteProtocolError):
    """The reply stream ended before its end marker, or inside a line.

    ``partial`` holds the text decoded before the stream broke off, so a caller can still show it.
    """

    def __init__(self, message: str, *, partial: str = "") -> None:
        self.partial = partial
        super().__init__(message)


class UpstreamHTTPError(TapedeckError):
    """The upstream answered with a status its clients treat as failure."""

    def __init__(self, provider: str, status: int, body: bytes | str = b"", url: str = "") -> None:
        self.provider = provider
        self.status = status
        self.body_excerpt = excerpt(body)
        self.url = url
        where = f" from {url}" if url else ""
        detail = f": {self.body_excerpt}" if self.body_excerpt else ""
        super().__init__(f"{provider} answered HTTP {status}{where}{detail}")


class AccessDeniedError(UpstreamHTTPError):
    """403, typically a Cloudflare "Access denied" page: the site blocked this client."""


class RateLimitedError(UpstreamHTTPError):
    """429 Too Many Requests; ``retry_after`` is the server's hint in seconds, if it gave one."""

    def __init__(
        self,
        provider: str,
        status: int,
        body: bytes | str = b"",
        url: str = "",
        retry_after: float | None = None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(provider, status, body, url)
        if retry_after is not None:
            self.args = (f"{self.args[0]} (retry after {retry_after:g} s)",)


class TransportError(TapedeckError, ConnectionError):
    """The connection failed underneath the protocol."""


class ConnectError(TransportError):
    """Could not open a connection (refused, unresolvable, or blocked by the offline guard)."""


class StreamResetError(TransportError):
    """The connection was reset or the HTTP framing broke while the reply was being read."""


class UpstreamTimeoutError(TransportError, TimeoutError):
    """A connect, read or total deadline passed. Tapedeck never waits forever."""


class CassetteError(TapedeckError):
    """Anything about reading, writing or matching cassette files."""


class CassetteFormatError(CassetteError, ValueError):
    """The file is not a cassette this version of Tapedeck can read."""


class UnsafeCassetteError(CassetteError):
    """The cassette holds something dangerous: a code-running YAML tag or a leaked secret."""


class NoMatchingInteractionError(CassetteError, LookupError):
    """No recorded interaction matches a request; the message lists the closest candidates.

    ``candidates`` holds the same descriptions as data (closest first), e.g. for a JSON reply.
    """

    def __init__(self, message: str, *, candidates: Sequence[str] = ()) -> None:
        self.candidates = tuple(candidates)
        super().__init__(message)


class FakeUpstreamError(TapedeckError):
    """A fake upstream's handler failed; raised again in the test that triggered it."""


class NetworkBlockedError(TapedeckError, RuntimeError):
    """The offline guard refused a connection or name lookup beyond loopback.

    Deliberately not a ``ConnectionError``: HTTP libraries wrap those into their own connection
    errors, and retry loops swallow them. A ``RuntimeError`` passes through them and fails loudly.
    """
