"""OpenAI-style ``chat.completion.chunk`` frames, as GetGpt and CodeLinkAva streamed them.

Encoding is for the fakes (with every framing quirk a test may want); decoding of one chunk's
JSON is shared by both adapters' correct decoders.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from providers.errors import MalformedReplyError, excerpt
from providers.wire.common import Framing

DONE = "[DONE]"
_CREATED = 1_700_000_000  # fixed so recorded cassettes do not change from run to run


def chunk_json(
    delta: dict[str, str], *, index: int, model: str, finish_reason: str | None = None
) -> str:
    """One chunk object, serialised compactly the way OpenAI-compatible servers did."""
    chunk: dict[str, Any] = {
        "id": f"chatcmpl-tapedeck-{index}",
        "object": "chat.completion.chunk",
        "created": _CREATED,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }
    return json.dumps(chunk, ensure_ascii=False, separators=(",", ":"))


def encode_events(pieces: Sequence[str], framing: Framing, *, model: str) -> list[bytes]:
    """``data:`` events for the pieces, one frame per event, shaped by ``framing``."""
    newline = "\r\n" if framing.crlf else "\n"
    end = newline * 2
    payloads: list[str] = []
    if framing.role_first_delta:
        payloads.append(chunk_json({"role": "assistant"}, index=0, model=model))
    if framing.empty_first_delta:
        payloads.append(chunk_json({"content": ""}, index=0, model=model))
    payloads.extend(
        chunk_json({"content": piece}, index=i, model=model) for i, piece in enumerate(pieces)
    )
    if framing.finish_chunk:
        payloads.append(chunk_json({}, index=len(pieces), model=model, finish_reason="stop"))

    frames: list[bytes] = []
    for payload in payloads:
        if framing.keepalive_comments:
            frames.append(f": keep-alive{end}".encode())
        frames.append(f"data: {payload}{end}".encode(framing.text_encoding))
    done_frame = f"data: {DONE}{end}".encode()
    if framing.done in ("once", "then-content"):
        frames.append(done_frame)
    elif framing.done == "twice":
        frames.extend([done_frame, done_frame])
    if framing.done == "then-content":
        after = chunk_json({"content": "AFTER-DONE"}, index=len(pieces) + 1, model=model)
        frames.append(f"data: {after}{end}".encode())
    if not framing.last_line_newline and frames:
        frames[-1] = frames[-1].rstrip(b"\r\n")
    return frames


def delta_content(payload: str) -> str | None:
    """``choices[0].delta.content`` of one chunk's JSON (None when the delta has no content).

    Raises :class:`MalformedReplyError` naming what is wrong, with an excerpt of the payload.
    """
    try:
        chunk = json.loads(payload)
    except json.JSONDecodeError as exc:
        raise MalformedReplyError(
            f"a data line is not JSON ({exc.msg}): {excerpt(payload, 120)}"
        ) from None
    try:
        delta = chunk["choices"][0]["delta"]
    except (KeyError, IndexError, TypeError):
        raise MalformedReplyError(
            f"a chunk has no choices[0].delta: {excerpt(payload, 120)}"
        ) from None
    if not isinstance(delta, dict):
        raise MalformedReplyError(f"choices[0].delta is not an object: {excerpt(payload, 120)}")
    content = delta.get("content")
    if content is not None and not isinstance(content, str):
        raise MalformedReplyError(f"delta.content is not a string: {excerpt(payload, 120)}")
    return content
