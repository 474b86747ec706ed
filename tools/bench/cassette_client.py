"""The client side of the cassette benchmarks: one ``requests`` loop for both sides, and vcrpy.

:func:`drive` is the only client code the replay comparison runs: a ``requests.Session`` (one
keep-alive connection) POSTing each call and reading the body as the adapters do
(``iter_content(4096)``), checking status and body against the recording. Ours points it at the
replay server; vcrpy's side runs it unchanged inside vcrpy's cassette context, aimed at the
recorded host, which vcrpy intercepts without a socket.

vcrpy is used as its users use it: ``vcr.VCR().use_cassette(path, record_mode="none",
match_on=...)`` builds the cassette's configuration and vcrpy's own context manager patches the
HTTP libraries. The one liberty taken: :class:`_Preloaded` hands that context manager a cassette
parsed once per process and rewound, instead of parsing the file again for every run (5 s at
5,000 interactions). Playing from it is exactly what vcrpy does after loading; loading is
measured on its own (``cassette-load``).

Whatever a job reads from a cassette file is cached in this (client) process, because a job
runs many times; :func:`forget` drops the caches before a benchmark whose figure they would skew.
"""

from __future__ import annotations

import functools
import gc
from collections.abc import Sequence
from typing import Any

import requests
import vcr
from vcr.cassette import Cassette as VcrCassette
from vcr.cassette import CassetteContextDecorator

from cassettes import yamlio
from providers.errors import TapedeckError
from tools.bench.cassette_gen import ClientCall, calls

#: vcrpy's own matchers making it tell distinct requests apart as Tapedeck's matcher does:
#: method, path and body (``body`` compares JSON bodies parsed, like Tapedeck's canonical JSON).
VCR_MATCH_ON = ("method", "path", "body")
_READ_SIZE = 4096  # what the adapters' transports read at a time

_CALLS: dict[str, tuple[ClientCall, ...]] = {}
_VCR_CASSETTES: dict[tuple[str, tuple[str, ...]], Any] = {}


def cached_calls(path: str) -> tuple[ClientCall, ...]:
    """The calls of the cassette at ``path``, loaded once per process."""
    if path not in _CALLS:
        _CALLS[path] = calls(yamlio.load(path))
    return _CALLS[path]


def forget() -> None:
    """Drop every cache of this process and collect: the next figure starts from clean memory."""
    _CALLS.clear()
    _VCR_CASSETTES.clear()
    gc.collect()


def loopback_session() -> requests.Session:
    """The ``requests.Session`` every cassette benchmark drives, on either side of a comparison.

    ``trust_env`` is off. With it on, requests reads the whole process environment twice per
    request (proxy settings) and looks for ``~/.netrc``: about 0.17 ms per request on the
    benchmark machine, growing with the size of the environment, so a cost of the machine
    rather than of either replay, and one that would let a user's ``HTTP_PROXY`` send loopback
    traffic through their proxy. The same session type serves both sides, so vcrpy's side loses
    the same fixed cost.
    """
    session = requests.Session()
    session.trust_env = False
    return session


def drive(session: requests.Session, base_url: str, chosen: Sequence[ClientCall]) -> None:
    """Send every call in order and read every reply whole; raise at the first wrong reply."""
    for call in chosen:
        with session.request(
            call.method,
            base_url + call.path,
            data=call.body,
            headers=dict(call.headers),
            stream=True,
            timeout=30,
        ) as reply:
            body = b"".join(reply.iter_content(_READ_SIZE))
            status = reply.status_code
        if status != call.status or body != call.expected:
            raise TapedeckError(
                f"{call.method} {base_url}{call.path}: got {status} with {len(body)} body bytes, "
                f"recorded {call.status} with {len(call.expected)}: {body[:200]!r}"
            )


class _Preloaded(VcrCassette):  # type: ignore[misc]
    """vcrpy's Cassette, parsed once per process and rewound every time vcrpy asks to load it."""

    @classmethod
    def load(cls, **kwargs: Any) -> Any:
        names = tuple(getattr(matcher, "__name__", "?") for matcher in kwargs["match_on"])
        key = (str(kwargs["path"]), names)
        cassette = _VCR_CASSETTES.get(key)
        if cassette is None:
            cassette = _VCR_CASSETTES[key] = super().load(**kwargs)
        cassette.rewind()
        return cassette


def _vcr_config(path: str, match_on: Sequence[str]) -> functools.partial[dict[str, Any]]:
    # What vcr.VCR().use_cassette(path, record_mode="none", match_on=...) evaluates on entry.
    return functools.partial(
        vcr.VCR().get_merged_config, path=path, record_mode="none", match_on=list(match_on)
    )


def vcr_context(path: str, match_on: Sequence[str] = VCR_MATCH_ON) -> Any:
    """``use_cassette(path, record_mode="none", match_on=...)``, on the preloaded cassette."""
    return CassetteContextDecorator(_Preloaded, _vcr_config(path, match_on))


def vcr_cassette(path: str, match_on: Sequence[str] = VCR_MATCH_ON) -> Any:
    """The rewound vcrpy Cassette that :func:`vcr_context` plays from (for lookups alone)."""
    config = _vcr_config(path, match_on)()
    for name in CassetteContextDecorator._non_cassette_arguments:
        config.pop(name, None)
    return _Preloaded.load(**config)


def vcr_cassette_load(path: str, match_on: Sequence[str] = VCR_MATCH_ON) -> Any:
    """What entering ``use_cassette`` costs before the first request: ``Cassette.load``."""
    config = _vcr_config(path, match_on)()
    for name in CassetteContextDecorator._non_cassette_arguments:
        config.pop(name, None)
    return VcrCassette.load(**config)
