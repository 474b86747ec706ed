"""Handles: the convenient face of a running fake for one test (what the pytest fixtures give).

A :class:`FakeHandle` wraps one :class:`~fake_upstreams.server.FakeServer` that outlives the test
(the fixtures share one fleet per session) and adds short verbs for what tests do most::

    fake.script(text="Hello world", chunking={"kind": "every", "size": 3})
    fake.queue({"http_error": "rate-limit"})   # the next call gets a 429, later ones the script
    fake.strictness = "lenient"
    entry = fake.journal[-1]                   # JournalEntry: headers, body, plaintext, verdict

Script fields may be given as plain data (exactly what a scenario file or the control endpoint
takes) or as the typed objects (``ChunkPlan``, ``Framing``, ``Fault``, bytes); either way they go
through :meth:`ResponseScript.from_dict`, so a typo fails with a ``ValueError`` naming the key
(and :meth:`ResponseScript.check_sendable`: so does a script no fake could send).
"""

from __future__ import annotations

import base64
import dataclasses
import time
from collections.abc import Iterator, Mapping
from typing import Any, get_args

from fake_upstreams.app import FakeState, Strictness
from fake_upstreams.chunking import ChunkPlan
from fake_upstreams.faults import Fault
from fake_upstreams.journal import JournalEntry
from fake_upstreams.registry import FakeSpec, spec_for
from fake_upstreams.script import ResponseScript, framing_to_dict
from fake_upstreams.server import FakeServer
from providers.errors import FakeUpstreamError
from providers.wire.common import Framing

STRICTNESS_LEVELS: tuple[Strictness, ...] = get_args(Strictness)
#: How long the fixtures wait for replies still being finished before judging or resetting.
SETTLE_SECONDS = 2.0
_POLL = 0.005
ScriptLike = ResponseScript | Mapping[str, Any]


def check_strictness(value: object) -> Strictness:
    """``value`` if it is a strictness level, else ``ValueError`` listing the levels."""
    for level in STRICTNESS_LEVELS:
        if value == level:
            return level
    raise ValueError(f"strictness must be one of {', '.join(STRICTNESS_LEVELS)}, got {value!r}")


class FakeHandle:
    """One running fake, as a test sees it. Cheap to make; holds no state of its own."""

    def __init__(self, name: str, server: FakeServer, *, default_strictness: Strictness) -> None:
        self.name = name
        self.server = server
        self.default_strictness = check_strictness(default_strictness)
        self._reported_errors = 0

    def __repr__(self) -> str:
        return f"<FakeHandle {self.name} {self.url} {self.strictness}>"

    @property
    def spec(self) -> FakeSpec:
        return spec_for(self.name)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``: pass it as an adapter's ``base_url``."""
        return self.server.url

    @property
    def state(self) -> FakeState:
        """The live :class:`FakeState` (scripts, journal, strictness) shared with the server."""
        return self.server.state

    @property
    def journal(self) -> list[JournalEntry]:
        """A fresh snapshot of every request this fake received in this test, oldest first."""
        return self.state.journal.entries

    @property
    def strictness(self) -> Strictness:
        return self.state.strictness

    @strictness.setter
    def strictness(self, value: Strictness) -> None:
        self.state.strictness = check_strictness(value)

    def script(self, script: ScriptLike | None = None, /, **fields: Any) -> ResponseScript:
        """Set the reply for every later call (queued scripts still come first); returns it.

        ``fake.script()`` restores the default echo reply.
        """
        if script is not None and fields:
            raise TypeError("give a script or script fields, not both")
        chosen = to_script(script if script is not None else fields)
        scripts = self.state.scripts
        scripts.replace(scripts.pending, chosen)
        return chosen

    def queue(self, *scripts: ScriptLike) -> tuple[ResponseScript, ...]:
        """Queue one script per next call (call 1, call 2, ...), after those already queued."""
        loaded = tuple(to_script(item) for item in scripts)
        self.state.scripts.push(*loaded)
        return loaded

    def busy(self) -> bool:
        """True while a request is still being handled (its journal outcome is "pending")."""
        return any(entry.outcome == "pending" for entry in self.state.journal.entries)

    def settle(self, timeout: float = SETTLE_SECONDS) -> bool:
        """Wait until no request is being handled; False if ``timeout`` passed first.

        A client can have its whole reply while the handler has yet to record the outcome; a
        journal cleared in between would get that late update in the next test's entries.
        """
        deadline = time.monotonic() + timeout
        while self.busy():
            if time.monotonic() >= deadline:
                return False
            time.sleep(_POLL)
        return True

    def reset(self) -> None:
        """Forget scripts and journal and go back to the default strictness."""
        self.state.reset()
        self.state.strictness = self.default_strictness
        self._reported_errors = 0

    def raise_new_errors(self) -> None:
        """Raise handler errors not raised before (each one is reported to one test only)."""
        __tracebackhide__ = True  # pytest: show the test and the handler, not this plumbing
        count = len(self.state.journal.errors)
        if count > self._reported_errors:
            self._reported_errors = count
            try:
                self.state.journal.raise_errors()
            except FakeUpstreamError as error:
                error.add_note(f"(in the {self.name} fake at {self.url})")
                raise


