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

A session that may record never starts blind, nor two at once:

- before anything is served, the cassette's directory is created and a temporary file is made and
  removed in it, so a path that cannot be written fails at construction (:class:`CassetteError`),
  not at the first save;
- it holds an exclusive lock for its whole life: ``flock`` on ``.NAME.lock`` beside the cassette
  (beside its target, for a symlink, which is written through). A second session on the same
  file is refused at construction, naming the holder's pid; the kernel drops the lock when the
  holder's process ends, however it ends, and :meth:`Recorder.close` removes the file;
- a write that fails later (disk full, directory gone) never escapes the writer thread: the
  reason is kept in :attr:`Recorder.write_problem` and given to ``on_write_problem`` at once (and
  ``None`` once a write succeeds again), the interactions stay in memory, and every later write
  tries again to save them all.

New recordings are not replayed within the session that made them (vcrpy does, in
``new_episodes``): a proxy in front of a live service should show the live answer.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
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

if sys.platform != "win32":
    import fcntl

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
    (``none`` without a cassette), when a session that may record cannot write it or another
    session is recording into it, and the loader's errors (``OSError``, ...) for an unreadable
    existing cassette. ``on_write_problem`` is called from the writer thread when a write fails
    (with one line saying why) and when one succeeds after that (with ``None``).
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
        on_write_problem: Callable[[str | None], None] | None = None,
    ) -> None:
        if mode not in RECORD_MODES:
            raise ValueError(f"record mode must be one of {', '.join(RECORD_MODES)}, not {mode!r}")
        self.path = Path(path)
        self.mode: RecordMode = mode
        self.policy = policy
        self.before_record = before_record
        self.listener = listener
        self.on_write_problem = on_write_problem
        self.stats = Stats(started=time.monotonic())
        provenance = Provenance.now(target_url, source, tool_version)
        if recorded_at is not None:
            provenance = replace(provenance, recorded_at=recorded_at)
        self._write_problem: str | None = None
        # Checked and locked before loading, so that what is loaded is what nobody else changes.
        self._session_lock: _SessionLock | None = None
        if mode in ("all", "new_episodes") or (mode == "once" and not self.path.exists()):
            target = Path(os.path.realpath(self.path))  # where yamlio writes a symlink's bytes
            _check_writable(target, self.path)
            self._session_lock = _SessionLock.acquire(target, self.path)
        try:
            existing = self._load_existing()
            if mode == "none" and existing is None:
                raise CassetteError(
                    f"record mode 'none' replays only, and {self.path} does not exist; "
                    "record it first (--mode once)"
                )
            self.index = InteractionIndex.from_cassette(
                existing or Cassette(),
                matcher=matcher or Matcher(scrub=policy),
                name=str(self.path),
            )
        except BaseException:
            self._release_session_lock()
            raise
        #: True when requests are looked up in the existing cassette before anything else.
        self.replaying = existing is not None
        #: True when requests without a recording are forwarded and recorded.
        self.recording = mode in ("all", "new_episodes") or (mode == "once" and existing is None)
        if not self.recording:  # "once", and another session created the file meanwhile
            self._release_session_lock()
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
            self._write_late()  # the writer thread is gone; nothing else of ours is writing
            return
        future = self._writer.submit(self._write_latest)
        await asyncio.shield(asyncio.wrap_future(future))

    def persist_soon(self) -> None:
        """Queue a write of the cassette without waiting for it (:meth:`close` waits); once
        closed, write at once."""
        if self._closed:
            self._write_late()
        else:
            self._writer.submit(self._write_latest)

    def persist_now(self) -> None:
        """:meth:`persist` from synchronous code (waits for the write)."""
        if self._closed:
            self._write_late()
        else:
            self._writer.submit(self._write_latest).result()

    def _write_late(self) -> None:
        """A write after :meth:`close` (a relay that outlived the proxy's stop).

        The session's lock is gone by then, and another session may hold it: the write takes it
        again for itself, or is reported as a write problem instead of clobbering that session.
        """
        try:
            lock = _SessionLock.acquire(Path(os.path.realpath(self.path)), self.path)
        except CassetteError as error:
            self._set_write_problem(f"{error} (an interaction came after this session ended)")
            return
        try:
            self._write_latest()
        finally:
            lock.release()

    def _write_latest(self) -> None:
        # Runs in the single writer thread. Queued writes coalesce: a write that finds its
        # generation already on disk does nothing. A failed write leaves _written behind, so the
        # next one writes everything again.
        with self._lock:
            generation, cassette = self._generation, self._cassette
        if generation <= self._written:
            return
        try:
            self._file.write(cassette)
        except Exception as error:  # raised here, it would only surface at close, as a traceback
            self._set_write_problem(f"cannot write {self.path}: {_reason(error)}")
            return
        self._written = generation
        self._set_write_problem(None)

    def _set_write_problem(self, problem: str | None) -> None:
        if problem == self._write_problem:
            return  # said already: one line when it starts failing, one when it recovers
        self._write_problem = problem
        if self.on_write_problem is not None:
            self.on_write_problem(problem)

    @property
    def write_problem(self) -> str | None:
        """Why the last write failed (``cannot write PATH: why``); None if it succeeded."""
        return self._write_problem

    @property
    def unsaved(self) -> bool:
        """True while an added interaction has not reached the file yet."""
        return self.unsaved_count > 0

    @property
    def unsaved_count(self) -> int:
        """Interactions added that have not reached the file yet."""
        with self._lock:
            return self._generation - self._written

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
        """Write what is unsaved, stop the writer thread and end the session's lock (again: only
        the write). Never raises for a failed write: see :attr:`write_problem` and
        :attr:`unsaved`."""
        try:
            await self.persist()
            if not self._closed:
                self._closed = True
                self._writer.shutdown(wait=True)
        finally:
            self._release_session_lock()

    def _release_session_lock(self) -> None:
        if self._session_lock is not None:
            self._session_lock.release()
            self._session_lock = None


