"""Replay cassettes in tests (``pytest11`` entry point ``tapedeck_cassettes``).

    @pytest.mark.tapedeck_cassette("cassettes/getgpt.yaml")
    def test_getgpt_reply(cassette_server):
        text = "".join(GetGpt.create_completion("", HI, base_url=cassette_server.url))
        assert text == "Hello"
        assert cassette_server.unplayed == []

Marker ``tapedeck_cassette(path, *, speed=0, allow_repeats=False, strict=False)``
    The cassette the test's ``cassette_server`` replays. A relative ``path`` is looked up next to
    the test file first, then under the rootdir. ``speed`` and ``allow_repeats`` are those of
    :class:`~cassettes.replay.ReplayServer`; ``strict=True`` fails the test when interactions
    are left unplayed. The closest marker wins (function over class over module).

Fixture ``cassette_server``
    A running :class:`~cassettes.replay.ReplayServer` for the marked cassette (``.url``,
    ``.unplayed``, ``.played``, ``.misses``, ``.take_misses()``), in a loop thread of its own so
    sync and async tests use it alike, started fresh for every test.

A request that matched nothing fails the test that made it with the
:class:`~providers.errors.NoMatchingInteractionError` naming the closest recordings, even when
the code under test caught the HTTP error: a test that expects an error must not pass because
the cassette lacked the request. A test that provokes misses on purpose claims them with
``cassette_server.take_misses()``.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cassettes.replay import ReplayServer

MARKER = "tapedeck_cassette"
_OPTIONS = frozenset({"speed", "allow_repeats", "strict"})
_ACTIVE = pytest.StashKey[tuple[ReplayServer, bool]]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(path, *, speed=0, allow_repeats=False, strict=False): the cassette the "
        "cassette_server fixture replays (strict: fail if interactions are left unplayed)",
    )


@dataclass(frozen=True, slots=True)
class CassetteOptions:
    """What a ``tapedeck_cassette`` marker asked for, with the path resolved."""

    path: Path
    speed: float = 0.0
    allow_repeats: bool = False
    strict: bool = False


def cassette_options(item: pytest.Item) -> CassetteOptions:
    """The options of the marker closest to ``item``; fails the test on a malformed marker."""
    marker = item.get_closest_marker(MARKER)
    if marker is None:
        pytest.fail(
            f"cassette_server needs a cassette: mark the test @pytest.mark.{MARKER}('path.yaml')",
            pytrace=False,
        )
    unknown = sorted(set(marker.kwargs) - _OPTIONS)
    if len(marker.args) != 1 or not isinstance(marker.args[0], str | Path) or unknown:
        pytest.fail(
            f"@pytest.mark.{MARKER} takes one path and only {', '.join(sorted(_OPTIONS))} as "
            f"keywords; got args {marker.args!r}"
            + (f" and unknown keywords {', '.join(unknown)}" if unknown else ""),
            pytrace=False,
        )
    speed = marker.kwargs.get("speed", 0.0)
    if not (isinstance(speed, int | float) and math.isfinite(speed) and speed >= 0):
        pytest.fail(f"{MARKER}: speed must be 0 or a positive number, got {speed!r}", pytrace=False)
    return CassetteOptions(
        path=_resolve(Path(marker.args[0]), item),
        speed=float(speed),
        allow_repeats=bool(marker.kwargs.get("allow_repeats", False)),
        strict=bool(marker.kwargs.get("strict", False)),
    )


def _resolve(path: Path, item: pytest.Item) -> Path:
    if path.is_absolute():
        places = [path]
    else:
        places = [item.path.parent / path, item.config.rootpath / path]
    for place in places:
        if place.is_file():
            return place
    tried = " or ".join(str(place) for place in places)
    pytest.fail(f"{MARKER}: no cassette at {tried}", pytrace=False)


@pytest.fixture
def cassette_server(request: pytest.FixtureRequest) -> Iterator[ReplayServer]:
    """A replay server for this test's ``tapedeck_cassette``; misses fail the test."""
    options = cassette_options(request.node)
    with ReplayServer(
        options.path, speed=options.speed, allow_repeats=options.allow_repeats
    ) as server:
        request.node.stash[_ACTIVE] = (server, options.strict)
        try:
            yield server
            # Requests made after the test body (other fixtures' teardown) are judged here.
            server.raise_misses()
        finally:
            del request.node.stash[_ACTIVE]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    """Fail the test itself when one of its requests matched nothing, or (strict) when
    interactions were left unplayed."""
    __tracebackhide__ = True
    try:
        result = yield
    except BaseException as error:
        active = item.stash.get(_ACTIVE, None)
        if active is not None:
            for miss in active[0].take_misses():
                error.add_note(f"Meanwhile, the cassette server: {miss}")
        raise
    active = item.stash.get(_ACTIVE, None)
    if active is not None:
        server, strict = active
        server.raise_misses()
        left = server.describe_unplayed()
        if strict and left:
            pytest.fail(
                f"{len(left)} interaction(s) of {server.path} were never played "
                f"(strict=True):\n  " + "\n  ".join(left),
                pytrace=False,
            )
    return result
