"""Synthetic cassettes for the replay and load benchmarks, and the requests that replay them.

A cassette of ``n`` interactions looks like what a test suite records against CodeLinkAva: every
request is the adapter's own POST (the codec's headers and JSON body) with a distinct prompt, and
every answer is an SSE stream of several events, one recorded chunk per event, arriving a few
milliseconds apart. It is written with :func:`cassettes.yamlio.save`, so vcrpy and Tapedeck read
the very same file. Generation is deterministic: the same ``n`` always gives the same bytes.

:class:`ClientCall` is one request as the benchmark's client sends it (with ``requests``), with
the body the recording says must come back; both sides of a comparison get the same list.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlsplit

from cassettes import yamlio
from cassettes.model import (
    Cassette,
    Headers,
    Interaction,
    Provenance,
    RecordedRequest,
    RecordedResponse,
    chunks_from_sizes,
)
from providers.wire.codelinkava import API, CODEC
from providers.wire.common import Framing

#: Words of the streamed answers: mixed 1- to 4-byte UTF-8, so bodies are not all ASCII.
_WORDS = ("replay", "wörter", "données", "数据", "流式", "🙂", "résumé", "cassette", "tapedeck")
_TOPICS = ("weather", "a haiku", "sorting", "Paris", "tea", "HTTP/1.1", "vcrpy", "YAML")
#: Events per answer cycle through these counts (plus the final ``[DONE]`` event).
_EVENT_COUNTS = (6, 9, 12, 15)
_RECORDED_AT = "2026-01-01T00:00:00Z"
_DATE = "Thu, 01 Jan 2026 00:00:00 GMT"


@dataclass(frozen=True, slots=True)
class ClientCall:
    """One request for the client: path, headers, body, and the recorded answer's status/body."""

    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    status: int
    expected: bytes


def prompt(number: int) -> str:
    """The distinct user message of interaction ``number``."""
    topic = _TOPICS[number % len(_TOPICS)]
    return f"Question {number}: tell me something about {topic}, please."


def _answer(number: int) -> list[str]:
    count = _EVENT_COUNTS[number % len(_EVENT_COUNTS)]
    return [f"{_WORDS[(number + i) % len(_WORDS)]} " for i in range(count)]


def interaction(number: int) -> Interaction:
    """Interaction ``number``: the adapter's POST for :func:`prompt`, an SSE answer in chunks."""
    wire = CODEC.build_request("", [{"role": "user", "content": prompt(number)}], {})
    headers: Headers = {name: [value] for name, value in wire.headers}
    headers["Content-Length"] = [str(len(wire.body))]
    headers["Content-Type"] = [wire.body_content_type or "application/json"]
    request = RecordedRequest(wire.method, API + wire.path, headers, wire.body)
    frames = CODEC.encode_reply(_answer(number), Framing())
    body = b"".join(frames)
    # One chunk per event, 4 ms apart after a 40 ms first byte: a plausible live schedule.
    offsets = [40.0 + 4.0 * index for index in range(len(frames))]
    response = RecordedResponse(
        200,
        "OK",
        {
            "Content-Type": ["text/event-stream"],
            "Transfer-Encoding": ["chunked"],
            "Date": [_DATE],
            "Server": ["Python/3.11 aiohttp/3.14.5"],
        },
        body,
        chunks_from_sizes([len(frame) for frame in frames], offsets),
    )
    return Interaction(request, response)


def build(count: int) -> Cassette:
    """A cassette of ``count`` interactions with distinct requests."""
    provenance = Provenance(API, _RECORDED_AT, "bench", "fake")
    return Cassette(tuple(interaction(number) for number in range(count)), provenance)


def write(count: int, directory: str | os.PathLike[str]) -> str:
    """Write the cassette of ``count`` interactions into ``directory``; returns its path."""
    path = os.path.join(os.fspath(directory), f"codelinkava-{count}.yaml")
    yamlio.save(build(count), path)
    return path


def calls(cassette: Cassette) -> tuple[ClientCall, ...]:
    """Every interaction of ``cassette`` as the client will send it, in recording order.

    Headers the HTTP library sets itself (``Content-Length``) are left to it, as an adapter
    does; the body is the recorded one, byte for byte.
    """
    made = []
    for recorded in cassette.interactions:
        request, response = recorded.request, recorded.response
        headers = tuple(
            (name, values[0])
            for name, values in request.headers.items()
            if name.lower() != "content-length"
        )
        made.append(
            ClientCall(
                request.method,
                urlsplit(request.uri).path or "/",
                headers,
                request.body or b"",
                response.status,
                response.body,
            )
        )
    return tuple(made)


def spread_sample(total: int, wanted: int, phase: float = 0.5) -> tuple[int, ...]:
    """``wanted`` interaction numbers spread evenly over ``0..total-1``, in order (all if fewer).

    ``phase`` (0 to 1) shifts the picks within their strides, so repeated runs can each take
    other interactions. Evenly spread, a sample costs vcrpy's scan what the whole cassette costs
    on average: the scan for interaction ``k`` stops at ``k``, so the mean position is the same.
    """
    if wanted >= total:
        return tuple(range(total))
    step = total / wanted
    return tuple(min(int(step * (index + phase)), total - 1) for index in range(wanted))
