"""Tapedeck's pytest plugin (registered through the ``pytest11`` entry point as ``tapedeck``).

Fixtures:

``fake_aivvm``, ``fake_ai365vip``, ``fake_getgpt``, ``fake_codelinkava``
    A :class:`~fake_upstreams.handles.FakeHandle` for one fake: ``.url``, ``.script(...)``,
    ``.queue(...)``, ``.journal``, ``.strictness``, ``.state``.
``fake_upstreams``
    All four, as a mapping name → handle (``fake_upstreams["GetGpt"]``).
``routed_upstreams``
    ``fake_upstreams`` while :func:`~fake_upstreams.routing.route_real_hosts` is active, for
    unmodified code that talks to the real hosts.
``tapedeck_fleet``
    The session's :class:`~fake_upstreams.server.FakeFleet` itself, never reset: for Hypothesis
    tests, which must not use function-scoped fixtures inside ``@given``.
``tapedeck_strictness``
    The strictness every fake starts each test with: ``"strict"``, or ``"lenient"`` with
    ``--tapedeck-lenient`` or ``TAPEDECK_STRICTNESS=lenient``. Override the fixture in a
    conftest or module to change it for those tests.

The four servers start once per session (per xdist worker) on ephemeral loopback ports, in a
loop thread of their own, so sync and async tests use them alike. Before each test the fakes
forget their scripts and journal and go back to the default strictness. After the test, an
exception raised inside a fake's handler fails that test as a
:class:`~providers.errors.FakeUpstreamError` (chained to the original), rather than showing up
only as an unexplained 500. Both steps first wait (2 s at most) for handlers still recording a
reply whose client already has it. Nothing is written to disk, so parallel workers cannot collide.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator

import pytest

from fake_upstreams.app import Strictness
from fake_upstreams.handles import FakeHandle, FakeUpstreams, check_strictness
from fake_upstreams.registry import build_fleet
from fake_upstreams.routing import route_real_hosts
from fake_upstreams.server import FakeFleet
from providers.errors import FakeUpstreamError

STRICTNESS_ENV = "TAPEDECK_STRICTNESS"
_ACTIVE = pytest.StashKey[FakeUpstreams]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("tapedeck", "Tapedeck fake upstreams")
    group.addoption(
        "--tapedeck-lenient",
        action="store_true",
        default=False,
        help=(
            "start every test's fakes in lenient mode (accept any well-formed request); "
            f"same as {STRICTNESS_ENV}=lenient"
        ),
    )


def pytest_configure(config: pytest.Config) -> None:
    # A typo in the environment should stop the run at once, not fail every test.
    value = os.environ.get(STRICTNESS_ENV)
    if value:
        try:
            check_strictness(value)
        except ValueError as error:
            raise pytest.UsageError(f"{STRICTNESS_ENV}: {error}") from None


@pytest.fixture(scope="session")
def tapedeck_fleet() -> Iterator[FakeFleet]:
    """All four fakes, started once for the session on ephemeral 127.0.0.1 ports."""
    with build_fleet() as fleet:
        yield fleet


@pytest.fixture
def tapedeck_strictness(pytestconfig: pytest.Config) -> Strictness:
    """Default strictness of the fakes: option, then environment, then ``"strict"``."""
    if pytestconfig.getoption("tapedeck_lenient"):
        return "lenient"
    return check_strictness(os.environ.get(STRICTNESS_ENV) or "strict")


@pytest.fixture
def fake_upstreams(
    request: pytest.FixtureRequest, tapedeck_fleet: FakeFleet, tapedeck_strictness: Strictness
) -> Iterator[FakeUpstreams]:
    """Every fake, reset for this test, by name; handler errors fail the test afterwards."""
    strictness = check_strictness(tapedeck_strictness)
    fakes = FakeUpstreams(
        {
            name: FakeHandle(name, server, default_strictness=strictness)
            for name, server in tapedeck_fleet.items()
        }
    )
    fakes.settle()
    fakes.reset()
    request.node.stash[_ACTIVE] = fakes
    try:
        yield fakes
        # Errors from requests made after the test body (other fixtures' teardown) end up here.
        fakes.settle()
        fakes.raise_new_errors()
    finally:
        del request.node.stash[_ACTIVE]
        fakes.settle()
        fakes.reset()


@pytest.fixture
def fake_aivvm(fake_upstreams: FakeUpstreams) -> FakeHandle:
    """The Aivvm fake (``POST /api/chat``, ``POST /api/models``), reset for this test."""
    return fake_upstreams["Aivvm"]


@pytest.fixture
def fake_ai365vip(fake_upstreams: FakeUpstreams) -> FakeHandle:
    """The AI365VIP fake (``POST /api/chat``), reset for this test."""
    return fake_upstreams["AI365VIP"]


@pytest.fixture
def fake_getgpt(fake_upstreams: FakeUpstreams) -> FakeHandle:
    """The GetGpt fake (``POST /api/chat/stream``, encrypted signature), reset for this test."""
    return fake_upstreams["GetGpt"]


@pytest.fixture
def fake_codelinkava(fake_upstreams: FakeUpstreams) -> FakeHandle:
    """The CodeLinkAva fake (``POST /api/chat``), reset for this test."""
    return fake_upstreams["CodeLinkAva"]


@pytest.fixture
def routed_upstreams(fake_upstreams: FakeUpstreams) -> Iterator[FakeUpstreams]:
    """The fakes, with requests/aiohttp traffic for the real hosts routed to them."""
    with route_real_hosts(fake_upstreams):
        yield fake_upstreams


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    """Fail the test itself (not its teardown) when a fake's handler raised during it."""
    __tracebackhide__ = True
    try:
        result = yield
    except BaseException as error:
        fakes = item.stash.get(_ACTIVE, None)
        if fakes is not None:
            try:
                fakes.settle()
                fakes.raise_new_errors()
            except FakeUpstreamError as handler_error:
                error.add_note(f"Meanwhile, in a fake upstream: {handler_error}")
        raise
    fakes = item.stash.get(_ACTIVE, None)
    if fakes is not None:
        fakes.settle()  # a handler may still be recording a reply its client already has
        fakes.raise_new_errors()
    return result