def _reason(error: BaseException) -> str:
    """Why a file operation failed, in a few words."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return f"{type(error).__name__}: {error}"


def _check_writable(target: Path, shown: Path) -> None:
    """Raise :class:`CassetteError` unless a cassette can be written atomically at ``target``:
    its directory is made, and a temporary file created and removed there, as a save would."""
    if target.is_dir():
        raise CassetteError(f"cannot write {shown}: it is a directory")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        # Some part of the path is a file: name it, as mkdir's "File exists" does not.
        blocker = next(
            (p for p in reversed(target.parents) if os.path.exists(p) and not os.path.isdir(p)),
            target.parent,
        )
        raise CassetteError(f"cannot write {shown}: {blocker} is not a directory") from None
    except OSError as error:
        raise CassetteError(f"cannot write {shown}: {_reason(error)}") from None
    try:
        handle, probe = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=".partial", dir=target.parent
        )
    except OSError as error:
        raise CassetteError(f"cannot write {shown}: {_reason(error)}") from None
    os.close(handle)
    os.unlink(probe)


class _SessionLock:
    """An exclusive ``flock`` on ``.NAME.lock`` beside a cassette, for one recording session.

    The kernel releases it when the process ends, however it ends. :meth:`release` removes the
    file while still holding the lock; a session that opened the file just before that and locks
    it just after finds that its file is no longer the one at the path, and starts again.
    Without ``fcntl`` (Windows) sessions are not protected from each other.
    """

    def __init__(self, path: Path, descriptor: int) -> None:
        self.path = path
        self._descriptor: int | None = descriptor

    @classmethod
    def acquire(cls, target: Path, shown: Path) -> _SessionLock:
        """Lock ``target``'s lock file, or raise :class:`CassetteError` naming the holder."""
        path = target.with_name(f".{target.name}.lock")
        while True:
            try:
                # Not inherited across exec (PEP 446): a program started later cannot hold it.
                descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as error:
                raise CassetteError(f"cannot write {shown}: {_reason(error)}") from None
            try:
                if not _try_lock(descriptor):
                    os.lseek(descriptor, 0, os.SEEK_SET)
                    holder = os.read(descriptor, 32).decode("ascii", "replace").strip()
                    pid = f" (pid {holder})" if holder.isdigit() else ""
                    raise CassetteError(
                        f"{shown} is being recorded by another session{pid}; only one "
                        "session at a time may record into a cassette: stop the other one, or "
                        "record into another file"
                    )
                if _same_file(path, descriptor):
                    os.ftruncate(descriptor, 0)  # the pid of a killed holder may be there
                    os.write(descriptor, f"{os.getpid()}\n".encode())
                    return cls(path, descriptor)
            except BaseException:
                os.close(descriptor)
                raise
            os.close(descriptor)  # released and removed meanwhile: lock the new file

    def release(self) -> None:
        """Remove the lock file and unlock it (closing it unlocks); again: nothing."""
        if self._descriptor is None:
            return
        with suppress(OSError):  # left behind, unlocked: the next session takes it over
            self.path.unlink(missing_ok=True)
        os.close(self._descriptor)
        self._descriptor = None

    def __del__(self) -> None:
        # A recorder dropped without close(): unlock (the file stays, and is taken over).
        if self._descriptor is not None:
            os.close(self._descriptor)


def _try_lock(descriptor: int) -> bool:
    if sys.platform == "win32":
        return True
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _same_file(path: Path, descriptor: int) -> bool:
    try:
        at_path = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(descriptor)
    return (at_path.st_dev, at_path.st_ino) == (held.st_dev, held.st_ino)
