"""Writing a growing cassette again and again, at the cost of what is new.

The recorder rewrites its cassette after every interaction. Dumping the whole document each time
costs about 0.3 ms of YAML work per interaction already recorded, so a long session spends
quadratic time, all of it holding the GIL in the writer thread while the proxy tries to relay
chunks. Every interaction is a separate item of the top-level ``interactions`` list, and the
dumper shares nothing between items (no anchors), so the file is exactly the document's head
followed by each item's text: :class:`CassetteWriter` dumps each interaction once, keeps its
text, and writes ``head + items`` atomically (:func:`cassettes.yamlio.write_atomic`). The bytes
are the ones :func:`cassettes.yamlio.dumps` gives for the whole cassette, except that the file
may end with a document-end marker (``...``) where a full dump would not have needed one; it
loads to the same cassette (tests check both).
"""

from __future__ import annotations

import os
from pathlib import Path

from cassettes import yamlio
from cassettes.model import Cassette, Interaction

_MARK = b"\ninteractions:\n"
# libyaml ends a document with "..." (document end) when a literal block that keeps its trailing
# newlines ("|+") left it open-ended; whether a later item closes it again depends on emitter
# state. The marker belongs at the end of the file, never between items, and is always allowed
# there: the file gets it when any item needed it alone.
_END = b"...\n"


class CassetteWriter:
    """Writes successive versions of one cassette to ``path``; interactions may only be added.

    Not thread-safe: one writer thread uses it.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._head: bytes | None = None
        self._head_of: tuple[object, ...] = ()
        self._items: list[bytes] = []
        self._ends: list[bool] = []  # whether each item, alone in a document, needed _END
        self._dumped: list[Interaction] = []

    def write(self, cassette: Cassette) -> None:
        """Replace the file with ``cassette``, atomically."""
        yamlio.write_atomic(self.path, self.render(cassette))

    def render(self, cassette: Cassette) -> bytes:
        """The file's bytes, dumping only interactions not seen before."""
        interactions = cassette.interactions
        if not interactions:
            return yamlio.dumps(cassette)
        head_of = (cassette.provenance, cassette.extra)
        known = len(self._dumped)
        if (
            head_of != self._head_of
            or known > len(interactions)
            or any(a is not b for a, b in zip(self._dumped, interactions, strict=False))
        ):
            self._reset()
            known = 0
        for interaction in interactions[known:]:
            head, item = self._dump(Cassette((interaction,), cassette.provenance, cassette.extra))
            if head is None:  # the layout is not the expected one: never guess
                self._reset()
                return yamlio.dumps(cassette)
            ends = item.endswith(b"\n" + _END)
            self._head, self._head_of = head, head_of
            self._items.append(item[: -len(_END)] if ends else item)
            self._ends.append(ends)
            self._dumped.append(interaction)
        assert self._head is not None
        return self._head + b"".join(self._items) + (_END if any(self._ends) else b"")

    def _reset(self) -> None:
        self._head, self._head_of = None, ()
        self._items.clear()
        self._ends.clear()
        self._dumped.clear()

    @staticmethod
    def _dump(single: Cassette) -> tuple[bytes | None, bytes]:
        text = yamlio.dumps(single)
        at = text.find(_MARK)
        if at < 0 or text.find(_MARK, at + 1) >= 0 or not text.endswith(b"\n"):
            return None, b""
        cut = at + len(_MARK)
        return text[:cut], text[cut:]
