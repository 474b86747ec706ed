"""Route unmodified requests/aiohttp code aimed at the real hosts to the local fakes.

    with build_fleet() as fleet, route_real_hosts(fleet):
        requests.post("https://chat.aivvm.com/api/chat", json=...)   # reaches fleet["Aivvm"]

Only the four real hosts of the registry (``FakeSpec.real_host``) are routed, for ``http://``
and ``https://`` URLs on any port; every other host is left alone (and, in the test suite, the
offline guard still refuses it). The fakes speak plain HTTP, so a routed request is sent
unencrypted to ``127.0.0.1``; no certificate is involved.

How, and why this way:

- **requests** — ``requests.Session.get_adapter`` (public, documented: it picks the transport
  adapter for a URL) is wrapped while routing is active, so that routed URLs get a
  :class:`_RoutingAdapter`, an ``HTTPAdapter`` whose ``send`` rewrites a copy of the request to the
  fake's URL and ignores proxies. The caller's request is untouched: the response's ``url`` and
  ``request`` still show the real URL. (Cookies still reach the session's jar under the real
  host; only ``response.cookies`` of a routed response is keyed to 127.0.0.1.) Wrapping the
  lookup, instead of mounting adapters in ``Session.__init__``, also routes sessions created
  before the context, and leaves no adapter mounted in any session afterwards.
- **aiohttp** — aiohttp (3.12+) has client middlewares, which see each ``ClientRequest`` (after
  redirects, too) right before its connection is opened. While routing is active,
  ``ClientSession.__init__`` is wrapped to append one middleware that points ``req.url`` at the
  fake. Only public names are relied on (the constructor's ``middlewares`` argument and
  ``ClientRequest.url``), rather than patching the private ``ClientSession._request``. Limits:
  sessions created *before* the context are not routed (they fail loudly at the offline guard
  instead), and a session created inside keeps the middleware, which does nothing once no routing
  is active; a per-request ``middlewares=()`` bypasses it. The response's ``url`` stays the real
  URL, and so does ``Host``.
- **Host header** — both paths send ``Host: <real host>``, as the real service saw it, so the
  journal shows where the client believed it was talking. The fakes listen one per port and never
  look at ``Host``.

Contexts nest (the innermost wins for a host it routes) and may be used from any thread: the
routing table is process-wide on purpose, because the adapters hop between threads and loops.
Everything is restored when the last context exits.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import requests
from aiohttp.client_middlewares import ClientHandlerType
from requests.adapters import BaseAdapter, HTTPAdapter
from requests.structures import CaseInsensitiveDict
from yarl import URL

from fake_upstreams.registry import spec_for

_SCHEMES = ("http", "https")


class HasUrl(Protocol):
    """Anything with a base ``url``: a FakeServer, a fixture handle."""

    @property
    def url(self) -> str: ...


def routes_for(fakes: Mapping[str, HasUrl] | Mapping[str, str]) -> dict[str, str]:
    """``{real host: fake base URL}`` for fakes given by registry name (a fleet, a handle map)."""
    routes: dict[str, str] = {}
    for name, fake in fakes.items():
        url = fake if isinstance(fake, str) else fake.url
        if urlsplit(url).scheme not in _SCHEMES:
            raise ValueError(f"fake {name!r} has no http(s) URL: {url!r}")
        routes[spec_for(name).real_host.lower()] = url.rstrip("/")
    return routes


_lock = threading.Lock()
_active: list[dict[str, str]] = []
_originals: dict[str, Any] = {}


def active_routes() -> dict[str, str]:
    """The routes in force now (innermost context wins), empty outside any context."""
    with _lock:
        merged: dict[str, str] = {}
        for routes in _active:
            merged.update(routes)
        return merged


def _target(url_scheme: str, host: str | None) -> str | None:
    if url_scheme.lower() not in _SCHEMES or not host:
        return None
    return active_routes().get(host.lower())


@contextmanager
def route_real_hosts(fakes: Mapping[str, HasUrl] | Mapping[str, str]) -> Iterator[dict[str, str]]:
    """Route the real hosts of ``fakes`` (registry name → fake) to them; yields the routes."""
    routes = routes_for(fakes)
    with _lock:
        if not _active:
            _install()
        _active.append(routes)
    try:
        yield dict(routes)
    finally:
        with _lock:
            index = next(i for i, item in enumerate(_active) if item is routes)
            del _active[index]
            if not _active:
                _uninstall()


def _install() -> None:
    original_get_adapter = requests.Session.get_adapter
    original_init = aiohttp.ClientSession.__init__
    adapter = _RoutingAdapter()

    def get_adapter(self: requests.Session, url: str) -> BaseAdapter:
        parts = urlsplit(url)
        if _target(parts.scheme, parts.hostname) is not None:
            return adapter
        return original_get_adapter(self, url)

    def init(self: aiohttp.ClientSession, *args: Any, **kwargs: Any) -> None:
        kwargs["middlewares"] = (*(kwargs.get("middlewares") or ()), _route_middleware)
        original_init(self, *args, **kwargs)

    _originals.update(get_adapter=original_get_adapter, init=original_init, adapter=adapter)
    requests.Session.get_adapter = get_adapter  # type: ignore[method-assign]
    aiohttp.ClientSession.__init__ = init  # type: ignore[method-assign]


def _uninstall() -> None:
    requests.Session.get_adapter = _originals.pop("get_adapter")  # type: ignore[method-assign]
    aiohttp.ClientSession.__init__ = _originals.pop("init")  # type: ignore[method-assign]
    _originals.pop("adapter").close()


class _RoutingAdapter(HTTPAdapter):
    """Sends requests for a routed host to its fake; the caller's request stays as it was."""

    def send(  # noqa: PLR0917  (the signature is HTTPAdapter.send's)
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        original_url = request.url or ""
        parts = urlsplit(original_url)
        target = _target(parts.scheme, parts.hostname)
        if target is None:
            # The context ended between choosing this adapter and sending: go the normal way.
            return super().send(request, stream, timeout, verify, cert, dict(proxies or {}))
        routed = request.copy()
        fake = urlsplit(target)
        routed.url = urlunsplit((fake.scheme, fake.netloc, parts.path or "/", parts.query, ""))
        if "Host" not in request.headers:
            host = parts.netloc.rpartition("@")[2]
            routed.headers = CaseInsensitiveDict({"Host": host, **request.headers})
        # The fake is on loopback: a configured proxy would only be in the way.
        response = super().send(routed, stream, timeout, verify, cert, {})
        response.url = original_url
        response.request = request
        return response


async def _route_middleware(
    req: aiohttp.ClientRequest, handler: ClientHandlerType
) -> aiohttp.ClientResponse:
    """Point a request for a routed host at its fake (``Host`` was already set from the URL)."""
    target = _target(req.url.scheme, req.url.host)
    if target is not None:
        req.url = URL(target + req.url.raw_path_qs, encoded=True)
        req.proxy = None
    return await handler(req)
