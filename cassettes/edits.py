"""Editing a streamed body without breaking its chunk plan.

An edit replaces ``body[start:end]`` with new bytes. Scrubbing uses edits to cut secrets out of
recorded responses; the chunk plan has to follow, or the replay would cut the new body at the old
positions. The rule: a chunk boundary after an edit shifts by the change in length; a boundary
inside an edited span moves to the end of the replacement, so the replacement travels whole in
the chunk where the original span started. Chunks left empty disappear (a zero-length chunk would
end a chunked HTTP body); the others keep their arrival offsets.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from cassettes.model import Chunk

Edit = tuple[int, int, bytes]


def without_overlaps(edits: Iterable[Edit]) -> list[Edit]:
    """The edits sorted by position, dropping any that overlaps an earlier one."""
    kept: list[Edit] = []
    for edit in sorted(set(edits)):
        if not kept or edit[0] >= kept[-1][1]:
            kept.append(edit)
    return kept


def apply_edits(
    body: bytes, chunks: Sequence[Chunk], edits: Sequence[Edit]
) -> tuple[bytes, tuple[Chunk, ...]]:
    """The edited body and its moved chunk plan. ``edits`` must be sorted and not overlap."""
    if not edits:
        return body, tuple(chunks)
    pieces, position = [], 0
    for start, end, replacement in edits:
        if start < position or end < start or end > len(body):
            raise ValueError(f"edit {start}:{end} is out of order or outside the body")
        pieces += [body[position:start], replacement]
        position = end
    pieces.append(body[position:])
    new_body = b"".join(pieces)
    moved: list[Chunk] = []
    old_end = new_start = 0
    for chunk in chunks:
        old_end += chunk.size
        new_end = _moved(old_end, edits) if old_end < len(body) else len(new_body)
        if new_end > new_start:
            moved.append(Chunk(new_end - new_start, chunk.offset_ms))
            new_start = new_end
    return new_body, tuple(moved)


def _moved(boundary: int, edits: Sequence[Edit]) -> int:
    shift = 0
    for start, end, replacement in edits:
        if end <= boundary:
            shift += len(replacement) - (end - start)
        elif start < boundary:
            return start + shift + len(replacement)
        else:
            break
    return boundary + shift
