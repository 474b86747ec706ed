"""Scrubbing: secrets are replaced before an interaction reaches a cassette.

Secrets are what :mod:`cassettes.scrub_policy` says: values of secret-named headers, query
parameters and JSON fields, and secret-looking values anywhere; then, anywhere else in the same
request or response, a secret already found (a token echoed in an error message) when it is at
least 6 characters long.

Only non-empty strings are replaced (``"key": ""`` and ``"max_tokens": 4000`` stay as they are,
so bodies still match). JSON is edited in place where possible, so formatting and key order
survive. A response body is streamed data: every edit also moves the chunk boundaries behind it
(:func:`cassettes.edits.apply_edits`), so the chunk plan stays a valid cut of the new body.

A request is scrubbed with what the request alone reveals, so scrubbing the same live request
again (as the replay index does before computing its key) gives exactly the stored request.

JSON nested too deeply to walk within Python's recursion limit (``json.loads`` raises
``RecursionError`` at about a thousand levels, and walking a parsed document costs stack too) is
treated like any text that is not JSON: its bytes are kept, and only secret-looking values and
echoes are replaced in them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from contextlib import suppress
from dataclasses import replace
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
from cassettes.scrub_policy import (
    ALWAYS_SECRET_HEADERS,
    DEFAULT_POLICY,
    SCRUBBED,
    SECRET_VALUE_PATTERNS,
    ScrubPolicy,
    shows_secret_hint,
)

_MIN_ECHO = 6  # shorter values are replaced where found, but not hunted elsewhere
__all__ = [
    "ALWAYS_SECRET_HEADERS",
    "DEFAULT_POLICY",
    "SCRUBBED",
    "SECRET_VALUE_PATTERNS",
    "ScrubPolicy",
    "json_documents",
    "scrub_cassette",
    "scrub_interaction",
    "scrub_request",
    "scrub_response",
]


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
        if self.nothing_to_find(request):
            return request
        return self.request_in_full(request)

    def nothing_to_find(self, request: RecordedRequest) -> bool:
        """True when :meth:`request_in_full` could neither replace nor remember anything.

        The replay index scrubs every live request before keying it, and almost none holds a
        secret: these checks settle that at about a third of the cost of the full pass. Each
        mirrors one step of it and errs towards False (then the full pass decides).
        """
        policy = self.policy
        if self.may_hold_secrets(request.headers):
            return False
        uri = request.uri
        head, _, rest = uri.partition("?")
        # "%" could hide a hint the full pass would see after unquoting a query value.
        if "@" in head or "%" in rest or (policy.scrub_values and shows_secret_hint(uri)):
            return False
        query = rest.partition("#")[0]
        for part in query.split("&") if query else ():
            if policy.is_secret_name(unquote_plus(part.partition("=")[0])):
                return False
        body = request.body
        if not body:
            return True
        if self.strings_may_look_secret(body):
            return False
        # A form body (pairs() in the full pass) names its fields with "=".
        if b"=" in body and "form-urlencoded" in (request.header("content-type") or "").lower():
            return False
        try:
            return not any(self.names_a_secret(doc) for _, _, doc in json_documents(body))
        except RecursionError:
            return False  # too deep to tell here: the full pass keeps it as bytes

    def request_in_full(self, request: RecordedRequest) -> RecordedRequest:
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
        if not self.may_hold_secrets(headers):
            return headers  # the common case, checked at a fraction of the cost of the loop
        result: Headers = {}
        for name, values in headers.items():
            if self.policy.is_secret_name(name):
                self.remember_header(values)
                result[name] = [self.policy.replacement if value else value for value in values]
            else:
                result[name] = [self.text(value) for value in values]
        return result

    def may_hold_secrets(self, headers: Headers) -> bool:
        """False when :meth:`headers` would change nothing and find nothing: no secret name,
        and no value shows a secret's hint (one search over all values at once)."""
        if any(map(self.policy.is_secret_name, headers)):
            return True
        if not self.policy.scrub_values:
            return False
        return shows_secret_hint(
            "\n".join(value for listed in headers.values() for value in listed)
        )

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
        password = urlsplit(head).password if "@" in head else None
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
        if not (self.policy.scrub_values and shows_secret_hint(text)):
            return text
        data = text.encode("utf-8", "surrogatepass")
        edits = self.pattern_edits(data)
        return apply_edits(data, (), edits)[0].decode("utf-8", "surrogatepass") if edits else text

    def pattern_edits(self, data: bytes) -> list[Edit]:
        if not (self.policy.scrub_values and shows_secret_hint(data)):
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
        values = self.strings_may_look_secret(body)
        for start, end, document in json_documents(body):
            # Parsed, but too deep to walk: bytes, like a document that did not parse.
            with suppress(RecursionError):
                edits.extend(self.json_edits(body, start, end, document, values=values))
        taken = list(edits)
        edits.extend(e for e in self.pattern_edits(body) if not _overlaps(e, taken))
        body, chunk_tuple = apply_edits(body, chunks, without_overlaps(edits))
        return apply_edits(body, chunk_tuple, self.echo_edits(body))

    def strings_may_look_secret(self, body: bytes) -> bool:
        """Whether a JSON string in ``body`` could hold a secret-looking value: only when the
        bytes show a secret's hint or could hide one behind a ``\\u`` escape."""
        return self.policy.scrub_values and (shows_secret_hint(body) or b"\\u" in body)

    def json_edits(
        self, body: bytes, start: int, end: int, document: Any, *, values: bool = True
    ) -> list[Edit]:
        if not values and not self.names_a_secret(document):
            return []  # nothing to replace: skip building the scrubbed copy
        changes: dict[str, str] = {}
        scrubbed = self.json(document, changes, secret=False, values=values)
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

    def names_a_secret(self, value: Any) -> bool:
        """Whether any key at any depth of a parsed JSON ``value`` is a secret's name."""
        if isinstance(value, dict):
            for key, item in value.items():
                if self.policy.is_secret_name(key) or self.names_a_secret(item):
                    return True
        elif isinstance(value, list):
            for item in value:
                if self.names_a_secret(item):
                    return True
        return False

    def json(self, value: Any, changes: dict[str, str], *, secret: bool, values: bool) -> Any:
        """``value`` scrubbed; ``values=False`` skips looking for secret-looking strings."""
        if isinstance(value, str):
            if secret and value:
                self.found.add(value)
                new = self.policy.replacement
            elif values:
                new = self.text(value)
            else:
                return value
            if new != value:
                changes[value] = new
            return new
        if isinstance(value, dict):
            is_secret_name = self.policy.is_secret_name
            return {
                key: self.json(item, changes, secret=secret or is_secret_name(key), values=values)
                for key, item in value.items()
            }
        if isinstance(value, list):
            return [self.json(item, changes, secret=secret, values=values) for item in value]
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
        if not self.found:
            return []
        edits = [
            (found, found + len(form), self.replacement)
            for form in sorted(self.echo_forms(), key=len, reverse=True)
            for found in _find_all(body, form, 0, len(body))
        ]
        return without_overlaps(edits)

    def echoes_in_headers(self, headers: Headers) -> Headers:
        if not self.found:
            return headers
        return {name: [self.echoes_in_text(v) for v in values] for name, values in headers.items()}

    def echoes_in_text(self, text: str, *, quoted: bool = False) -> str:
        if not self.found:
            return text
        data = text.encode("utf-8", "surrogatepass")
        edits = self.echo_edits(data)
        if not edits:
            return text
        replacement = quote(self.policy.replacement, safe="").encode() if quoted else None
        if replacement is not None:
            edits = [(start, end, replacement) for start, end, _ in edits]
        return apply_edits(data, (), edits)[0].decode("utf-8", "surrogatepass")


def json_documents(body: bytes) -> list[tuple[int, int, Any]]:
    """JSON documents in a body as (start, end, parsed value): the whole body when it is one,
    else one per line that holds one (an SSE ``data:`` prefix skipped)."""
    stripped = body.strip()
    if stripped[:1] in (b"{", b"["):
        whole = _loads_or(stripped, ...)
        if whole is not ...:
            start = body.index(stripped[:1])
            return [(start, start + len(stripped), whole)]
    documents = []
    position = 0
    for line in body.split(b"\n"):
        start, end = position, position + len(line)
        position = end + 1
        if line.startswith(b"data:"):
            start += 6 if line.startswith(b"data: ") else 5
        content = body[start:end].rstrip(b"\r")
        if content[:1] in (b"{", b"["):
            value = _loads_or(content, ...)
            if value is not ...:
                documents.append((start, start + len(content), value))
    return documents


def _loads_or(data: bytes, default: Any) -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError):  # RecursionError: nested too deeply to parse
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
