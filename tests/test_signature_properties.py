"""Property and fuzz tests for the GetGpt signature codec.

Round trips for any Unicode text and any GetGpt-shaped conversation, a differential check against
the `cryptography` package for arbitrary key material, and h11's fuzz rule for the decrypt side:
any input either decrypts to UTF-8 bytes or raises SignatureError, never anything else.
Example counts come from the Hypothesis profiles in tests/conftest.py.
"""

from __future__ import annotations

import json
import re
import string
import uuid

from hypothesis import event, given
from hypothesis import strategies as st

from providers.errors import SignatureError
from providers.wire.signature import (
    decrypt_signature,
    encrypt_signature,
    signature_failure_reason,
)
from tests import aes_oracle as oracle
from tests.wire_literals import getgpt_plaintext

SIGNATURE_SHAPE = re.compile(r"(?:[0-9a-f]{32})+[0-9a-f]{16}[0-9a-f]{16}")
LOWER_HEX = "0123456789abcdef"

key_chars = st.text(alphabet=LOWER_HEX, min_size=16, max_size=16)
ascii_key_chars = st.text(alphabet=st.characters(max_codepoint=127), min_size=16, max_size=16)
roles = st.sampled_from(["system", "user", "assistant"]) | st.text(max_size=12)
conversations = st.lists(
    st.fixed_dictionaries({"role": roles, "content": st.text()}), min_size=1, max_size=6
)


@given(st.text())
def test_any_text_round_trips(text: str) -> None:
    plaintext = text.encode("utf-8")
    signature = encrypt_signature(plaintext)
    assert SIGNATURE_SHAPE.fullmatch(signature)
    assert len(signature) == 2 * (len(plaintext) + 16 - len(plaintext) % 16) + 32
    assert decrypt_signature(signature) == plaintext


@given(conversations, st.uuids(version=4), st.booleans())
def test_any_getgpt_conversation_round_trips(
    messages: list[dict[str, str]], request_id: uuid.UUID, ascii_only: bool
) -> None:
    body = getgpt_plaintext(messages, str(request_id))
    plaintext = json.dumps(body, ensure_ascii=ascii_only).encode("utf-8")
    recovered = decrypt_signature(encrypt_signature(plaintext))
    assert recovered == plaintext
    assert json.loads(recovered)["messages"] == messages


@given(st.text(), key_chars, key_chars)
def test_encrypt_matches_cryptography_for_any_key_material(text: str, key: str, iv: str) -> None:
    plaintext = text.encode("utf-8")
    expected = oracle.encrypt(plaintext, key, iv).hex() + key + iv
    assert encrypt_signature(plaintext, key_hex=key, iv_hex=iv) == expected


@given(st.text(max_size=64), ascii_key_chars, ascii_key_chars)
def test_lenient_mode_decrypts_any_ascii_key_material(text: str, key: str, iv: str) -> None:
    plaintext = text.encode("utf-8")
    signature = oracle.encrypt(plaintext, key, iv).hex() + key + iv
    assert decrypt_signature(signature, strict_key_chars=False) == plaintext
    outcome = _outcome(signature, strict=True)
    if set(key + iv) <= set(LOWER_HEX):
        assert outcome == plaintext
    else:
        assert isinstance(outcome, SignatureError)
        assert signature_failure_reason(outcome) == "key/iv characters are not lowercase hex"


@given(st.text(max_size=40))
def test_fresh_key_material_differs_between_calls(text: str) -> None:
    plaintext = text.encode("utf-8")
    first, second = encrypt_signature(plaintext), encrypt_signature(plaintext)
    # 64 random bits each: a collision here means the randomness is broken, not bad luck.
    assert first[-32:-16] != second[-32:-16]
    assert first[-16:] != second[-16:]
    assert first[-32:-16] != first[-16:]
    assert first[:-32] != second[:-32]


# --- fuzz: decrypt either succeeds or raises SignatureError ---------------------------------


def _outcome(value: object, *, strict: bool) -> bytes | SignatureError:
    """The plaintext, or the SignatureError; any other exception escapes and fails the test."""
    try:
        return decrypt_signature(value, strict_key_chars=strict)
    except SignatureError as error:
        return error


def _decrypts_or_rejects(value: object, strict: bool) -> None:
    outcome = _outcome(value, strict=strict)
    if isinstance(outcome, SignatureError):
        assert str(outcome) == "signature could not be decrypted"
        assert (outcome.code, outcome.status, outcome.field) == ("bad_signature", 400, "signature")
        assert signature_failure_reason(outcome)
        event(signature_failure_reason(outcome))
    else:
        event("decrypted")
        assert isinstance(outcome, bytes)
        outcome.decode("utf-8")


@given(st.text(), st.booleans())
def test_fuzz_any_text(value: str, strict: bool) -> None:
    _decrypts_or_rejects(value, strict)


# Mostly-valid shapes, so the later stages (block length, padding, UTF-8) are reached too.
hex_part = st.text(alphabet=string.hexdigits, min_size=32, max_size=130) | st.text(
    alphabet=string.hexdigits + " g\x00é", min_size=32, max_size=130
)
tail_chars = key_chars | ascii_key_chars | st.text(min_size=16, max_size=16)
hexish = st.builds(lambda body, key, iv: body + key + iv, hex_part, tail_chars, tail_chars)


@given(hexish, st.booleans())
def test_fuzz_hexish_text(value: str, strict: bool) -> None:
    _decrypts_or_rejects(value, strict)


@given(st.text(max_size=48), st.data(), st.booleans())
def test_fuzz_mutated_valid_signature(text: str, data: st.DataObject, strict: bool) -> None:
    signature = encrypt_signature(text.encode("utf-8"))
    index = data.draw(st.integers(0, len(signature) - 1), label="index")
    replacement = data.draw(st.sampled_from(LOWER_HEX) | st.characters(), label="replacement")
    cut = data.draw(st.integers(0, 2), label="cut")
    mutated = signature[:index] + replacement + signature[index + 1 :]
    _decrypts_or_rejects(mutated[: len(mutated) - cut], strict)


@given(
    st.none() | st.integers() | st.floats() | st.binary() | st.lists(st.text()) | st.booleans(),
    st.booleans(),
)
def test_fuzz_non_string_values(value: object, strict: bool) -> None:
    _decrypts_or_rejects(value, strict)
