"""The request journal: every request a fake received, what it decided, and how the reply ended.

The server thread writes, the test thread reads. A fake writes on every request and a test reads
a handful of entries, so the work sits with the reader: a write is one tuple appended to an event
log, without a lock (``list.append`` and ``next`` on an ``itertools.count`` are atomic under the
GIL), and readers take the lock and fold the events logged since the last read into records. A
record is updated in place (arrival, verdict, outcome); a frozen :class:`JournalEntry` is made from
it only when someone reads it, and kept until the record changes again. So a fake serving
thousands of requests that no test looks at pays for neither records, snapshots nor decoding their
raw headers. Measured: the three writes of a request cost 1.4 µs here against 2.7 µs for the
locked, record-per-request journal this replaced (microbenchmark); keeping a journal at all costs
the short-reply benchmark ~11% of its throughput against none, and the difference between the two
designs is within that benchmark's noise.

Errors raised inside a handler (harness bugs, never client mistakes) are kept, so the test that
caused one can call :meth:`Journal.raise_errors` and see it as a
:class:`~providers.errors.FakeUpstreamError` instead of an unexplained 500.
"""

from __future__ import annotations

import base64
import collections
import itertools
import json
import marshal
import threading
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from math import isfinite
from typing import Any

from fake_upstreams.script import ResponseScript
from providers.errors import FakeUpstreamError
from providers.wire.common import ChatRequest


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether the fake accepted the request; for a rejection, the status and error it sent."""

    ok: bool
    status: int
    code: str = ""
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "status": self.status, "code": self.code, "message": self.message}


_ACCEPTED: dict[int, Verdict] = {}


def accepted(status: int) -> Verdict:
    """``Verdict(True, status)``, shared: one fewer object kept per journal entry.

    Verdicts are immutable, so entries may share one; only plain ``int`` statuses are shared,
    so a status of another type (``200.0``) still gets its own, as it always did.
    """
    if type(status) is not int:
        return Verdict(True, status)
    verdict = _ACCEPTED.get(status)
    if verdict is None:
        verdict = _ACCEPTED.setdefault(status, Verdict(True, status))
    return verdict


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One received request. ``headers`` are the raw pairs in the order and case received.

    ``outcome`` is ``"pending"`` while the reply is being sent, then ``"rejected"``,
    ``"completed"``, ``"client-disconnected"``, ``"fault:<kind>"``, ``"cancelled"`` (server
    shut down mid-reply) or ``"handler-error"``.
    """

    index: int
    timestamp: float
    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    chat: ChatRequest | None = None
    plaintext: bytes | None = None
    verdict: Verdict | None = None
    script: ResponseScript | None = None
    outcome: str = "pending"
    error: str | None = None

    def header(self, name: str) -> str | None:
        """The first header with this name (case-insensitive), as received."""
        wanted = name.lower()
        return next((value for key, value in self.headers if key.lower() == wanted), None)

    def to_json(self) -> dict[str, Any]:
        chat = self.chat
        return {
            "index": self.index,
            "timestamp": self.timestamp,
            "method": self.method,
            "path": self.path,
            "headers": [list(pair) for pair in self.headers],
            "body": _bytes_json(self.body),
            "chat": None
            if chat is None
            else {
                "model": chat.model,
                "messages": list(chat.messages),
                "options": dict(chat.options),
            },
            "plaintext": None if self.plaintext is None else _bytes_json(self.plaintext),
            "verdict": None if self.verdict is None else self.verdict.to_json(),
            "script": None if self.script is None else self.script.to_dict(),
            "outcome": self.outcome,
            "error": self.error,
        }


def _bytes_json(data: bytes) -> dict[str, Any]:
    """Bytes for JSON: always base64, plus the text when the bytes are valid UTF-8."""
    try:
        text: str | None = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    return {"base64": base64.b64encode(data).decode("ascii"), "text": text}


#: How deep :func:`_json_safe` copies before it describes instead (bounded, so it cannot itself
#: run out of recursion).
_SAFE_DEPTH = 100
#: Python refuses to write an int with more digits than this (sys.get_int_max_str_digits).
_SAFE_INT_BITS = 4000 * 3


def _json_safe(value: object, depth: int) -> object:
    """A copy of ``value`` that ``json.dumps(..., allow_nan=False)`` can always write."""
    if value is None or isinstance(value, str | bool):
        return value
    if isinstance(value, int):
        return value if value.bit_length() <= _SAFE_INT_BITS else "<integer too long to show>"
    if isinstance(value, float):
        return value if isfinite(value) else f"<not JSON: {value!r}>"
    if depth <= 0:
        return f"<nested more than {_SAFE_DEPTH} levels: not shown>"
    if isinstance(value, Mapping):
        return {
            key if isinstance(key, str) else repr(key): _json_safe(item, depth - 1)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_json_safe(item, depth - 1) for item in value]
    return f"<not JSON: a {type(value).__name__}>"


