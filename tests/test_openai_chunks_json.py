"""chunk_json writes exactly what json.dumps(ensure_ascii=False, compact separators) writes.

The reference builds the chunk object and serialises it with the standard library, for deltas
of any shape, any text (escapes, non-ASCII, lone surrogates), indexes of any int (and bool),
and finish reasons of every kind chunk_json is given.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from providers.wire.openai_chunks import chunk_json

_TEXT = st.text() | st.sampled_from(["", '"', "\\", "\n\t\u2028", "é😀", "\ud800", "</script>"])
_DELTAS = st.builds(lambda text: {"content": text}, _TEXT) | st.dictionaries(
    st.sampled_from(["content", "role", "x"]) | _TEXT, _TEXT, max_size=3
)
_INDEXES = st.integers() | st.booleans()
_REASONS = st.none() | _TEXT


def _reference(delta: Any, index: Any, model: Any, finish_reason: Any) -> str:
    chunk = {
        "id": f"chatcmpl-tapedeck-{index}",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }
    return json.dumps(chunk, ensure_ascii=False, separators=(",", ":"))


@given(delta=_DELTAS, index=_INDEXES, model=_TEXT, finish_reason=_REASONS)
def test_same_text_as_json_dumps(
    delta: dict[str, str], index: int, model: str, finish_reason: str | None
) -> None:
    expected = _reference(delta, index, model, finish_reason)
    assert chunk_json(delta, index=index, model=model, finish_reason=finish_reason) == expected


def test_a_content_delta_and_the_finish_chunk_look_like_openai_chunks() -> None:
    text = chunk_json({"content": 'a "b"'}, index=2, model="gpt-3.5-turbo")
    assert text == (
        '{"id":"chatcmpl-tapedeck-2","object":"chat.completion.chunk","created":1700000000,'
        '"model":"gpt-3.5-turbo","choices":[{"index":0,"delta":{"content":"a \\"b\\""},'
        '"finish_reason":null}]}'
    )
    assert json.loads(chunk_json({}, index=0, model="m", finish_reason="stop"))["choices"] == [
        {"index": 0, "delta": {}, "finish_reason": "stop"}
    ]
