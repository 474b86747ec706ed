"""Replay a cassette over HTTP on loopback, chunk for chunk, with constant-time request lookup.

    with ReplayServer("cassettes/library/getgpt.yaml") as server:        # from sync code
        text = "".join(GetGpt.create_completion("", messages, base_url=server.url))
        assert server.unplayed == []

    async with ReplayServer(cassette, speed=1.0) as server:             # in a running loop
        ...

The cassette is loaded once (:func:`cassettes.yamlio.load`) and indexed by request key
(:class:`~cassettes.index.InteractionIndex` with :func:`~cassettes.getgpt_matcher.tapedeck_matcher`,
so GetGpt's encrypted bodies match by plaintext). Each request costs one key computation and one
dict lookup, however large the cassette. Each interaction is played once, in recording order;
``allow_repeats=True`` plays a key's last answer again once its answers are used up.

A request that matches nothing gets a 421 JSON answer naming the closest recordings (see
:mod:`cassettes.replay_http`), and the :class:`~providers.errors.NoMatchingInteractionError` is
kept in :attr:`ReplayServer.misses`, so a test can raise it in-process
(:meth:`ReplayServer.raise_misses`) even when the code under test swallowed the HTTP error.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from cassettes import yamlio
from cassettes.getgpt_matcher import tapedeck_matcher
from cassettes.index import InteractionIndex
from cassettes.matchers import Candidate, Matcher
from cassettes.model import Cassette, Headers, Interaction, RecordedRequest
from cassettes.replay_http import HANDLER_ARGS, MISS_STATUS, Playable, ReplayEvent, make_handler
from fake_upstreams.lifecycle import AppServer, Lifecycle
from providers.errors import NoMatchingInteractionError

__all__ = ["MISS_STATUS", "ReplayEvent", "ReplayServer", "Replayer"]

EventHook = Callable[[ReplayEvent], None]


class Replayer:
    """What a replay server knows, without any I/O: the index, the speed, misses and events."""

    def __init__(
        self,
        cassette: Cassette,
        *,
        matcher: Matcher | None = None,
        speed: float = 0.0,
        allow_repeats: bool = False,
        name: str = "the cassette",
        on_event: EventHook | None = None,
    ) -> None:
        if not (math.isfinite(speed) and speed >= 0):
            raise ValueError(f"speed must be 0 (no delays) or a positive factor, got {speed!r}")
        self.cassette = cassette
        self.speed = float(speed)
        self.name = name
        self.on_event = on_event
        self.index = InteractionIndex.from_cassette(
            cassette, matcher=matcher or tapedeck_matcher(), allow_repeats=allow_repeats, name=name
        )
        self._origin = _common_origin(cassette.interactions)
        # Every response is prepared here, once, rather than on its first play: a request then
        # costs the same whether or not its interaction was played before, however large the
        # cassette (about 8 µs per interaction, 40 ms at 5,000).
        self._playables = tuple(Playable.of(i.response) for i in cassette.interactions)
        self._misses: list[NoMatchingInteractionError] = []
        self._repeats = 0  # misses whose recordings were all played already
        self._cut = 0  # replies cut short
        self._lock = threading.Lock()

    def request_from(
        self, method: str, path: str, headers: Iterable[tuple[str, str]], body: bytes
    ) -> RecordedRequest:
        """An incoming request as the index sees it.

        When every recording went to one origin (scheme and host), the request is given that
        origin, so normalisers registered by host apply to replayed requests as they did to the
        recordings; otherwise it keeps the replay server's own.
        """
        grouped: Headers = {}
        host = ""
        for name, value in headers:
            grouped.setdefault(name, []).append(value)
            if name.lower() == "host":
                host = value
        origin = self._origin or f"http://{host or '127.0.0.1'}"
        return RecordedRequest(method, origin + path, grouped, body or None)

    def lookup(self, request: RecordedRequest) -> tuple[int, Playable]:
        """The next interaction for ``request``, ready to send.

        Raises :class:`NoMatchingInteractionError` naming the closest recordings, or saying
        that the request could not be compared at all (see :func:`too_deep_to_match`).
        """
        try:
            number, _ = self.index.lookup(request)
        except RecursionError:
            raise too_deep_to_match(request, self.name) from None
        return number, self._playables[number]

    def closest(self, request: RecordedRequest, n: int = 3) -> list[Candidate]:
        """The ``n`` recordings nearest to ``request`` (a scan: only ever done for a miss);
        none when the request cannot be compared at all."""
        try:
            return self.index.closest(request, n)
        except RecursionError:
            return []

    def record_miss(
        self, error: NoMatchingInteractionError, *, already_played: bool = False
    ) -> None:
        """Keep a miss the HTTP side answered, for the test to raise later; ``already_played``:
        the request matched recordings, but every one of them was played already."""
        with self._lock:
            self._misses.append(error)
            self._repeats += already_played

    def reset(self) -> None:
        """Every interaction can be played again; misses and cut replies are forgotten."""
        self.index.reset()
        with self._lock:
            self._misses, self._repeats, self._cut = [], 0, 0

    def record_cut(self) -> None:
        """Count a reply that was cut short (client gone, server stopping)."""
        with self._lock:
            self._cut += 1

    def emit(self, event: ReplayEvent) -> None:
        """Tell the event hook (the CLI's request log) about an answered request."""
        if self.on_event is not None:
            self.on_event(event)

    def take_misses(self) -> list[NoMatchingInteractionError]:
        """The misses so far, forgetting them (a test that provoked them claims them)."""
        with self._lock:
            misses, self._misses = self._misses, []
            self._repeats = 0
        return misses

    @property
    def misses(self) -> list[NoMatchingInteractionError]:
        """Every request that matched nothing, oldest first."""
        with self._lock:
            return list(self._misses)

    @property
    def repeats(self) -> int:
        """How many of :attr:`misses` matched recordings that were all played already."""
        with self._lock:
            return self._repeats

    @property
    def cut_plays(self) -> int:
        """How many replies were cut short: counted as played, but not sent whole."""
        with self._lock:
            return self._cut


class ReplayServer(Lifecycle):
    """A cassette served on ``host:port`` (127.0.0.1, ephemeral port by default).

    A context manager: ``async with`` serves from the running loop, ``with`` from a private loop
    in a daemon thread (usable from sync and async tests alike).
    """

    def __init__(
        self,
        cassette: Cassette | str | os.PathLike[str],
        *,
        speed: float = 0.0,
        allow_repeats: bool = False,
        matcher: Matcher | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        on_event: EventHook | None = None,
    ) -> None:
        if isinstance(cassette, Cassette):
            self.path: str | None = None
            name = "the cassette"
        else:
            self.path = os.fspath(cassette)
            cassette, name = yamlio.load(self.path), self.path
        self.replayer = Replayer(
            cassette,
            matcher=matcher,
            speed=speed,
            allow_repeats=allow_repeats,
            name=name,
            on_event=on_event,
        )
        self._server = AppServer(
            make_handler(self.replayer),
            host=host,
            port=port,
            label="the replay server",
            handler_args=HANDLER_ARGS,
        )

    # -- what tests look at ----------------------------------------------------------------

    @property
    def cassette(self) -> Cassette:
        """The cassette being replayed."""
        return self.replayer.cassette

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``, without a trailing slash (the server must be running)."""
        return self._server.url

    @property
    def port(self) -> int:
        """The port actually bound."""
        return self._server.port

    @property
    def played(self) -> tuple[int, ...]:
        """Interaction numbers in the order they were played."""
        return self.replayer.index.played

    @property
    def unplayed(self) -> list[int]:
        """Numbers of the interactions not played yet, in recording order."""
        return self.replayer.index.unplayed()

    @property
    def unplayed_interactions(self) -> list[Interaction]:
        """The interactions not played yet."""
        interactions = self.cassette.interactions
        return [interactions[number] for number in self.unplayed]

    def describe_unplayed(self) -> list[str]:
        """``#2 POST http://host/api/chat`` for every unplayed interaction."""
        return [
            f"#{number} {interaction.request.method} {interaction.request.uri}"
            for number, interaction in zip(self.unplayed, self.unplayed_interactions, strict=True)
        ]

    @property
    def misses(self) -> list[NoMatchingInteractionError]:
        """Every request that matched nothing, oldest first."""
        return self.replayer.misses

    def take_misses(self) -> list[NoMatchingInteractionError]:
        """The misses so far, forgotten here: for tests that provoke misses on purpose."""
        return self.replayer.take_misses()

    @property
    def repeats(self) -> int:
        """How many of :attr:`misses` asked again for interactions all played already (without
        ``allow_repeats``): they matched, unlike the others."""
        return self.replayer.repeats

    @property
    def cut_plays(self) -> int:
        """How many of the :attr:`played` replies were cut short (client gone, server stopped)."""
        return self.replayer.cut_plays

    def raise_misses(self) -> None:
        """Raise the first miss as :class:`NoMatchingInteractionError` (later ones noted)."""
        misses = self.take_misses()
        if misses:
            first = misses[0]
            for later in misses[1:]:
                first.add_note(f"also missed: {str(later).splitlines()[0]}")
            raise first

    def lookup(self, request: RecordedRequest) -> Interaction:
        """The interaction the server would play for ``request`` (and mark it played).

        Raises :class:`NoMatchingInteractionError` listing the closest recordings.
        """
        number, _ = self.replayer.lookup(request)
        return self.cassette.interactions[number]

    def reset(self) -> None:
        """Every interaction can be played again; misses and cut replies are forgotten."""
        self.replayer.reset()

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind and serve from the running event loop."""
        await self._server.start()

    async def stop(self) -> None:
        """Stop serving; replies still running get one second, then are cut."""
        await self._server.stop()


def too_deep_to_match(request: RecordedRequest, name: str) -> NoMatchingInteractionError:
    """The miss of a request whose key could not be computed: a matcher's body normaliser ran
    out of stack on JSON nested too deeply (one that treats such a body as bytes never does)."""
    return NoMatchingInteractionError(
        f"{request.method} {request.uri}: its body is nested too deeply to compare with "
        f"the recordings of {name}"
    )


def _common_origin(interactions: Iterable[Interaction]) -> str | None:
    origins = set()
    for interaction in interactions:
        parts = urlsplit(interaction.request.uri)
        origins.add(f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else "")
        if len(origins) > 1:
            return None
    origin = origins.pop() if origins else ""
    return origin or None
