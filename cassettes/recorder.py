"""A recording session: what the proxy does with each request, and the cassette it builds.

Record modes, as vcrpy has them:

============= ===============================================================================
once          the cassette file exists: replay what matches, refuse anything new (4xx naming
              the mode); it does not exist yet: record everything
new_episodes  replay what matches, record what does not, append it to the cassette
none          replay only, never record; the cassette must exist
all           always forward and record; the cassette is replaced by this session's recording
============= ===============================================================================

A recorded interaction lives in memory only after it was scrubbed (:mod:`cassettes.scrub`, with
the session's policy) and passed through the optional ``before_record`` hook. After each one the
whole cassette is written again, atomically, by one writer thread
(:class:`~cassettes.cassette_writer.CassetteWriter`, which dumps each interaction only once):
writes happen in order, never two at once, writes queued behind a running one coalesce, and a
process killed at any moment leaves either the previous file or the new one, never a mixture. A
session that records nothing writes nothing. Nobody waits for a write but :meth:`Recorder.close`.

New recordings are not replayed within the session that made them (vcrpy does, in
``new_episodes``): a proxy in front of a live service should show the live answer.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, get_args

from cassettes import yamlio
from cassettes.cassette_writer import CassetteWriter
from cassettes.index import InteractionIndex
from cassettes.matchers import Matcher
from cassettes.model import Cassette, Interaction, Provenance, RecordedRequest, Source
from cassettes.scrub import DEFAULT_POLICY, ScrubPolicy, scrub_interaction
from providers.errors import CassetteError, NoMatchingInteractionError

RecordMode = Literal["once", "new_episodes", "none", "all"]
RECORD_MODES: tuple[RecordMode, ...] = get_args(RecordMode)
Action = Literal["play", "forward", "refuse"]
EventKind = Literal[
    "recorded", "dropped", "replayed", "refused", "unreachable", "cut", "client-gone"
]
BeforeRecord = Callable[[Interaction], Interaction | None]


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with one request: play ``interaction``, forward it, or refuse with ``message``."""

    action: Action
    interaction: Interaction | None = None
    message: str = ""


@dataclass(frozen=True, slots=True)
class Event:
    """One request handled by the proxy, for progress output."""

    kind: EventKind
    method: str
    path: str
    status: int = 0
    body_bytes: int = 0
    chunks: int = 0
    elapsed_ms: float = 0.0
    detail: str = ""


@dataclass(slots=True)
class Stats:
    """Running totals of a session."""

    recorded: int = 0
    replayed: int = 0
    refused: int = 0
    failed: int = 0
    body_bytes: int = 0
    started: float = 0.0

    def elapsed(self) -> float:
        """Seconds since the session started."""
        return time.monotonic() - self.started


