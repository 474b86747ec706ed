"""Request matchers: which parts of a request decide which recording answers it.

Each matcher turns a request into one hashable *part*: the method, the path, the query as sorted
pairs, the body normalised. A request's *key* is the tuple of its parts, so finding a recording is
a dict lookup (:mod:`cassettes.index`), and explaining a miss is comparing parts one by one.

Bodies go through a *normaliser*, chosen per request: by host and path, by path, by host, else
the default, which parses JSON and sorts its keys (so key order and whitespace never matter) and
falls back to the raw bytes. A provider whose bodies differ on every call by design registers its
own; GetGpt's, for instance, decrypts the ``signature`` and drops the random ``uuid``::

    normalisers.register(decrypt_getgpt_plaintext, path="/api/chat/stream")

Keys are computed on the *scrubbed* request (same policy as recording), so a live request that
carries a real token matches the recording whose token was replaced.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from urllib.parse import SplitResult, parse_qsl, urlsplit

from cassettes.model import RecordedRequest
from cassettes.scrub import DEFAULT_POLICY, ScrubPolicy, scrub_request
from providers.errors import excerpt

Normaliser = Callable[[RecordedRequest], Hashable]
RequestKey = tuple[Hashable, ...]
MATCHERS = ("method", "path", "query", "body")
DEFAULT_MATCH_ON = MATCHERS
# How much a difference in each part pushes a recording away in closest(): a request to another
# path is further away than one with another body.
_WEIGHTS = {"method": 8, "path": 4, "query": 2, "body": 1}


def method_part(request: RecordedRequest) -> str:
    """The method, upper case."""
    return request.method.upper()


def path_part(request: RecordedRequest, split: SplitResult | None = None) -> str:
    """The path exactly as sent, ``/`` when empty (``split``: the URI already split)."""
    return (split or urlsplit(request.uri)).path or "/"


def query_part(
    request: RecordedRequest, split: SplitResult | None = None
) -> tuple[tuple[str, str], ...]:
    """The query as decoded (name, value) pairs in sorted order, blank values kept."""
    query = (split or urlsplit(request.uri)).query
    return tuple(sorted(parse_qsl(query, keep_blank_values=True))) if query else ()


def json_body(request: RecordedRequest) -> Hashable:
    """``("json", canonical text)`` when the body is JSON, else ``("bytes", body)``.

    The canonical text has sorted keys and no optional whitespace; numbers keep their written
    type (1 and 1.0 differ, as do true and 1, unlike a comparison of parsed values).
    """
    body = request.body or b""
    try:
        value = json.loads(body)
        canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except (ValueError, UnicodeDecodeError, RecursionError):
        # Nested beyond the recursion limit (either way) is no JSON we can canonicalise: such a
        # body is compared byte for byte, like any other body that is not JSON.
        return ("bytes", body)
    return ("json", canonical)


class BodyNormalisers:
    """The body normaliser for each request: by (host, path), then path, then host, else default.

    Hosts are compared without port and case-insensitively, paths exactly.
    """

    def __init__(self, default: Normaliser = json_body) -> None:
        self.default = default
        self._by_place: dict[tuple[str | None, str | None], Normaliser] = {}

    def register(
        self, normaliser: Normaliser, *, path: str | None = None, host: str | None = None
    ) -> None:
        """Use ``normaliser`` for requests to ``path`` and/or ``host`` (at least one given)."""
        if path is None and host is None:
            raise ValueError("register a body normaliser for a path, a host or both")
        self._by_place[(host.lower() if host else None, path)] = normaliser

    def for_request(self, request: RecordedRequest, split: SplitResult | None = None) -> Normaliser:
        """The normaliser that applies to ``request`` (``split``: its URI already split)."""
        if not self._by_place:
            return self.default
        parts = split or urlsplit(request.uri)
        host, path = (parts.hostname or "").lower(), parts.path or "/"
        for place in ((host, path), (None, path), (host, None)):
            found = self._by_place.get(place)
            if found is not None:
                return found
        return self.default

    def __call__(self, request: RecordedRequest) -> Hashable:
        return self.for_request(request)(request)


@dataclass(frozen=True)
class Difference:
    """One matcher that gave a recorded request and this request different parts."""

    matcher: str
    recorded: Hashable
    requested: Hashable

    def describe(self) -> str:
        """``path: recorded '/a', this request '/b'``."""
        fields = _fields_that_differ(self.recorded, self.requested)
        name = f"{self.matcher} (fields {', '.join(fields)})" if fields else self.matcher
        return f"{name}: recorded {_show(self.recorded)}, this request {_show(self.requested)}"


@dataclass(frozen=True)
class Candidate:
    """A recorded request near a request that matched nothing, and how it differs."""

    index: int
    request: RecordedRequest
    differences: tuple[Difference, ...]

    @property
    def differed(self) -> tuple[str, ...]:
        """Names of the matchers that differed."""
        return tuple(d.matcher for d in self.differences)

    def describe(self) -> str:
        """One line per difference under a header naming the interaction."""
        head = f"#{self.index} {self.request.method} {self.request.uri}"
        if not self.differences:
            return f"{head}: same key"
        return "\n".join([head, *(f"    {d.describe()}" for d in self.differences)])


@dataclass(frozen=True)
class Matcher:
    """The matchers in use (names from :data:`MATCHERS`), body normalisers and scrub policy."""

    match_on: tuple[str, ...] = DEFAULT_MATCH_ON
    normalisers: BodyNormalisers = field(default_factory=BodyNormalisers)
    scrub: ScrubPolicy | None = DEFAULT_POLICY

    def __post_init__(self) -> None:
        unknown = [name for name in self.match_on if name not in MATCHERS]
        if unknown or not self.match_on:
            raise ValueError(f"unknown matchers {unknown}; choose from {', '.join(MATCHERS)}")

    def key(self, request: RecordedRequest) -> RequestKey:
        """The parts of ``request`` for every matcher in use, in ``match_on`` order."""
        if self.scrub is not None:
            request = scrub_request(request, self.scrub)
        split = urlsplit(request.uri)  # once for every part that needs it
        return tuple([self._part(name, request, split) for name in self.match_on])

    def part(self, name: str, request: RecordedRequest) -> Hashable:
        """One matcher's part of ``request`` (scrubbed first, like :meth:`key`)."""
        if self.scrub is not None:
            request = scrub_request(request, self.scrub)
        return self._part(name, request, urlsplit(request.uri))

    def _part(self, name: str, request: RecordedRequest, split: SplitResult) -> Hashable:
        if name == "method":
            return method_part(request)
        if name == "path":
            return path_part(request, split)
        if name == "query":
            return query_part(request, split)
        return self.normalisers.for_request(request, split)(request)

    def differences(self, recorded: RequestKey, requested: RequestKey) -> tuple[Difference, ...]:
        """The matchers whose parts differ between two keys."""
        return tuple(
            Difference(name, old, new)
            for name, old, new in zip(self.match_on, recorded, requested, strict=True)
            if old != new
        )

    def closest(
        self,
        request: RecordedRequest,
        recorded: Sequence[RecordedRequest],
        n: int = 3,
        *,
        keys: Sequence[RequestKey] | None = None,
    ) -> list[Candidate]:
        """The ``n`` recorded requests nearest to ``request``, nearest first, each with the
        matchers that differed. ``keys`` are the recorded keys if already computed."""
        wanted = self.key(request)
        known = keys if keys is not None else [self.key(r) for r in recorded]
        scored = []
        for index, key in enumerate(known):
            differences = self.differences(key, wanted)
            distance = sum(_WEIGHTS.get(d.matcher, 1) for d in differences)
            scored.append((distance, index, differences))
        scored.sort(key=lambda item: item[:2])
        return [Candidate(i, recorded[i], diffs) for _, i, diffs in scored[:n]]


def _show(part: Hashable) -> str:
    if _is_body(part):
        body = part[1]  # type: ignore[index]
        return excerpt(body, 120) if body else "(empty body)"
    if isinstance(part, tuple) and all(isinstance(p, tuple) and len(p) == 2 for p in part):
        return "&".join(f"{k}={v}" for k, v in part) or "(no query)"
    return excerpt(repr(part), 120)


def _is_body(part: Hashable) -> bool:
    return (
        isinstance(part, tuple)
        and len(part) == 2
        and part[0] in ("json", "bytes")
        and isinstance(part[1], str | bytes)
    )


def _fields_that_differ(recorded: Hashable, requested: Hashable) -> list[str]:
    """Top-level JSON fields with different values, when both parts are JSON objects."""
    if not (_is_body(recorded) and _is_body(requested)):
        return []
    if recorded[0] != "json" or requested[0] != "json":  # type: ignore[index]
        return []
    old, new = json.loads(recorded[1]), json.loads(requested[1])  # type: ignore[index]
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return []
    return sorted(k for k in old.keys() | new.keys() if old.get(k, ...) != new.get(k, ...))
