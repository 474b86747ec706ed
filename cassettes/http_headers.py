"""Header handling for the recording proxy: what is forwarded, what is recorded.

A proxy must not pass on *hop-by-hop* headers (RFC 9110 §7.6.1): they describe one connection,
not the message. The proxy also drops ``Host`` (the upstream gets its own) and asks the upstream
for an uncompressed body (``Accept-Encoding: identity``), so the bytes it tees are the text the
client reads, scrubbable and cut where the upstream flushed text rather than compressed blocks.
The cassette keeps the client's own ``Accept-Encoding``: it records what the client sent.

Recorded response headers keep ``Content-Length`` and ``Transfer-Encoding`` although the second
is hop-by-hop: vcrpy records both, and they tell a replay how the body was framed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from cassettes.model import Headers

RawHeaders = Sequence[tuple[bytes, bytes]]
Pairs = list[tuple[str, str]]

#: RFC 9110 §7.6.1 plus the pre-standard names proxies still meet in the wild.
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "proxy-authenticate", "te", "trailer"}
    | {"transfer-encoding", "upgrade"}
)
# Not hop-by-hop, but the proxy must not copy them onto the other connection: the HTTP library
# computes them for the bytes it actually sends.
_RECOMPUTED = frozenset({"host", "content-length", "expect"})
_KEPT_IN_RECORDED_RESPONSE = frozenset({"transfer-encoding"})


def decode_pairs(raw: RawHeaders) -> Pairs:
    """aiohttp's ``raw_headers`` as text pairs, names in the case they were sent."""
    return [(name.decode("latin-1"), value.decode("latin-1")) for name, value in raw]


def _connection_tokens(pairs: Iterable[tuple[str, str]]) -> frozenset[str]:
    """Header names listed in ``Connection``: hop-by-hop for this message too."""
    tokens: set[str] = set()
    for name, value in pairs:
        if name.lower() == "connection":
            tokens.update(token.strip().lower() for token in value.split(",") if token.strip())
    return frozenset(tokens)


def end_to_end(pairs: Pairs, *, keep: frozenset[str] = frozenset()) -> Pairs:
    """``pairs`` without hop-by-hop headers (``keep`` names some to keep anyway)."""
    dropped = (HOP_BY_HOP | _connection_tokens(pairs)) - keep
    return [(name, value) for name, value in pairs if name.lower() not in dropped]


def forwarded_request_headers(pairs: Pairs) -> Pairs:
    """What the proxy sends upstream: end-to-end headers, no Host/Content-Length/Expect, and
    ``Accept-Encoding: identity`` in place of whatever the client accepted."""
    kept = [
        (name, value)
        for name, value in end_to_end(pairs)
        if name.lower() not in _RECOMPUTED and name.lower() != "accept-encoding"
    ]
    kept.append(("Accept-Encoding", "identity"))
    return kept


def relayed_response_headers(pairs: Pairs) -> Pairs:
    """What the proxy sends back to the client; the framing headers are set by the proxy."""
    return [(name, value) for name, value in end_to_end(pairs) if name.lower() not in _RECOMPUTED]


def recorded_request_headers(pairs: Pairs) -> Headers:
    """The client's request headers as the cassette keeps them (end-to-end, without Host)."""
    return to_headers((n, v) for n, v in end_to_end(pairs) if n.lower() != "host")


def recorded_response_headers(pairs: Pairs) -> Headers:
    """The upstream's response headers as the cassette keeps them."""
    return to_headers(end_to_end(pairs, keep=_KEPT_IN_RECORDED_RESPONSE))


def to_headers(pairs: Iterable[tuple[str, str]]) -> Headers:
    """vcrpy's shape: name → list of values; repeated names (any case) share the first's case."""
    headers: Headers = {}
    spelled: dict[str, str] = {}
    for name, value in pairs:
        key = spelled.setdefault(name.lower(), name)
        headers.setdefault(key, []).append(value)
    return headers


def replay_headers(headers: Headers) -> Pairs:
    """Recorded response headers to send when the proxy replays: framing left to the server."""
    pairs = [(name, value) for name, values in headers.items() for value in values]
    return relayed_response_headers(pairs)