RawHeaders = tuple[tuple[bytes, bytes], ...]


class _Record:
    """One entry while it can still change; :meth:`freeze` gives the snapshot readers get.

    Only ever touched with the journal's lock held.
    """

    __slots__ = (
        "body",
        "chat",
        "error",
        "frozen",
        "headers",
        "index",
        "method",
        "outcome",
        "path",
        "plaintext",
        "raw_headers",
        "script",
        "timestamp",
        "verdict",
    )

    def __init__(
        self,
        index: int,
        method: str,
        path: str,
        *,
        timestamp: float,
        headers: tuple[tuple[str, str], ...] | None,
        raw_headers: bytes,
        body: bytes,
    ) -> None:
        self.index = index
        self.timestamp = timestamp
        self.method = method
        self.path = path
        self.headers = headers
        self.raw_headers = raw_headers
        self.body = body
        self.chat: ChatRequest | None = None
        self.plaintext: bytes | None = None
        self.verdict: Verdict | None = None
        self.script: ResponseScript | None = None
        self.outcome = "pending"
        self.error: str | None = None
        self.frozen: JournalEntry | None = None

    def freeze(self) -> JournalEntry:
        if self.frozen is None:
            if self.headers is None:
                # Latin-1 maps every byte to one character: header bytes survive as received.
                self.headers = tuple(
                    (name.decode("latin-1"), value.decode("latin-1"))
                    for name, value in marshal.loads(self.raw_headers)
                )
            self.frozen = JournalEntry(
                self.index,
                self.timestamp,
                self.method,
                self.path,
                self.headers,
                self.body,
                self.chat,
                self.plaintext,
                self.verdict,
                self.script,
                self.outcome,
                self.error,
            )
        return self.frozen


# Events in the log: (_OPEN, ticket, timestamp, method, path, headers, raw headers, body),
# (_JUDGE, ticket, verdict, chat, script) and (_FINISH, ticket, outcome).
_OPEN, _JUDGE, _FINISH = 0, 1, 2
_Event = tuple[Any, ...]