def to_script(value: ScriptLike) -> ResponseScript:
    """A :class:`ResponseScript` from itself or from fields, plain or typed."""
    if isinstance(value, ResponseScript):
        script = value
    elif isinstance(value, Mapping):
        script = ResponseScript.from_dict({key: _plain(item) for key, item in value.items()})
    else:
        raise TypeError(f"a script is a ResponseScript or a mapping, got {type(value).__name__}")
    # A script no fake could ever send fails here, in the test that wrote it, rather than as a
    # 400 script_does_not_fit in whatever request comes next.
    script.check_sendable()
    return script


def _plain(value: object) -> object:
    # Typed objects back to the plain data from_dict reads, so there is one loading path.
    if isinstance(value, ChunkPlan | Fault):
        return value.to_dict()
    if isinstance(value, Framing):
        return framing_to_dict(value)
    if isinstance(value, bytes):
        return {"base64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if dataclasses.is_dataclass(value):
        raise TypeError(f"cannot use a {type(value).__name__} as a script field")
    return value


class FakeUpstreams(Mapping[str, FakeHandle]):
    """Every fake of a fleet by name (``fakes["GetGpt"]``; names are case-insensitive)."""

    def __init__(self, handles: Mapping[str, FakeHandle]) -> None:
        self._handles = dict(handles)

    def __getitem__(self, name: str) -> FakeHandle:
        if name in self._handles:
            return self._handles[name]
        return self._handles[spec_for(name).name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._handles)

    def __len__(self) -> int:
        return len(self._handles)

    def __repr__(self) -> str:
        return f"<FakeUpstreams {self.urls}>"

    @property
    def urls(self) -> dict[str, str]:
        return {name: handle.url for name, handle in self._handles.items()}

    def settle(self, timeout: float = SETTLE_SECONDS) -> bool:
        """Wait (``timeout`` in all) until no fake is handling a request."""
        deadline = time.monotonic() + timeout
        return all(
            handle.settle(max(0.0, deadline - time.monotonic()))
            for handle in self._handles.values()
        )

    def reset(self) -> None:
        for handle in self._handles.values():
            handle.reset()

    def raise_new_errors(self) -> None:
        """Raise every fake's new handler errors as one (see FakeHandle.raise_new_errors)."""
        __tracebackhide__ = True
        failures: list[FakeUpstreamError] = []
        for handle in self._handles.values():
            try:
                handle.raise_new_errors()
            except FakeUpstreamError as error:
                failures.append(error)
        if failures:
            first = failures[0]
            for other in failures[1:]:
                notes = " ".join(getattr(other, "__notes__", ()))
                first.add_note(f"and also: {other} {notes}")
            raise first
