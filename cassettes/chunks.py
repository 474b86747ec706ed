"""Chunk plans: where a streamed body was cut, and when each piece arrived.

A plan is a list of :class:`Chunk` (size in bytes, arrival offset in milliseconds after the
request was sent). It is valid for a body when every size is positive (a zero-length write would
end a chunked HTTP body), offsets are finite, non-negative and non-decreasing, and the sizes add
up to exactly the body length.

:class:`ChunkPlan` stores the sizes and offsets as two plain lists and makes ``Chunk`` objects
only when asked. A long stream has hundreds of chunks per response; parsing, checking and keeping
them as lists costs no Python code per chunk, which is what keeps loading a large cassette
cheaper than vcrpy's loader (which does not look at the plan at all).

On disk a plan is one line of text, ``12@0.0 30@1.5``: see :meth:`ChunkPlan.text`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from itertools import repeat
from typing import Any, NamedTuple, overload

from providers.errors import CassetteFormatError

_NUMBERS = {int, float}


class Chunk(NamedTuple):
    """One piece of a streamed body: ``size`` bytes that arrived ``offset_ms`` after the request."""

    size: int
    offset_ms: float


class ChunkPlan(Sequence[Chunk]):
    """An immutable sequence of chunks, equal to any sequence of the same chunks."""

    __slots__ = ("_checked_for", "_offsets", "_sizes")

    def __init__(self, chunks: Iterable[Chunk] = ()) -> None:
        pairs = list(chunks)
        self._sizes: list[int] = [size for size, _ in pairs]
        self._offsets: list[float] = [offset for _, offset in pairs]
        self._checked_for = -1  # the body length this plan was last found valid for

    @classmethod
    def checked(
        cls, body_length: int, sizes: list[int], offsets: list[float], *, numeric: bool = False
    ) -> ChunkPlan:
        """A plan taking ownership of two parallel lists, checked for ``body_length`` bytes.

        ``numeric=True`` promises the lists hold only ints and floats (they came out of int() and
        float()), which skips two passes over them.
        """
        plan = cls.__new__(cls)
        plan._sizes, plan._offsets, plan._checked_for = sizes, offsets, -1
        if len(sizes) != len(offsets):
            raise CassetteFormatError(f"{len(sizes)} chunk sizes but {len(offsets)} offsets")
        plan.check(body_length, numeric=numeric)
        return plan

    @classmethod
    def from_sizes(
        cls, sizes: Sequence[int], offsets_ms: Sequence[float] | None = None
    ) -> ChunkPlan:
        """A plan for the given sizes; offsets default to 0 (everything at once)."""
        offsets = [0.0] * len(sizes) if offsets_ms is None else [float(o) for o in offsets_ms]
        if len(offsets) != len(sizes):
            raise CassetteFormatError(f"{len(sizes)} chunk sizes but {len(offsets)} offsets")
        plan = cls.__new__(cls)
        plan._sizes, plan._offsets, plan._checked_for = list(sizes), offsets, -1
        return plan

    @classmethod
    def parse(cls, text: str, body_length: int) -> ChunkPlan:
        """The plan written as ``12@0.0 30@1.5``, checked for a body of ``body_length`` bytes."""
        numbers = text.replace("@", " ").split()
        try:
            sizes, offsets = list(map(int, numbers[0::2])), list(map(float, numbers[1::2]))
        except ValueError:
            sizes, offsets = [], [0.0]  # reported just below
        if len(sizes) != len(offsets) or text.count("@") != len(sizes):
            raise CassetteFormatError(
                "a chunk plan reads like '12@0.0 30@1.5' (bytes@milliseconds)"
            )
        return cls.checked(body_length, sizes, offsets, numeric=True)

    def text(self) -> str:
        """``12@0.0 30@1.5``: each chunk's size and offset, shortest exact float form."""
        # "+ 0.0" turns -0.0 (a valid, equal offset) into 0.0, which the syntax can spell.
        pairs = zip(self._sizes, self._offsets, strict=True)
        return " ".join([f"{size}@{float(offset) + 0.0!r}" for size, offset in pairs])

    @property
    def sizes(self) -> tuple[int, ...]:
        """Chunk sizes in bytes, in order."""
        return tuple(self._sizes)

    @property
    def offsets_ms(self) -> tuple[float, ...]:
        """Arrival offsets in milliseconds, in order."""
        return tuple(self._offsets)

    def check(self, body_length: int, *, numeric: bool = False) -> None:
        """Raise :class:`CassetteFormatError` unless this is a valid plan for the body."""
        if self._checked_for == body_length:
            return
        sizes, offsets = self._sizes, self._offsets
        if not sizes:
            if body_length:
                raise CassetteFormatError(f"no chunks, but the body has {body_length} bytes")
        elif not (  # whole-list checks that run in C; _explain finds the culprit
            (numeric or (set(map(type, sizes)) == {int} and set(map(type, offsets)) <= _NUMBERS))
            and min(sizes) > 0
            and all(map(math.isfinite, offsets))
            and offsets[0] >= 0
            and offsets == sorted(offsets)
            and sum(sizes) == body_length
        ):
            self._explain(body_length)
        self._checked_for = body_length

    def _explain(self, body_length: int) -> None:
        total, last = 0, 0.0
        for number, (size, offset) in enumerate(self):
            if type(size) is not int or size <= 0:
                raise CassetteFormatError(
                    f"chunk {number}: size must be a positive int, got {size!r}"
                )
            if type(offset) not in (float, int) or not (math.isfinite(offset) and offset >= last):
                raise CassetteFormatError(
                    f"chunk {number}: offset_ms must be finite and not before the previous chunk "
                    f"({last!r}), got {offset!r}"
                )
            total, last = total + size, offset
        raise CassetteFormatError(
            f"chunk sizes add up to {total} bytes but the body has {body_length}"
        )

    def __len__(self) -> int:
        return len(self._sizes)

    @overload
    def __getitem__(self, index: int) -> Chunk: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[Chunk, ...]: ...

    def __getitem__(self, index: int | slice) -> Chunk | tuple[Chunk, ...]:
        if isinstance(index, slice):
            return tuple(self)[index]
        return Chunk(self._sizes[index], self._offsets[index])

    def __iter__(self) -> Iterator[Chunk]:
        # tuple.__new__ on the named tuple class: no Python code per chunk.
        pairs = zip(self._sizes, self._offsets, strict=True)
        chunks: Iterator[Chunk] = map(tuple.__new__, repeat(Chunk), pairs)
        return chunks

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ChunkPlan):
            return self._sizes == other._sizes and self._offsets == other._offsets
        if isinstance(other, Sequence) and not isinstance(other, str | bytes):
            return len(other) == len(self) and list(self) == list(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash((tuple(self._sizes), tuple(self._offsets)))

    def __repr__(self) -> str:
        return f"ChunkPlan({list(self)!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (ChunkPlan.from_sizes, (self._sizes, self._offsets))
