"""Finding the recording that answers a request, in constant time.

vcrpy compares every incoming request with every recorded one, so each lookup costs time
proportional to the cassette. Here every recorded request is reduced once to its key
(:meth:`Matcher.key`), and the index maps each key to a queue of interaction numbers in recording
order. A lookup computes one key and pops one queue: the cost depends on the request, never on
the size of the cassette. Only a miss looks at all recordings, to say which ones come closest.

Each interaction is played once, in order: the same request recorded twice gets its two answers
in turn. With ``allow_repeats``, once a key's answers are used up the last one is played again.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence

from cassettes.matchers import Candidate, Matcher, RequestKey
from cassettes.model import Cassette, Interaction, RecordedRequest
from providers.errors import NoMatchingInteractionError


class InteractionIndex:
    """Recorded interactions by request key. Thread-safe; each lookup is O(1)."""

    def __init__(
        self,
        interactions: Sequence[Interaction],
        *,
        matcher: Matcher | None = None,
        allow_repeats: bool = False,
        name: str = "the cassette",
    ) -> None:
        self.matcher = matcher or Matcher()
        self.allow_repeats = allow_repeats
        self.name = name
        self._interactions = tuple(interactions)
        self._keys = [self.matcher.key(i.request) for i in self._interactions]
        self._by_key: dict[RequestKey, list[int]] = {}
        for number, key in enumerate(self._keys):
            self._by_key.setdefault(key, []).append(number)
        self._lock = threading.Lock()
        self._queues: dict[RequestKey, deque[int]] = {}
        self._last: dict[RequestKey, int] = {}
        self._played: list[int] = []
        self.reset()

    @classmethod
    def from_cassette(
        cls,
        cassette: Cassette,
        *,
        matcher: Matcher | None = None,
        allow_repeats: bool = False,
        name: str = "the cassette",
    ) -> InteractionIndex:
        """An index over every interaction of ``cassette``."""
        return cls(cassette.interactions, matcher=matcher, allow_repeats=allow_repeats, name=name)

    def __len__(self) -> int:
        return len(self._interactions)

    def reset(self) -> None:
        """Forget what was played: every interaction can be played once more."""
        with self._lock:
            self._queues = {key: deque(numbers) for key, numbers in self._by_key.items()}
            self._last.clear()
            self._played.clear()

    def lookup(self, request: RecordedRequest) -> tuple[int, Interaction]:
        """The next unplayed interaction recorded for ``request``, and its number.

        Raises :class:`NoMatchingInteractionError` naming the closest recordings, or the
        interactions already played when the key matched but its answers are used up.
        """
        key = self.matcher.key(request)
        with self._lock:
            queue = self._queues.get(key)
            if queue:
                number = queue.popleft()
                self._last[key] = number
            elif self.allow_repeats and key in self._last:
                number = self._last[key]
            else:
                number = -1
            if number >= 0:
                self._played.append(number)
                return number, self._interactions[number]
        raise NoMatchingInteractionError(self._explain_miss(request, key))

    def match(self, request: RecordedRequest) -> Interaction:
        """:meth:`lookup` without the number."""
        return self.lookup(request)[1]

    @property
    def played(self) -> tuple[int, ...]:
        """Interaction numbers in the order they were played."""
        with self._lock:
            return tuple(self._played)

    def unplayed(self) -> list[int]:
        """Numbers of the interactions not played yet, in recording order."""
        with self._lock:
            left = [number for queue in self._queues.values() for number in queue]
        return sorted(left)

    def closest(self, request: RecordedRequest, n: int = 3) -> list[Candidate]:
        """The ``n`` recorded requests nearest to ``request`` and which matchers differed."""
        recorded = [i.request for i in self._interactions]
        return self.matcher.closest(request, recorded, n, keys=self._keys)

    def _explain_miss(self, request: RecordedRequest, key: RequestKey) -> str:
        what = f"{request.method} {request.uri}"
        used = self._by_key.get(key)
        if used:
            numbers = ", ".join(f"#{n}" for n in used)
            return (
                f"{what} matches interaction(s) {numbers} of {self.name}, but each was already "
                f"played; record the repeat or allow repeats"
            )
        if not self._interactions:
            return f"{what}: {self.name} has no interactions"
        lines = [f"no interaction in {self.name} matches {what}; closest recorded requests:"]
        lines += [candidate.describe() for candidate in self.closest(request)]
        return "\n".join(lines)
