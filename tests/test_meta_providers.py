"""The meta-test: every registered provider has a codec, a fake, a fixture, a shipped cassette,
golden request tests and hand-written expectations, and nothing is registered for a provider
that does not exist.

Adding a fifth provider to ``providers.PROVIDERS`` fails here until each piece exists; each
failure names the file to edit (README.md, "Adding a fifth provider", lists them in order).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import providers
from cassettes import yamlio
from fake_upstreams import pytest_plugin
from fake_upstreams.registry import FAKES
from providers import PROVIDERS, Provider
from providers.wire.common import UpstreamCodec
from tests import fakes_support as fs
from tests import test_fakes_adapters as fakes_adapters
from tests import test_fakes_hostile as fakes_hostile
from tests.wire_literals import ORIGINAL_HEADERS

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


@pytest.mark.parametrize("name", list(PROVIDERS))
def test_each_provider_is_exported_and_has_a_fixture(name: str) -> None:
    assert getattr(providers, name, None) is PROVIDERS[name], (
        f"export {name} from providers/__init__.py (import and __all__)"
    )
    fixture = f"fake_{name.lower()}"
    assert hasattr(pytest_plugin, fixture), (
        f"add a {fixture} fixture to fake_upstreams/pytest_plugin.py, like fake_getgpt"
    )


#: The hand-written expectations the test matrices read, by where they live.
HAND_WRITTEN: dict[str, tuple[str, ...] | dict[str, object]] = {
    "tests/fakes_support.py NAMES": fs.NAMES,
    "tests/fakes_support.py RAW_TEXT or SSE": (*fs.RAW_TEXT, *fs.SSE),
    "tests/fakes_support.py REQUESTS_BASED or AIOHTTP_BASED": (
        *fs.REQUESTS_BASED,
        *fs.AIOHTTP_BASED,
    ),
    "tests/fakes_support.py CHAT_PATH": dict(fs.CHAT_PATH),
    "tests/fakes_support.py SUCCESS_STATUS": dict(fs.SUCCESS_STATUS),
    "tests/fakes_support.py REAL_HOST": dict(fs.REAL_HOST),
    "tests/wire_literals.py ORIGINAL_HEADERS": dict(ORIGINAL_HEADERS),
    # GetGpt's body is encrypted afresh per call: that module checks its plaintext instead.
    "tests/test_fakes_adapters.py BODIES": (*fakes_adapters.BODIES, "GetGpt"),
    "tests/test_fakes_adapters.py ECHO": dict(fakes_adapters.ECHO),
    "tests/test_fakes_adapters.py LEGACY_ECHO": dict(fakes_adapters.LEGACY_ECHO),
    "tests/test_fakes_hostile.py VALID_BODIES": dict(fakes_hostile.VALID_BODIES),
}


@pytest.mark.parametrize("name", list(PROVIDERS))
def test_each_provider_has_hand_written_wire_facts(name: str) -> None:
    missing = [place for place, names in HAND_WRITTEN.items() if name not in names]
    assert not missing, (
        f"write {name}'s wire facts by hand, from docs/PROTOCOLS.md (never from the codec), "
        f"into: {'; '.join(missing)}"
    )


def test_nothing_is_registered_for_an_unknown_provider() -> None:
    for place, names in HAND_WRITTEN.items():
        assert set(names) <= set(PROVIDERS), place
    assert set(FAKES) <= set(PROVIDERS)
    assert set(shipped_by_provider()) <= set(PROVIDERS)
