"""Every shipped cassette replays against its adapter with the outcome written down for it.

The expectations come from ``cassettes/library/expected.json`` (written by hand from the fakes'
scripts when the library was recorded, never from the adapter). Each cassette is replayed by the
replay server through the sync and the async door, with the correct decoding and, where the
table gives one, the original's legacy decoding (which depends on where chunks were cut, so it
only comes out right if replay keeps the recorded boundaries). Then plain vcrpy, with Tapedeck's
matchers registered, replays the same file in-process.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import vcr

import providers.errors
from cassettes import yamlio
from cassettes.getgpt_matcher import register_getgpt
from cassettes.lint import lint_paths
from cassettes.replay import ReplayServer
from providers import PROVIDERS, Provider

LIBRARY = Path(__file__).resolve().parent.parent / "cassettes" / "library"
EXPECTED = LIBRARY / "expected.json"

if not EXPECTED.exists():  # only while the library is being recorded; it ships with the code
    pytest.skip(f"no shipped cassette library yet ({EXPECTED} is missing)", allow_module_level=True)


@dataclass(frozen=True)
class Call:
    """One recorded adapter call and what it must give."""

    model: str
    messages: tuple[Mapping[str, str], ...]
    expect: Mapping[str, Any]


@dataclass(frozen=True)
class Shipped:
    """One shipped cassette, its adapter and its calls in recording order."""

    path: Path
    provider: type[Provider]
    calls: tuple[Call, ...]

    def __str__(self) -> str:
        return self.path.name


def shipped() -> list[Shipped]:
    table = json.loads(EXPECTED.read_text(encoding="utf-8"))
    return [
        Shipped(
            LIBRARY / entry["file"],
            PROVIDERS[entry["provider"]],
            tuple(
                Call(call["model"], tuple(call["messages"]), call["expect"])
                for call in entry["calls"]
            ),
        )
        for entry in table["cassettes"]
    ]


SHIPPED = shipped()


def collect_sync(provider: type[Provider], call: Call, **kwargs: Any) -> str:
    pieces = provider.create_completion(call.model, list(call.messages), **kwargs)
    return "".join(piece for piece in pieces if piece is not None)


def collect_async(provider: type[Provider], call: Call, **kwargs: Any) -> str:
    async def gather() -> str:
        agen = provider.create_async_generator(call.model, list(call.messages), **kwargs)
        return "".join([piece async for piece in agen if piece is not None])

    return asyncio.run(gather())


DOORS = {"sync": collect_sync, "async": collect_async}


def check(call: Call, run: Callable[[], str], *, legacy: bool = False) -> None:
    """Run ``run()`` and compare with the call's expectation (text, or error and attributes)."""
    expect = dict(call.expect)
    if legacy:
        assert run() == expect["legacy_text"]
        return
    if "error" in expect:
        error_type = getattr(providers.errors, expect.pop("error"))
        expect.pop("legacy_text", None)
        with pytest.raises(error_type) as raised:
            run()
        for name, value in expect.items():
            assert getattr(raised.value, name) == value, name
    else:
        assert run() == expect["text"]


def cases() -> list[Any]:
    params = []
    for cassette in SHIPPED:
        decodings = ["correct"]
        if any("legacy_text" in call.expect for call in cassette.calls):
            decodings.append("legacy")
        for door in DOORS:
            for decoding in decodings:
                params.append(
                    pytest.param(cassette, door, decoding, id=f"{cassette}-{door}-{decoding}")
                )
    return params


def test_the_library_holds_a_cassette_per_provider_and_every_fault_the_issue_names() -> None:
    assert {cassette.provider for cassette in SHIPPED} == set(PROVIDERS.values())
    assert all(cassette.path.is_file() for cassette in SHIPPED)
    outcomes = {
        (cassette.provider.__name__, call.expect.get("error"), call.expect.get("status"))
        for cassette in SHIPPED
        for call in cassette.calls
    }
    assert ("Aivvm", "AccessDeniedError", 403) in outcomes  # the Cloudflare page
    assert ("CodeLinkAva", "TruncatedStreamError", None) in outcomes  # no [DONE]
    responses = [
        (cassette.provider.__name__, interaction.response)
        for cassette in SHIPPED
        for interaction in yamlio.load(cassette.path).interactions
    ]
    assert any(name == "GetGpt" and response.status == 201 for name, response in responses)
    # A stream split inside a UTF-8 character: some chunk starts with a continuation byte.
    assert any(
        piece[0] & 0xC0 == 0x80 for _, response in responses for piece in response.chunk_bytes()
    )


@pytest.mark.parametrize(("cassette", "door", "decoding"), cases())
def test_each_shipped_cassette_replays_through_the_replay_server(
    cassette: Shipped, door: str, decoding: str
) -> None:
    collect = DOORS[door]
    with ReplayServer(cassette.path) as server:
        for call in cassette.calls:
            if decoding == "legacy" and "legacy_text" not in call.expect:
                continue

            def run(call: Call = call) -> str:
                return collect(
                    cassette.provider, call, base_url=server.url, decoding=decoding, timeout=10
                )

            check(call, run, legacy=decoding == "legacy")
        assert server.misses == []
        if decoding == "correct":
            assert server.unplayed == []


@pytest.mark.parametrize("cassette", [c for c in SHIPPED if len(c.calls) > 1], ids=str)
def test_calls_recorded_together_replay_in_reverse_order_too(cassette: Shipped) -> None:
    with ReplayServer(cassette.path) as server:
        for call in reversed(cassette.calls):
            check(call, partial(collect_sync, cassette.provider, call, base_url=server.url))
        assert server.unplayed == []


@pytest.mark.parametrize("door", list(DOORS))
@pytest.mark.parametrize("cassette", SHIPPED, ids=str)
def test_plain_vcrpy_replays_each_shipped_cassette(cassette: Shipped, door: str) -> None:
    my_vcr = vcr.VCR(record_mode="none", match_on=["tapedeck"])
    register_getgpt(my_vcr)
    collect = DOORS[door]
    with my_vcr.use_cassette(str(cassette.path)) as recorded:
        for call in cassette.calls:
            # No base_url: the adapter aims at the real site; vcrpy answers before any socket.
            check(call, partial(collect, cassette.provider, call, timeout=10))
        assert recorded.all_played


def test_vcrpy_loses_the_chunk_boundaries_that_replay_keeps() -> None:
    (split,) = [c for c in SHIPPED if c.path.name == "aivvm_split_utf8.yaml"]
    (call,) = split.calls
    my_vcr = vcr.VCR(record_mode="none", match_on=["tapedeck"])
    register_getgpt(my_vcr)
    with my_vcr.use_cassette(str(split.path)):
        under_vcrpy = collect_sync(split.provider, call, decoding="legacy", timeout=10)
    # vcrpy hands the body back in one piece, so the original's chunk-by-chunk decoding never
    # meets a split character: the legacy bug the cassette exists to reproduce is gone.
    assert under_vcrpy == call.expect["text"] != call.expect["legacy_text"]


def test_every_shipped_cassette_is_lint_clean_and_has_honest_provenance() -> None:
    assert lint_paths([LIBRARY]) == []
    for cassette in SHIPPED:
        loaded = yamlio.load(cassette.path)
        assert loaded.provenance is not None
        assert loaded.provenance.source == "fake"  # the real sites are gone
