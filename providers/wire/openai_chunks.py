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


#: json.dumps(..., ensure_ascii=False, separators=(",", ":")) builds this encoder on every call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
#: The compact serialisation of the chunk object below, with its variable parts as holes.
_CHUNK = (
    '{"id":"chatcmpl-tapedeck-%d","object":"chat.completion.chunk","created":%d,"model":%s,'
    '"choices":[{"index":0,"delta":%s,"finish_reason":%s}]}'
)


def chunk_json(
    delta: dict[str, str], *, index: int, model: str, finish_reason: str | None = None
) -> str:
    """One chunk object, serialised compactly the way OpenAI-compatible servers did."""
    if type(index) is int and type(model) is str and type(finish_reason) in (str, type(None)):
        # The same text json.dumps gives (tests/test_openai_chunks_json.py), without building
        # and walking the whole object: a fake encodes one of these per SSE event.
        return _CHUNK % (
            index,
            _CREATED,
            _ENCODER.encode(model),
            _delta_json(delta),
            "null" if finish_reason is None else _ENCODER.encode(finish_reason),
        )
    chunk: dict[str, Any] = {
        "id": f"chatcmpl-tapedeck-{index}",
        "object": "chat.completion.chunk",
        "created": _CREATED,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }
    return _ENCODER.encode(chunk)


def _delta_json(delta: dict[str, str]) -> str:
    if type(delta) is dict and len(delta) == 1 and type(delta.get("content")) is str:
        return '{"content":' + _ENCODER.encode(delta["content"]) + "}"
    return _ENCODER.encode(delta)


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
