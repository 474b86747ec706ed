"""The meta-test: every registered provider has a codec, a fake, a shipped cassette and golden
request tests, and nothing is registered for a provider that does not exist.

Adding a fifth provider to ``providers.PROVIDERS`` fails here until each piece exists.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cassettes import yamlio
from fake_upstreams.registry import FAKES
from providers import PROVIDERS, Provider
from providers.wire.common import UpstreamCodec

ROOT = Path(__file__).resolve().parent.parent
LIBRARY = ROOT / "cassettes" / "library"
GOLDEN = Path(__file__).resolve().parent / "test_golden_requests.py"


def shipped_by_provider() -> dict[str, list[str]]:
    table = json.loads((LIBRARY / "expected.json").read_text(encoding="utf-8"))
    found: dict[str, list[str]] = {}
    for entry in table["cassettes"]:
        found.setdefault(entry["provider"], []).append(entry["file"])
    return found


@pytest.mark.parametrize("name", list(PROVIDERS))
def test_each_provider_has_a_codec(name: str) -> None:
    provider = PROVIDERS[name]
    assert issubclass(provider, Provider)
    assert isinstance(provider.codec, UpstreamCodec)
    assert provider.codec.name == name


@pytest.mark.parametrize("name", list(PROVIDERS))
def test_each_provider_has_a_fake_serving_its_own_codec(name: str) -> None:
    assert name in FAKES, f"no fake registered for {name} in fake_upstreams.registry.FAKES"
    assert FAKES[name].codec is PROVIDERS[name].codec


@pytest.mark.parametrize("name", list(PROVIDERS))
def test_each_provider_has_a_shipped_cassette_of_its_own_requests(name: str) -> None:
    files = shipped_by_provider().get(name, [])
    assert files, f"no cassette for {name} in cassettes/library/expected.json"
    chat_path = PROVIDERS[name].codec.chat_path
    for file in files:
        cassette = yamlio.load(LIBRARY / file)
        assert len(cassette) >= 1
        assert all(i.request.path == chat_path for i in cassette.interactions), file


@pytest.mark.parametrize("name", list(PROVIDERS))
def test_each_provider_has_golden_request_tests(name: str) -> None:
    source = GOLDEN.read_text(encoding="utf-8")
    assert f"def test_{name.lower()}_" in source, f"no golden request test for {name}"
    assert name in source


def test_nothing_is_registered_for_an_unknown_provider() -> None:
    assert set(FAKES) <= set(PROVIDERS)
    assert set(shipped_by_provider()) <= set(PROVIDERS)