class Recorder:
    """One cassette file, one record mode, one scrub policy; shared by every proxied request.

    Raises :class:`CassetteError` at construction when the mode cannot work with the file
    (``none`` without a cassette), and the loader's errors for an unreadable existing cassette.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        target_url: str,
        source: Source,
        mode: RecordMode = "once",
        policy: ScrubPolicy = DEFAULT_POLICY,
        matcher: Matcher | None = None,
        recorded_at: str | None = None,
        tool_version: str | None = None,
        before_record: BeforeRecord | None = None,
        listener: Callable[[Event], None] | None = None,
    ) -> None:
        if mode not in RECORD_MODES:
            raise ValueError(f"record mode must be one of {', '.join(RECORD_MODES)}, not {mode!r}")
        self.path = Path(path)
        self.mode: RecordMode = mode
        self.policy = policy
        self.before_record = before_record
        self.listener = listener
        self.stats = Stats(started=time.monotonic())
        provenance = Provenance.now(target_url, source, tool_version)
        if recorded_at is not None:
            provenance = replace(provenance, recorded_at=recorded_at)
        existing = self._load_existing()
        if mode == "none" and existing is None:
            raise CassetteError(
                f"record mode 'none' replays only, and {self.path} does not exist; "
                "record it first (--mode once)"
            )
        #: True when requests are looked up in the existing cassette before anything else.
        self.replaying = existing is not None
        #: True when requests without a recording are forwarded and recorded.
        self.recording = mode in ("all", "new_episodes") or (mode == "once" and existing is None)
        self.index = InteractionIndex.from_cassette(
            existing or Cassette(), matcher=matcher or Matcher(scrub=policy), name=str(self.path)
        )
        if mode == "new_episodes" and existing is not None:
            self._cassette = Cassette(existing.interactions, provenance, existing.extra)
        else:
            self._cassette = Cassette((), provenance)
        self._lock = threading.Lock()
        self._generation = 0  # interactions added this session
        self._written = 0  # the generation last written to disk (writer thread only)
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tapedeck-save")
        self._file = CassetteWriter(self.path)  # used by the writer thread only
        self._closed = False

    def _load_existing(self) -> Cassette | None:
        # "all" replaces the file whatever it holds, so it never needs to read it.
        if self.mode == "all" or not self.path.exists():
            return None
        return yamlio.load(self.path)

    @property
    def cassette(self) -> Cassette:
        """The cassette as it will be written (loaded interactions first in new_episodes)."""
        with self._lock:
            return self._cassette

    def decide(self, request: RecordedRequest) -> Decision:
        """Play, forward or refuse ``request`` (already in cassette form, not yet scrubbed)."""
        if self.mode == "all" or not self.replaying:
            return Decision("forward")
        try:
            return Decision("play", self.index.match(request))
        except NoMatchingInteractionError as miss:
            why = str(miss)
        except RecursionError:
            # A body normaliser ran out of stack on JSON nested too deeply: no recording can be
            # shown to match it, so it is a miss like any other.
            why = "its body is nested too deeply to compare with the recordings"
        if self.recording:
            return Decision("forward")
        message = (
            f"record mode {self.mode!r} does not record new requests"
            + (" once the cassette exists" if self.mode == "once" else "")
            + f" ({why}); use --mode new_episodes to add it, or --mode all to re-record"
        )
        return Decision("refuse", message=message)

    def add(self, interaction: Interaction) -> Interaction | None:
        """Scrub ``interaction``, pass it through ``before_record``, keep it; None if dropped."""
        kept: Interaction | None = scrub_interaction(interaction, self.policy)
        if kept is not None and self.before_record is not None:
            kept = self.before_record(kept)
        if kept is None:
            return None
        with self._lock:
            self._cassette = self._cassette.with_interactions((kept,))
            self._generation += 1
        return kept

    async def persist(self) -> None:
        """Write the cassette if anything new was added, in the writer thread, in order.

        Shielded: a request cancelled while its cassette is being written still gets it written.
        """
        if self._closed:
            self._write_latest()  # the writer thread is gone; nothing else can be writing
            return
        future = self._writer.submit(self._write_latest)
        await asyncio.shield(asyncio.wrap_future(future))

    def persist_soon(self) -> None:
        """Queue a write of the cassette without waiting for it (:meth:`close` waits); once
        closed, write at once."""
        if self._closed:
            self._write_latest()
        else:
            self._writer.submit(self._write_latest)

    def persist_now(self) -> None:
        """:meth:`persist` from synchronous code (waits for the write)."""
        if self._closed:
            self._write_latest()
        else:
            self._writer.submit(self._write_latest).result()

    def _write_latest(self) -> None:
        # Runs in the single writer thread. Queued writes coalesce: a write that finds its
        # generation already on disk does nothing.
        with self._lock:
            generation, cassette = self._generation, self._cassette
        if generation > self._written:
            self._file.write(cassette)
            self._written = generation

    @property
    def unsaved(self) -> bool:
        """True while an added interaction has not reached the file yet."""
        with self._lock:
            return self._generation > self._written

    def note(self, event: Event) -> None:
        """Count ``event`` in :attr:`stats` and pass it to the listener."""
        stats = self.stats
        if event.kind == "recorded":
            stats.recorded += 1
            stats.body_bytes += event.body_bytes
        elif event.kind == "replayed":
            stats.replayed += 1
        elif event.kind == "refused":
            stats.refused += 1
        elif event.kind != "dropped":
            stats.failed += 1
        if self.listener is not None:
            self.listener(event)

    async def close(self) -> None:
        """Write what is unsaved and stop the writer thread (again: only the write)."""
        await self.persist()
        if not self._closed:
            self._closed = True
            self._writer.shutdown(wait=True)
