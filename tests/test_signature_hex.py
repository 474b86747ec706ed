"""split_signature's "not hex" check against the plain definition: every character one of the 22.

Ciphertext parts mix hex with characters a looser test would let through (whitespace that
bytes.fromhex skips, Unicode digits, full-width letters, a trailing newline that ``$`` forgives).
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from providers.errors import SignatureError
from providers.wire.signature import signature_failure_reason, split_signature

HEX = "0123456789abcdefABCDEF"
KEY_AND_IV = "0123456789abcdef" * 2
_NEAR_HEX = st.sampled_from([" ", "\n", "\t", "g", "G", "x", "\u0660", "\uff21", "\u00e9", "-"])
_PARTS = st.lists(st.sampled_from(HEX) | _NEAR_HEX, min_size=32, max_size=80).map("".join)


def _expected_reason(hex_part: str) -> str:
    if any(char not in HEX for char in hex_part):
        return "not hex"
    if len(hex_part) % 2:
        return "odd-length hex"
    if len(hex_part) % 32:
        return "ciphertext length not a multiple of 16"
    return ""


@given(hex_part=_PARTS | st.text(alphabet=HEX, min_size=32, max_size=96))
def test_hex_part_is_judged_character_by_character(hex_part: str) -> None:
    expected = _expected_reason(hex_part)
    if not expected:
        ciphertext, _, _ = split_signature(hex_part + KEY_AND_IV)
        assert ciphertext == bytes.fromhex(hex_part)
        return
    with pytest.raises(SignatureError) as caught:
        split_signature(hex_part + KEY_AND_IV)
    assert signature_failure_reason(caught.value) == expected