class Journal:
    """Thread-safe, append-only (until :meth:`clear`) record of the requests one fake received.

    :meth:`open` hands out a ticket that keeps counting across :meth:`clear`, so a handler still
    running when a test resets the journal can never write into the next test's entries: its
    later updates are recognised as stale and dropped (its handler errors are still kept).

    The write methods (:meth:`open`, :meth:`open_raw`, :meth:`judge`, :meth:`finish`) only append
    to the event log and are meant for one writer thread (the fake's loop), so that entries keep
    arrival order; every other method takes the lock.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tickets = itertools.count()
        self._log: list[_Event] = []
        self._records: list[_Record] = []
        self._by_ticket: dict[int, _Record] = {}
        self._errors: list[tuple[str, BaseException]] = []
        self._first_ticket = 0  # tickets below this were handed out before the last clear

    def open(self, method: str, path: str, headers: Sequence[tuple[str, str]], body: bytes) -> int:
        """Record a request as it arrives; returns its ticket for the later updates."""
        ticket = next(self._tickets)
        self._log.append((_OPEN, ticket, time.time(), method, path, tuple(headers), b"", body))
        return ticket

    def open_raw(self, method: str, path: str, raw_headers: RawHeaders, body: bytes) -> int:
        """:meth:`open` with the headers as received bytes, decoded (Latin-1) only when read."""
        # Kept as one marshalled bytes object rather than aiohttp's tuple of 2-tuples: a
        # journal holds thousands of requests, and every tuple kept alive is one more object
        # for the cyclic garbage collector to count and walk (it ran ~40x as often as for a
        # bare server); bytes are not collected objects. Marshal round-trips bytes pairs exactly.
        ticket = next(self._tickets)
        raw = marshal.dumps(raw_headers)
        self._log.append((_OPEN, ticket, time.time(), method, path, None, raw, body))
        return ticket

    def judge(
        self,
        index: int,
        verdict: Verdict,
        *,
        chat: ChatRequest | None = None,
        script: ResponseScript | None = None,
    ) -> None:
        """Store the validation verdict (and, when accepted, the parsed request and script)."""
        self._log.append((_JUDGE, index, verdict, chat, script))

    def finish(self, index: int, outcome: str) -> None:
        """Store how the reply ended."""
        self._log.append((_FINISH, index, outcome))

    def fail(self, index: int, error: BaseException) -> None:
        """Keep an exception raised inside the handler, to be raised again in the test."""
        summary = "".join(traceback.format_exception_only(type(error), error)).strip()
        with self._lock:
            self._fold()
            # None if stale: cleared while its reply still ran.
            record = self._by_ticket.get(index)
            if record is not None:
                record.outcome = "handler-error"
                record.error = summary
                record.frozen = None
                where = f"request #{record.index} {record.method} {record.path}"
            else:
                where = "a request from before the last reset"
            self._errors.append((f"{where}: {summary}", error))

    def _fold(self) -> None:
        """Apply the logged events to the records (lock held)."""
        log = self._log
        count = len(log)
        for event in log[:count]:
            kind, ticket = event[0], event[1]
            if kind == _OPEN:
                if ticket >= self._first_ticket:
                    _, _, timestamp, method, path, headers, raw, body = event
                    opened = _Record(
                        len(self._records),
                        method,
                        path,
                        timestamp=timestamp,
                        headers=headers,
                        raw_headers=raw,
                        body=body,
                    )
                    self._records.append(opened)
                    self._by_ticket[ticket] = opened
                continue
            record = self._by_ticket.get(ticket)
            if record is None:  # stale: its request arrived before the last clear
                continue
            if kind == _JUDGE:
                _, _, verdict, chat, script = event
                record.verdict = verdict
                record.chat = chat
                record.plaintext = None if chat is None else chat.plaintext
                record.script = script
                record.outcome = "pending" if verdict.ok else "rejected"
            else:
                record.outcome = event[2]
            record.frozen = None
        # One C-level slice deletion, atomic under the GIL: events a writer appends meanwhile
        # land after position `count` and stay for the next fold.
        del log[:count]

    @property
    def entries(self) -> list[JournalEntry]:
        """A snapshot of every entry so far, oldest first."""
        with self._lock:
            self._fold()
            return [record.freeze() for record in self._records]

    @property
    def last(self) -> JournalEntry:
        """The newest entry (``IndexError`` if there is none)."""
        with self._lock:
            self._fold()
            return self._records[-1].freeze()

    def __len__(self) -> int:
        with self._lock:
            self._fold()
            return len(self._records)

    def outcome_counts(self) -> dict[str, int]:
        """How many entries ended each way, e.g. ``{"completed": 41, "rejected": 1}``.

        Built from the records without making an entry of each: on a journal of thousands of
        requests, :attr:`entries` would decode every request's headers just to be counted.
        """
        with self._lock:
            self._fold()
            return dict(collections.Counter(record.outcome for record in self._records))

    @property
    def errors(self) -> list[BaseException]:
        with self._lock:
            return [error for _, error in self._errors]

    def clear(self) -> None:
        with self._lock:
            # Emptied in place (not replaced), so a writer holding the list appends to this one;
            # the ticket boundary is taken after, so every event logged from here on either has
            # a newer ticket (kept) or an older one (stale, dropped by _fold).
            del self._log[:]
            self._records.clear()
            self._by_ticket.clear()
            self._errors.clear()
            self._first_ticket = next(self._tickets) + 1

    def raise_errors(self) -> None:
        """Raise :class:`FakeUpstreamError` (from the first one) if any handler failed."""
        with self._lock:
            errors = list(self._errors)
        if not errors:
            return
        raise FakeUpstreamError(
            f"{len(errors)} error(s) inside the fake's handler:\n"
            + "\n".join(where for where, _ in errors)
        ) from errors[0][1]

    def to_json(self) -> dict[str, Any]:
        """``{"entries": [...], "errors": [...]}``, ready for ``json.dumps``."""
        with self._lock:
            self._fold()
            entries = [record.freeze() for record in self._records]
            errors = [where for where, _ in self._errors]
        return {"entries": [entry.to_json() for entry in entries], "errors": errors}

    def to_json_text(self) -> str:
        """:meth:`to_json` as JSON text, whatever the entries hold; never raises.

        The fakes refuse requests whose values JSON cannot carry, but an entry can still hold
        one (a ChatRequest made in Python, a codec that keeps more): a float that is not finite
        (``json.dumps`` would write ``Infinity``, which is not JSON), nesting too deep for the
        encoder's recursion from inside a handler, an object of another type. Only then is the
        journal copied with each such value replaced by a description.
        """
        data = self.to_json()
        try:
            return json.dumps(data, allow_nan=False)
        except (ValueError, TypeError, RecursionError):
            return json.dumps(_json_safe(data, _SAFE_DEPTH), allow_nan=False)
