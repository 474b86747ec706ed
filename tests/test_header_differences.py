"""header_differences against a reference that looks each expected header up on its own.

Names vary in case and repeat, in plain dicts and in multidicts, so the first-match-wins and
case-insensitive rules are exercised; the reference is the per-name scan the function replaced.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy

from providers.wire.common import ReceivedRequest, header_differences

_NAMES = st.sampled_from(
    ["Accept", "accept", "ACCEPT", "User-Agent", "user-agent", "X-A", "İ", "ß"]
)
_VALUES = st.sampled_from(["", "a", "b", "*/*"])
_PAIRS = st.lists(st.tuples(_NAMES, _VALUES), max_size=8)


def _reference(headers: Mapping[str, str], expected: Sequence[tuple[str, str]]) -> list[str]:
    problems = []
    for name, value in expected:
        got = next((v for k, v in headers.items() if k.lower() == name.lower()), None)
        if got is None:
            problems.append(f"missing header {name!r} (expected {value!r})")
        elif got != value:
            problems.append(f"header {name!r} is {got!r}, expected {value!r}")
    return problems


@given(received=_PAIRS, expected=_PAIRS, as_multidict=st.booleans())
def test_same_problems_as_looking_up_each_header(
    received: list[tuple[str, str]], expected: list[tuple[str, str]], as_multidict: bool
) -> None:
    headers: Mapping[str, str] = (
        CIMultiDictProxy(CIMultiDict(received)) if as_multidict else dict(received)
    )
    request = ReceivedRequest("POST", "/", headers, b"")
    assert header_differences(request, expected) == _reference(headers, expected)


def test_the_first_of_repeated_headers_counts_whatever_its_case() -> None:
    headers = CIMultiDictProxy(CIMultiDict([("ACCEPT", "first"), ("accept", "second")]))
    request = ReceivedRequest("POST", "/", headers, b"")
    assert header_differences(request, [("Accept", "first")]) == []
    assert header_differences(request, [("accept", "second")]) == [
        "header 'accept' is 'first', expected 'second'"
    ]
    assert header_differences(request, [("X-Gone", "v")]) == [
        "missing header 'X-Gone' (expected 'v')"
    ]
