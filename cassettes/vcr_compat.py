"""Tapedeck for vcrpy users: the same matchers and scrubbing, and a check that vcrpy replays a file.

vcrpy's extension points are duck-typed: a matcher is a function of (this request, recorded
request) that returns None/True or raises ``AssertionError`` with the reason; vcrpy shows the
function's ``__name__`` and that reason when nothing matches. ``before_record_request`` gets a copy
of its ``Request`` and returns it (or None to skip); ``before_record_response`` gets the response
dict (``status``, ``headers``, ``body: {string}``) and returns it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from cassettes import yamlio
from cassettes.matchers import MATCHERS, Matcher
from cassettes.model import Headers, RecordedRequest, RecordedResponse
from cassettes.scrub import DEFAULT_POLICY, ScrubPolicy, scrub_request, scrub_response

PREFIX = "tapedeck_"
VcrMatcher = Callable[[Any, Any], None]


def from_vcr_request(request: Any) -> RecordedRequest:
    """A vcrpy ``Request`` as a :class:`RecordedRequest` (headers as lists, body as bytes)."""
    from aiohttp.payload import Payload
    from vcr.util import read_body

    raw = getattr(request, "body", None)
    if isinstance(raw, Payload):
        # vcrpy's aiohttp stub keeps the payload object the client passed (our async adapters
        # send a BytesPayload); latin-1 maps every byte to one character and back, exactly.
        body: bytes | str | None = raw.decode("latin-1").encode("latin-1")
    else:
        body = read_body(request)
    if isinstance(body, str):
        body = body.encode("utf-8")
    headers: Headers = {
        str(k): [v if isinstance(v, str) else str(v)] for k, v in request.headers.items()
    }
    return RecordedRequest(request.method, request.uri, headers, body)


def vcr_matcher(name: str, matcher: Matcher) -> VcrMatcher:
    """A vcrpy matcher comparing one Tapedeck part (``name``, or "all" for the whole key)."""
    names = matcher.match_on if name == "all" else (name,)
    checked = Matcher(names, matcher.normalisers, matcher.scrub)

    def match(this: Any, recorded: Any) -> None:
        old, new = checked.key(from_vcr_request(recorded)), checked.key(from_vcr_request(this))
        differences = checked.differences(old, new)
        if differences:
            raise AssertionError("; ".join(d.describe() for d in differences))

    match.__name__ = PREFIX + name if name != "all" else PREFIX.rstrip("_")
    return match


def register(vcr: Any, *, matcher: Matcher | None = None) -> tuple[str, ...]:
    """Register ``tapedeck_method``, ``tapedeck_path``, ``tapedeck_query``, ``tapedeck_body`` and
    ``tapedeck`` (all of them at once) on a ``vcr.VCR``; returns the names.

    >>> my_vcr = vcr.VCR(); register(my_vcr)   # doctest: +SKIP
    >>> my_vcr.use_cassette(path, match_on=["tapedeck"])   # doctest: +SKIP
    """
    matcher = matcher or Matcher()
    names = []
    for name in (*MATCHERS, "all"):
        function = vcr_matcher(name, matcher)
        vcr.register_matcher(function.__name__, function)
        names.append(function.__name__)
    return tuple(names)


def scrub_hooks(
    policy: ScrubPolicy = DEFAULT_POLICY,
) -> tuple[Callable[[Any], Any], Callable[[dict[str, Any]], dict[str, Any]]]:
    """``(before_record_request, before_record_response)`` that scrub as Tapedeck records."""

    def before_record_request(request: Any) -> Any:
        scrubbed = scrub_request(from_vcr_request(request), policy)
        request.uri = scrubbed.uri
        request.headers = {name: values[0] for name, values in scrubbed.headers.items()}
        if request.body is not None:
            request.body = scrubbed.body
        return request

    def before_record_response(response: dict[str, Any]) -> dict[str, Any]:
        body = response.get("body", {}).get("string") or b""
        if isinstance(body, str):
            body = body.encode("utf-8")
        status = response.get("status", {})
        recorded = RecordedResponse.whole(
            status.get("code", 0), status.get("message", ""), response.get("headers", {}), body
        )
        scrubbed = scrub_response(recorded, policy)
        response["headers"] = scrubbed.headers
        response.setdefault("body", {})["string"] = scrubbed.body
        return response

    return before_record_request, before_record_response


def check_vcrpy_replay(path: str | os.PathLike[str]) -> list[str]:
    """Replay every interaction of a cassette through plain vcrpy and ``requests``.

    vcrpy intercepts every request (``record_mode="none"``), so nothing is sent anywhere. Returns
    one line per problem: a request vcrpy would not answer, or a status, header or body that
    differs from what Tapedeck loaded. An empty list means vcrpy replays the file faithfully.
    """
    import requests
    import vcr

    cassette = yamlio.load(path)
    problems: list[str] = []
    with vcr.use_cassette(os.fspath(path), record_mode="none"), requests.Session() as session:
        for number, interaction in enumerate(cassette.interactions):
            request, expected = interaction.request, interaction.response
            where = f"interaction {number} ({request.method} {request.uri})"
            try:
                reply = session.request(
                    request.method, request.uri, data=request.body, stream=True, timeout=5
                )
                body = reply.raw.read(decode_content=False)
            except Exception as exc:  # report every failure, whatever library raised it
                problems.append(f"{where}: vcrpy could not replay it: {type(exc).__name__}: {exc}")
                continue
            if reply.status_code != expected.status:
                problems.append(f"{where}: status {reply.status_code}, recorded {expected.status}")
            if body != expected.body:
                problems.append(
                    f"{where}: body of {len(body)} bytes, recorded {len(expected.body)}"
                )
            missing = [
                name
                for name in expected.headers
                if name.lower() != "transfer-encoding" and name not in reply.headers
            ]
            if missing:
                problems.append(f"{where}: headers missing: {', '.join(missing)}")
    return problems
