"""loads_strict, with its shared decoder, behaves exactly as json.loads with parse_constant.

The reference is the standard library call the function stood for: same value, or the same
exception type and message, for text, for bytes in every encoding json.loads detects, with
BOMs, NaN/Infinity and hostile nesting.
"""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from providers.wire.common import loads_strict

_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=8,
)
_ATOMS = ["{", "}", "[", "]", ",", ":", '"a"', "1", "-0.5e3", "NaN", "Infinity", "-Infinity"]
_TEXTS = (
    _JSON_VALUES.map(json.dumps)
    | st.lists(st.sampled_from(_ATOMS), max_size=8).map("".join)
    | st.text(max_size=12)
)
_BOMS = st.sampled_from(["", "\ufeff", "\ufeff\ufeff"])
# Whitespace around a value takes loads_strict off its scanner-only fast path.
_PADS = st.sampled_from(["", " ", "\n", "\t \r\n", "\x0c"])
_ENCODINGS = st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32"])


def _reject(name: str) -> object:
    raise ValueError(f"{name} is not a JSON value")


def _outcome(load: object, value: object) -> str:
    try:
        return repr(load(value))  # type: ignore[operator]
    except (ValueError, RecursionError, TypeError) as error:
        return f"{type(error).__name__}: {error}"


def _reference(value: object) -> object:
    return json.loads(value, parse_constant=_reject)  # type: ignore[arg-type]


@given(text=_TEXTS, bom=_BOMS, before=_PADS, after=_PADS)
def test_text_like_json_loads(text: str, bom: str, before: str, after: str) -> None:
    document = bom + before + text + after
    assert _outcome(loads_strict, document) == _outcome(_reference, document)


@given(text=_TEXTS, bom=_BOMS, encoding=_ENCODINGS, as_bytearray=st.booleans(), after=_PADS)
def test_bytes_like_json_loads(
    text: str, bom: str, encoding: str, as_bytearray: bool, after: str
) -> None:
    try:
        data: bytes | bytearray = (bom + text + after).encode(encoding, "surrogatepass")
    except UnicodeEncodeError:
        return
    if as_bytearray:
        data = bytearray(data)
    assert _outcome(loads_strict, data) == _outcome(_reference, data)


def test_deep_nesting_and_other_types_fail_the_same_way() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    assert _outcome(loads_strict, deep) == _outcome(_reference, deep)
    assert _outcome(loads_strict, 3) == _outcome(_reference, 3)
    assert _outcome(loads_strict, "NaN") == "ValueError: NaN is not a JSON value"
