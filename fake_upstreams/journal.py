"""The request journal: every request a fake received, what it decided, and how the reply ended.

The server thread writes, the test thread reads, so every access takes a lock and readers get
immutable snapshots. Errors raised inside a handler (harness bugs, never client mistakes) are
kept, so the test that caused one can call :meth:`Journal.raise_errors` and see it as a
:class:`~providers.errors.FakeUpstreamError` instead of an unexplained 500.
"""

from __future__ import annotations

import base64
import threading
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, replace
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


class Journal:
    """Thread-safe, append-only (until :meth:`clear`) record of the requests one fake received.

    :meth:`open` hands out a ticket that keeps counting across :meth:`clear`, so a handler still
    running when a test resets the journal can never write into the next test's entries: its
    later updates are recognised as stale and dropped (its handler errors are still kept).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[JournalEntry] = []
        self._errors: list[tuple[str, BaseException]] = []
        self._next_ticket = 0
        self._first_ticket = 0  # the ticket of self._entries[0]

    def open(self, method: str, path: str, headers: Sequence[tuple[str, str]], body: bytes) -> int:
        """Record a request as it arrives; returns its ticket for the later updates."""
        with self._lock:
            ticket = self._next_ticket
            self._next_ticket += 1
            position = len(self._entries)
            entry = JournalEntry(position, time.time(), method, path, tuple(headers), body)
            self._entries.append(entry)
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
        plaintext = None if chat is None else chat.plaintext
        outcome = "pending" if verdict.ok else "rejected"
        self._update(
            index,
            verdict=verdict,
            chat=chat,
            plaintext=plaintext,
            script=script,
            outcome=outcome,
        )

    def finish(self, index: int, outcome: str) -> None:
        """Store how the reply ended."""
        self._update(index, outcome=outcome)

    def fail(self, index: int, error: BaseException) -> None:
        """Keep an exception raised inside the handler, to be raised again in the test."""
        summary = "".join(traceback.format_exception_only(type(error), error)).strip()
        with self._lock:
            position = index - self._first_ticket
            if position >= 0:
                entry = self._entries[position]
                self._entries[position] = replace(entry, outcome="handler-error", error=summary)
                where = f"request #{entry.index} {entry.method} {entry.path}"
            else:
                where = "a request from before the last reset"
            self._errors.append((f"{where}: {summary}", error))

    def _update(self, index: int, **changes: Any) -> None:
        with self._lock:
            position = index - self._first_ticket
            if position >= 0:  # otherwise stale: cleared while its reply was still running
                self._entries[position] = replace(self._entries[position], **changes)

    @property
    def entries(self) -> list[JournalEntry]:
        """A snapshot of every entry so far, oldest first."""
        with self._lock:
            return list(self._entries)

    @property
    def last(self) -> JournalEntry:
        """The newest entry (``IndexError`` if there is none)."""
        with self._lock:
            return self._entries[-1]

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    @property
    def errors(self) -> list[BaseException]:
        with self._lock:
            return [error for _, error in self._errors]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._errors.clear()
            self._first_ticket = self._next_ticket

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
            entries = list(self._entries)
            errors = [where for where, _ in self._errors]
        return {"entries": [entry.to_json() for entry in entries], "errors": errors}
