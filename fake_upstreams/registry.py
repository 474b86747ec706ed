"""The four fakes: which codec each serves, its fixed port, and the real host it stands in for.

This is the one place a new provider's fake is registered (see README, "Adding a fifth
provider"). Everything else — ``tapedeck serve``, the pytest fixtures, host routing for
unmodified clients — reads this table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from urllib.parse import urlsplit

from aiohttp import web

from fake_upstreams.app import FakeState, Strictness, json_endpoint, make_app
from fake_upstreams.server import FakeFleet, FakeServer
from providers.wire import ai365vip, aivvm, codelinkava, getgpt
from providers.wire.common import UpstreamCodec


@dataclass(frozen=True, slots=True)
class FakeSpec:
    """How to build one provider's fake."""

    name: str
    codec: UpstreamCodec
    #: The documented port of `tapedeck serve` (tests use port 0).
    default_port: int
    extra_routes: Callable[[], tuple[web.AbstractRouteDef, ...]] = tuple

    @property
    def real_host(self) -> str:
        """The host the original client talked to (what routing redirects to this fake)."""
        return urlsplit(self.codec.api_base).hostname or ""


def _aivvm_routes() -> tuple[web.AbstractRouteDef, ...]:
    # The real site listed its models here; the original adapter's table was copied from it.
    return (json_endpoint(aivvm.CODEC.models_path, aivvm.CODEC.models_reply),)


FAKES: Mapping[str, FakeSpec] = MappingProxyType(
    {
        "Aivvm": FakeSpec("Aivvm", aivvm.CODEC, 8101, _aivvm_routes),
        "AI365VIP": FakeSpec("AI365VIP", ai365vip.CODEC, 8102),
        "GetGpt": FakeSpec("GetGpt", getgpt.CODEC, 8103),
        "CodeLinkAva": FakeSpec("CodeLinkAva", codelinkava.CODEC, 8104),
    }
)


def spec_for(name: str) -> FakeSpec:
    """Look a fake up by name, case-insensitively, with a helpful error."""
    for key, spec in FAKES.items():
        if key.lower() == name.strip().lower():
            return spec
    raise KeyError(f"no fake named {name!r}; choose from {', '.join(FAKES)}")


def build_server(
    name: str,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    strictness: Strictness = "strict",
    state: FakeState | None = None,
) -> FakeServer:
    """An unstarted :class:`FakeServer` for one provider."""
    spec = spec_for(name)
    state = state if state is not None else FakeState(strictness=strictness)
    app = make_app(spec.codec, state, extra_routes=spec.extra_routes())
    return FakeServer(app, host=host, port=port)


def build_fleet(
    names: Iterable[str] = FAKES,
    *,
    host: str = "127.0.0.1",
    fixed_ports: bool = False,
    strictness: Strictness = "strict",
) -> FakeFleet:
    """Several fakes sharing one loop: documented ports if ``fixed_ports``, else port 0."""
    servers = {}
    for name in names:
        spec = spec_for(name)
        port = spec.default_port if fixed_ports else 0
        servers[spec.name] = build_server(spec.name, host=host, port=port, strictness=strictness)
    return FakeFleet(servers)
