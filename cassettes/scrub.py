"""Scrubbing: secrets are replaced before an interaction reaches a cassette.

What counts as a secret:

- a header, query parameter or JSON field whose *name* looks like one: ``Authorization``,
  ``Cookie``, ``Set-Cookie``, ``Proxy-Authorization`` always, and any name containing a word like
  key, token, secret, password, session, auth, cookie or csrf (``X-Api-Key``, ``access_token``,
  ``PHPSESSID``), unless its last word says it is a count or a kind (``max_tokens`` and
  ``tokenLimit`` are not secrets); plus names the policy adds;
- anywhere, a *value* that looks like one: ``Bearer <token>``, ``sk-...`` API keys, JWTs;
- anywhere else in the same request or response, a value already found by the two rules above
  (a token echoed in an error message), when it is at least 6 characters long.

Only non-empty strings are replaced (``"key": ""`` and ``"max_tokens": 4000`` stay as they are,
so bodies still match). JSON is edited in place where possible, so formatting and key order
survive. A response body is streamed data: every edit also moves the chunk boundaries behind it
(:func:`cassettes.edits.apply_edits`), so the chunk plan stays a valid cut of the new body.

A request is scrubbed with what the request alone reveals, so scrubbing the same live request
again (as the replay index does before computing its key) gives exactly the stored request.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote, unquote_plus, urlsplit

from cassettes.edits import Edit, apply_edits, without_overlaps
from cassettes.model import (
    Cassette,
    Chunk,
    Headers,
    Interaction,
    RecordedRequest,
    RecordedResponse,
)

SCRUBBED = "<scrubbed>"
#: Headers that are secrets whatever the heuristics say.
ALWAYS_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
_SECRET_WORDS = frozenset(
    {"key", "token", "secret", "password", "passwd", "pwd", "session", "auth", "authorization"}
    | {"credential", "credentials", "cookie", "jwt", "bearer", "csrf", "xsrf", "sid", "otp"}
)
# Glued words: apikey, accesstoken, phpsessid, clientsecret ...
_SECRET_SUFFIXES = ("apikey", "token", "secret", "sessid", "sessionid", "password", "passwd")
# A last word that makes the name describe a secret rather than hold one.
_QUALIFIERS = frozenset(
    {"limit", "limits", "count", "length", "len", "size", "max", "min", "type", "types", "name"}
    | {"expires", "expiry", "ttl", "usage", "used", "format", "url", "uri", "endpoint"}
)
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
#: Values that are secrets wherever they appear; the group "secret" is the part replaced.
SECRET_VALUE_PATTERNS: tuple[tuple[str, re.Pattern[bytes]], ...] = (
    ("bearer-token", re.compile(rb"(?i:bearer)\s+(?P<secret>[A-Za-z0-9._~+/=-]{8,})")),
    ("sk-key", re.compile(rb"(?<![A-Za-z0-9])(?P<secret>sk-[A-Za-z0-9_-]{16,})")),
    ("jwt", re.compile(rb"(?P<secret>eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+)")),
)
_MIN_ECHO = 6  # shorter values are replaced where found, but not hunted elsewhere


@dataclass(frozen=True)
class ScrubPolicy:
    """What to scrub. ``extra_names`` adds names (any case); ``keep_names`` exempts names."""

    extra_names: frozenset[str] = frozenset()
    keep_names: frozenset[str] = frozenset()
    replacement: str = SCRUBBED
    scrub_values: bool = True

    @classmethod
    def with_names(cls, *names: str, keep: Sequence[str] = ()) -> ScrubPolicy:
        """A policy adding ``names`` and exempting ``keep``."""
        return cls(frozenset(n.lower() for n in names), frozenset(k.lower() for k in keep))

    def is_secret_name(self, name: str) -> bool:
        """Whether a header, query parameter or JSON field of this name holds a secret."""
        lowered = name.lower()
        if lowered in self.keep_names:
            return False
        if lowered in ALWAYS_SECRET_HEADERS or lowered in self.extra_names:
            return True
        words = [word.lower() for word in _WORDS.findall(name)]
        if not words or words[-1] in _QUALIFIERS:
            return False
        return any(w in _SECRET_WORDS or w.endswith(_SECRET_SUFFIXES) for w in words)


DEFAULT_POLICY = ScrubPolicy()


def scrub_cassette(cassette: Cassette, policy: ScrubPolicy = DEFAULT_POLICY) -> Cassette:
    """Every interaction scrubbed."""
    scrubbed = tuple(scrub_interaction(i, policy) for i in cassette.interactions)
    return replace(cassette, interactions=scrubbed)


def scrub_interaction(
    interaction: Interaction, policy: ScrubPolicy = DEFAULT_POLICY
) -> Interaction:
    """Request and response scrubbed; secrets of the request are also hunted in the response."""
    scrubber = _Scrubber(policy)
    request = scrubber.request(interaction.request)
    response = scrubber.response(interaction.response)
    return replace(interaction, request=request, response=response)


def scrub_request(
    request: RecordedRequest, policy: ScrubPolicy = DEFAULT_POLICY
) -> RecordedRequest:
    """Headers, query and body scrubbed; the same object if nothing needed scrubbing."""
    return _Scrubber(policy).request(request)


def scrub_response(
    response: RecordedResponse, policy: ScrubPolicy = DEFAULT_POLICY
) -> RecordedResponse:
    """Headers and body scrubbed, chunk boundaries moved with every edit."""
    return _Scrubber(policy).response(response)


class _Scrubber:
    """Scrubs one interaction, remembering each secret it finds to hunt for its echoes."""

    def __init__(self, policy: ScrubPolicy) -> None:
        self.policy = policy
        self.replacement = policy.replacement.encode()
        self.found: set[str] = set()

    def request(self, request: RecordedRequest) -> RecordedRequest:
        headers = self.headers(request.headers)
        uri = self.uri(request.uri)
        body = request.body
        if body:
            if "form-urlencoded" in (request.header("content-type") or "").lower():
                body = self.pairs(body.decode("latin-1")).encode("latin-1")
            body = self.body(body, ())[0]
        headers = self.echoes_in_headers(headers)
        uri = self.echoes_in_text(uri, quoted=True)
        if body is not None and body != request.body:
            headers = _fix_length(headers, len(body))
        if headers == request.headers and uri == request.uri and body == request.body:
            return request
        return RecordedRequest(request.method, uri, headers, body)

    def response(self, response: RecordedResponse) -> RecordedResponse:
        headers = self.headers(response.headers)
        body, chunks = self.body(response.body, response.chunks)
        headers = self.echoes_in_headers(headers)
        reason = self.echoes_in_text(self.text(response.reason))
        if body != response.body:
            headers = _fix_length(headers, len(body))
        if headers == response.headers and body == response.body and reason == response.reason:
            return response
        return replace(response, reason=reason, headers=headers, body=body, chunks=chunks)

    def headers(self, headers: Headers) -> Headers:
        result: Headers = {}
        for name, values in headers.items():
            if self.policy.is_secret_name(name):
                self.remember_header(values)
                result[name] = [self.policy.replacement if value else value for value in values]
            else:
                result[name] = [self.text(value) for value in values]
        return result

    def remember_header(self, values: Iterable[str]) -> None:
        for value in values:
            self.found.add(value)
            # "Bearer xyz" and "a=1; session=xyz": the credential itself may be echoed alone.
            self.found.add(value.partition(" ")[2])
            for cookie in value.split(";"):
                self.found.add(cookie.partition("=")[2].strip())

    def uri(self, uri: str) -> str:
        head, question, rest = uri.partition("?")
        query, hash_, fragment = rest.partition("#")
        password = urlsplit(head).password
        if password:
            self.found.add(password)
            head = head.replace(f":{password}@", f":{quote(self.policy.replacement)}@", 1)
        return self.text(head) + question + self.pairs(query) + hash_ + self.text(fragment)

    def pairs(self, query: str) -> str:
        parts = query.split("&")
        for index, part in enumerate(parts):
            name, equals, value = part.partition("=")
            plain = unquote_plus(value)
            if not plain:
                continue
            if self.policy.is_secret_name(unquote_plus(name)):
                self.found.add(plain)
                parts[index] = name + equals + quote(self.policy.replacement, safe="")
            elif (scrubbed := self.text(plain)) != plain:
                parts[index] = name + equals + quote(scrubbed, safe="")
        return "&".join(parts)

    def text(self, text: str) -> str:
        data = text.encode("utf-8", "surrogatepass")
        edits = self.pattern_edits(data)
        return apply_edits(data, (), edits)[0].decode("utf-8", "surrogatepass") if edits else text

    def pattern_edits(self, data: bytes) -> list[Edit]:
        if not self.policy.scrub_values:
            return []
        edits = []
        for _, pattern in SECRET_VALUE_PATTERNS:
            for match in pattern.finditer(data):
                secret = match.group("secret")
                if secret != self.replacement:
                    self.found.add(secret.decode("ascii"))
                    edits.append((match.start("secret"), match.end("secret"), self.replacement))
        return without_overlaps(edits)

    def body(self, body: bytes, chunks: Sequence[Chunk]) -> tuple[bytes, tuple[Chunk, ...]]:
        edits: list[Edit] = []
        for start, end in json_spans(body):
            edits.extend(self.json_edits(body, start, end))
        taken = list(edits)
        edits.extend(e for e in self.pattern_edits(body) if not _overlaps(e, taken))
        body, chunk_tuple = apply_edits(body, chunks, without_overlaps(edits))
        return apply_edits(body, chunk_tuple, self.echo_edits(body))

    def json_edits(self, body: bytes, start: int, end: int) -> list[Edit]:
        document = _loads_or(body[start:end], None)
        changes: dict[str, str] = {}
        scrubbed = self.json(document, changes, secret=False)
        if not changes:
            return []
        # Replace just the changed strings, so everything else keeps its exact bytes; if that
        # does not give the scrubbed document (an unusual escape), rewrite the whole document.
        edits = [
            (found, found + len(needle), json.dumps(new).encode())
            for old, new in changes.items()
            for needle in {json.dumps(old).encode(), json.dumps(old, ensure_ascii=False).encode()}
            for found in _find_all(body, needle, start, end)
        ]
        edits = without_overlaps(edits)
        piece = apply_edits(body[start:end], (), [(s - start, e - start, r) for s, e, r in edits])
        if _loads_or(piece[0], ...) == scrubbed:
            return edits
        separators = (", ", ": ") if b'": ' in body[start:end] else (",", ":")
        return [(start, end, json.dumps(scrubbed, separators=separators).encode())]

    def json(self, value: Any, changes: dict[str, str], *, secret: bool) -> Any:
        if isinstance(value, str):
            if secret and value:
                self.found.add(value)
                new = self.policy.replacement
            else:
                new = self.text(value)
            if new != value:
                changes[value] = new
            return new
        if isinstance(value, dict):
            return {
                key: self.json(item, changes, secret=secret or self.policy.is_secret_name(key))
                for key, item in value.items()
            }
        if isinstance(value, list):
            return [self.json(item, changes, secret=secret) for item in value]
        return value

    def echo_forms(self) -> set[bytes]:
        forms: set[bytes] = set()
        for secret in self.found:
            if len(secret) >= _MIN_ECHO and secret != self.policy.replacement:
                raw = secret.encode("utf-8", "surrogatepass")
                forms |= {raw, json.dumps(secret)[1:-1].encode(), quote(secret, safe="").encode()}
        # A "secret" inside the replacement text could never be removed by replacing it.
        return {form for form in forms if form not in self.replacement}

    def echo_edits(self, body: bytes) -> list[Edit]:
        edits = [
            (found, found + len(form), self.replacement)
            for form in sorted(self.echo_forms(), key=len, reverse=True)
            for found in _find_all(body, form, 0, len(body))
        ]
        return without_overlaps(edits)

    def echoes_in_headers(self, headers: Headers) -> Headers:
        return {name: [self.echoes_in_text(v) for v in values] for name, values in headers.items()}

    def echoes_in_text(self, text: str, *, quoted: bool = False) -> str:
        data = text.encode("utf-8", "surrogatepass")
        edits = self.echo_edits(data)
        if not edits:
            return text
        replacement = quote(self.policy.replacement, safe="").encode() if quoted else None
        if replacement is not None:
            edits = [(start, end, replacement) for start, end, _ in edits]
        return apply_edits(data, (), edits)[0].decode("utf-8", "surrogatepass")


def json_spans(body: bytes) -> list[tuple[int, int]]:
    """Where JSON documents sit: the whole body, or one per line (``data:`` prefix skipped)."""
    stripped = body.strip()
    if stripped[:1] in (b"{", b"[") and _loads_or(stripped, ...) is not ...:
        start = body.index(stripped[:1])
        return [(start, start + len(stripped))]
    spans = []
    position = 0
    for line in body.split(b"\n"):
        start, end = position, position + len(line)
        position = end + 1
        if line.startswith(b"data:"):
            start += 6 if line.startswith(b"data: ") else 5
        content = body[start:end].rstrip(b"\r")
        if content[:1] in (b"{", b"["):
            spans.append((start, start + len(content)))
    return spans


def _loads_or(data: bytes, default: Any) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return default


def _find_all(data: bytes, needle: bytes, start: int, end: int) -> Iterable[int]:
    found = data.find(needle, start, end) if needle else -1
    while found != -1:
        yield found
        found = data.find(needle, found + len(needle), end)


def _overlaps(edit: Edit, others: Sequence[Edit]) -> bool:
    return any(edit[0] < other[1] and other[0] < edit[1] for other in others)


def _fix_length(headers: Headers, length: int) -> Headers:
    # A Content-Length that no longer matches the body makes clients cut it or wait for more.
    return {
        name: [str(length)] if name.lower() == "content-length" else values
        for name, values in headers.items()
    }
