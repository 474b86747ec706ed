"""Stopping a call halfway: the bridges between the two doors give back the caller's exception
and close the connection, instead of raising one of their own and leaving it open.

Each test stops a call while the fake is stalling mid-reply (so a read is blocked), then checks
what the caller got, how long it took, and that the fake saw the client go away.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Iterator

import pytest

from fake_upstreams.registry import build_server
from fake_upstreams.server import FakeServer
from providers import PROVIDERS, Provider
from providers.transport import Timeouts

MESSAGES = [{"role": "user", "content": "hi"}]
#: The fake sends a few bytes, then nothing for this long: any read in progress blocks.
STALL = {"text": "one two three", "fault": {"kind": "stall", "after_bytes": 5, "seconds": 30}}
#: Generous deadlines, so that only the stop under test can end the call early.
TIMEOUTS = Timeouts(connect=5, read=20, total=30)
SYNC_BASED = [name for name, provider in PROVIDERS.items() if not provider.native_async]
AIOHTTP_BASED = [name for name, provider in PROVIDERS.items() if provider.native_async]


@pytest.fixture
def stalling(request: pytest.FixtureRequest) -> Iterator[tuple[type[Provider], FakeServer]]:
    name: str = request.param
    with build_server(name) as fake:
        fake.state.scripts.load(STALL)
        yield PROVIDERS[name], fake


def wait_for_outcome(fake: FakeServer, wanted: str, within: float = 5.0) -> str:
    """The last journal entry's outcome once it is ``wanted`` (or whatever it is at the end)."""
    end = time.monotonic() + within
    while True:
        outcome = fake.state.journal.last.outcome
        if outcome == wanted or time.monotonic() > end:
            return outcome
        time.sleep(0.02)


@pytest.mark.parametrize("stalling", SYNC_BASED, indirect=True)
def test_cancelling_the_async_door_of_a_requests_adapter_goes_through_at_once(
    stalling: tuple[type[Provider], FakeServer],
) -> None:
    provider, fake = stalling

    async def consume() -> list[str]:
        agen = provider.create_async_generator("", MESSAGES, base_url=fake.url, timeout=TIMEOUTS)
        return [piece async for piece in agen]

    async def main() -> None:
        with pytest.raises(TimeoutError):  # wait_for's own, not an error of the bridge
            await asyncio.wait_for(consume(), 1.0)

    started = time.monotonic()
    asyncio.run(main())  # returns without waiting for the blocked read to time out
    assert time.monotonic() - started < 5
    assert wait_for_outcome(fake, "client-disconnected") == "client-disconnected"


@pytest.mark.parametrize("stalling", SYNC_BASED, indirect=True)
async def test_closing_the_async_door_between_pieces_closes_the_connection(
    stalling: tuple[type[Provider], FakeServer],
) -> None:
    provider, fake = stalling
    fake.state.scripts.load({"pieces": ["a", "b", "c"], "chunk_delay": 0.05})
    agen = provider.create_async_generator("", MESSAGES, base_url=fake.url, timeout=TIMEOUTS)
    assert await agen.__anext__() == "a"
    await agen.aclose()  # type: ignore[attr-defined]
    assert wait_for_outcome(fake, "client-disconnected") == "client-disconnected"


class Interrupted(Exception):
    """Raised by a signal handler in the main thread: a stand-in for KeyboardInterrupt."""


@pytest.fixture
def interrupt_soon() -> Iterator[None]:
    """Raise :class:`Interrupted` in the main thread after 0.5 s, as Ctrl-C would."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals are delivered to the main thread only")

    def handler(signum: int, frame: object) -> None:
        raise Interrupted

    previous = signal.signal(signal.SIGUSR1, handler)
    main = threading.main_thread().ident
    assert main is not None
    timer = threading.Timer(0.5, signal.pthread_kill, (main, signal.SIGUSR1))
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        signal.signal(signal.SIGUSR1, previous)


@pytest.mark.parametrize("stalling", AIOHTTP_BASED, indirect=True)
@pytest.mark.usefixtures("interrupt_soon")
def test_an_interrupt_in_the_sync_door_of_an_aiohttp_adapter_comes_through(
    stalling: tuple[type[Provider], FakeServer],
) -> None:
    provider, fake = stalling
    started = time.monotonic()
    with pytest.raises(Interrupted):
        for _ in provider.create_completion("", MESSAGES, base_url=fake.url, timeout=TIMEOUTS):
            pass
    assert time.monotonic() - started < 5
    assert wait_for_outcome(fake, "client-disconnected") == "client-disconnected"
