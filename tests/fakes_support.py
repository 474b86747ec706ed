"""Shared helpers for the adapter-against-its-fake test matrices (tests/test_fakes_*.py).

Expected values here are written from docs/PROTOCOLS.md by hand (header tables in
tests/wire_literals.py, request bodies) or computed with independent code (GetGpt signatures in
tests/aes_oracle.py), never with our codecs.

Each test module owns a module-scoped fleet of the four real fakes and an autouse guard that
resets every fake before a test and, after it, waits for the fakes' handlers to finish and
re-raises anything that went wrong inside them (both from ``fleet_fixtures``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pytest

from fake_upstreams.registry import build_fleet
from fake_upstreams.server import FakeFleet, FakeServer
from providers import PROVIDERS, Provider
from providers.errors import TapedeckError
from tests.wire_literals import ORIGINAL_HEADERS

Door = Literal["sync", "async"]
DOORS: tuple[Door, ...] = ("sync", "async")
NAMES = ("Aivvm", "AI365VIP", "GetGpt", "CodeLinkAva")
RAW_TEXT = ("Aivvm", "AI365VIP")  # no framing, no end marker: the body is the text
SSE = ("GetGpt", "CodeLinkAva")  # data: lines ending in data: [DONE]
#: Providers whose original used requests (their async door runs the sync code in a thread).
REQUESTS_BASED = ("Aivvm", "GetGpt")
#: Providers whose original used aiohttp.
AIOHTTP_BASED = ("AI365VIP", "CodeLinkAva")
#: Chat endpoint per provider, from docs/PROTOCOLS.md.
CHAT_PATH = {
    "Aivvm": "/api/chat",
    "AI365VIP": "/api/chat",
    "GetGpt": "/api/chat/stream",
    "CodeLinkAva": "/api/chat",
}
#: What a good chat request is answered with.
SUCCESS_STATUS = {"Aivvm": 200, "AI365VIP": 200, "GetGpt": 201, "CodeLinkAva": 200}
#: The host each original talked to (named in the fakes' Cloudflare page).
REAL_HOST = {
    "Aivvm": "chat.aivvm.com",
    "AI365VIP": "chat.ai365vip.com",
    "GetGpt": "chat.getgpt.world",
    "CodeLinkAva": "ava-alpha-api.codelink.io",
}

#: The browser headers each fake checks, from the hand-written tables: everything the original
#: set except Content-Type, which the fakes judge on its own (see JSON_CT).
BROWSER_HEADERS: Mapping[str, tuple[tuple[str, str], ...]] = {
    name: tuple(pair for pair in headers if pair[0].lower() != "content-type")
    for name, headers in ORIGINAL_HEADERS.items()
}
JSON_CT = ("Content-Type", "application/json")

# -- running the fakes -------------------------------------------------------------------------


def fleet_fixtures() -> tuple[object, object]:
    """A test module's own ``fleet`` fixture and the autouse guard around each of its tests.

    Bind both at module level: ``fleet, _fakes_guard = fs.fleet_fixtures()`` (pytest finds a
    fixture by the module attribute it is bound to). ``fleet`` is all four fakes on ephemeral
    ports, strict, in their own loop thread, for the whole module (property tests cannot use a
    function-scoped fixture inside ``@given``); the guard is ``_guard_fakes``. Deliberately not
    the pytest plugin's fixtures.
    """

    @pytest.fixture(scope="module", name="fleet")
    def fleet() -> Iterator[FakeFleet]:
        """All four fakes, strict, for this module."""
        with build_fleet(NAMES) as running:
            yield running

    @pytest.fixture(autouse=True)
    def guard(
        fleet: FakeFleet, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
    ) -> Iterator[None]:
        """Reset the fakes before each test; check them after it."""
        yield from _guard_fakes(fleet, request, caplog)

    return fleet, guard


def settle(server: FakeServer, deadline: float = 2.0) -> None:
    """Wait until no request is still being answered.

    The journal's outcome is written by the fake after its last byte went out, which can be
    after the client returned. A reset while a handler still runs drops that handler's later
    updates (see test_reset_while_a_reply_runs_leaves_the_new_journal_alone), so a test that
    judges outcomes, or a handler error raised late, must be waited for before the next reset.
    """
    end = time.monotonic() + deadline
    while True:
        pending = [e.index for e in server.state.journal.entries if e.outcome == "pending"]
        if not pending:
            return
        if time.monotonic() > end:
            raise AssertionError(
                f"request(s) {pending} still being answered {deadline:g} s after the client "
                "returned: a fake's handler did not notice its client was gone"
            )
        time.sleep(0.005)


def _guard_fakes(
    fleet: FakeFleet, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> Iterator[None]:
    """Reset every fake before a test; afterwards settle, re-raise handler errors, check logs.

    For tests marked xfail the after-checks are skipped: the known bug may itself break them,
    and an error in teardown would be reported as an error instead of the expected failure.
    """
    for server in fleet.values():
        server.state.reset()
        server.state.strictness = "strict"
    yield
    expected_to_fail = request.node.get_closest_marker("xfail") is not None
    for server in fleet.values():
        try:
            settle(server)
        except AssertionError:
            if not expected_to_fail:
                raise
    if expected_to_fail:
        return
    for server in fleet.values():
        server.state.journal.raise_errors()
    tracebacks = [
        record.getMessage()
        for record in caplog.records
        if record.name.startswith("aiohttp") and record.levelno >= logging.ERROR
    ]
    assert not tracebacks, f"the fakes logged errors: {tracebacks}"


# -- calling an adapter through one of its doors ----------------------------------------------


def provider(name: str) -> type[Provider]:
    return PROVIDERS[name]


async def call(
    name: str,
    door: Door,
    url: str,
    messages: Sequence[Mapping[str, str]],
    *,
    model: str = "",
    **kwargs: Any,
) -> list[str]:
    """Every piece one call yields, through ``create_completion`` or ``create_async_generator``."""
    cls = provider(name)
    if door == "sync":
        return list(cls.create_completion(model, messages, base_url=url, **kwargs))
    agen = cls.create_async_generator(model, messages, base_url=url, **kwargs)
    return [piece async for piece in agen]


@dataclass(frozen=True, slots=True)
class Text:
    """The call returns exactly this text (pieces joined; no ``None`` pieces)."""

    text: str


@dataclass(frozen=True, slots=True)
class Raises:
    """The call raises exactly this class (not a subclass), with these attributes if given."""

    error: type[TapedeckError]
    partial: str | None = None
    status: int | None = None
    retry_after: float | None = None
    body: str | None = None
    body_has: str = ""


Outcome = Text | Raises
#: Slack on top of a call's own timeout before "within a deadline" fails.
DEADLINE_SLACK = 1.5


async def assert_outcome(
    expected: Outcome,
    name: str,
    door: Door,
    url: str,
    messages: Sequence[Mapping[str, str]],
    *,
    deadline: float = 5.0,
    **kwargs: Any,
) -> None:
    """Run one call with ``timeout=deadline``; check its documented outcome and that it ended
    within the deadline (plus scheduling slack). Any exception outside Tapedeck's hierarchy
    propagates and fails the test."""
    started = time.monotonic()
    if isinstance(expected, Raises):
        with pytest.raises(TapedeckError) as caught:
            await call(name, door, url, messages, timeout=deadline, **kwargs)
        _check_error(expected, caught.value)
    else:
        pieces = await call(name, door, url, messages, timeout=deadline, **kwargs)
        assert None not in pieces
        assert "".join(pieces) == expected.text
    elapsed = time.monotonic() - started
    assert elapsed < deadline + DEADLINE_SLACK, f"took {elapsed:.2f} s (deadline {deadline:g} s)"


def _check_error(expected: Raises, error: TapedeckError) -> None:
    assert type(error) is expected.error, f"expected {expected.error.__name__}, got {error!r}"
    if expected.partial is not None:
        assert getattr(error, "partial", None) == expected.partial
    if expected.status is not None:
        assert getattr(error, "status", None) == expected.status
    if expected.retry_after is not None:
        assert getattr(error, "retry_after", None) == expected.retry_after
    if expected.body is not None:
        assert getattr(error, "body_excerpt", None) == expected.body
    if expected.body_has:
        assert expected.body_has in str(getattr(error, "body_excerpt", ""))


def json_body(data: object) -> bytes:
    """JSON the way the originals serialised it (Python's default separators, ASCII escapes)."""
    return json.dumps(data).encode("ascii")
