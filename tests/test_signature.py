"""GetGpt signature codec against independent AES-CBC implementations.

Two oracles that share no code with ``providers.wire.signature`` (pycryptodome encrypts,
``cryptography`` decrypts): known-answer vectors made by the ``openssl`` CLI
(tests/vectors/make_getgpt_vectors.py), and the ``cryptography`` package, called live through
tests/aes_oracle.py with its own, hand-written signature layout and padding. The wire layout
(ciphertext hex, then key, then IV) is sliced by hand here, never with the code under test.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import padding

from providers.errors import InvalidRequestError, LocalProtocolError, SignatureError
from providers.wire.signature import (
    KEY_CHARS,
    decrypt_signature,
    encrypt_signature,
    new_key_material,
    signature_error,
    signature_failure_reason,
    split_signature,
)
from tests import aes_oracle as oracle

VECTORS_PATH = Path(__file__).parent / "vectors" / "getgpt_signature_vectors.json"
VECTORS: list[dict[str, Any]] = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))["vectors"]

KEY = "0123456789abcdef"
IV = "fedcba9876543210"


def _oracle_unpad(padded: bytes) -> bytes:
    unpadder = padding.PKCS7(128).unpadder()
    return unpadder.update(padded) + unpadder.finalize()


def _signature(ciphertext: bytes, key: str = KEY, iv: str = IV) -> str:
    return ciphertext.hex() + key + iv


def _vector_id(vector: dict[str, Any]) -> str:
    return str(vector["name"])


# --- known answers from openssl --------------------------------------------------------------


def test_vector_file_covers_every_padding_length_and_the_interesting_plaintexts() -> None:
    assert {v["pad_length"] for v in VECTORS} == set(range(1, 17))
    lengths = {len(bytes.fromhex(v["plaintext_hex"])) for v in VECTORS}
    assert set(range(32)) <= lengths
    names = {v["name"] for v in VECTORS}
    assert {"cyrillic-emoji", "getgpt-json-ascii", "getgpt-json-utf8"} <= names


@pytest.mark.parametrize("vector", VECTORS, ids=_vector_id)
def test_vector_is_self_consistent(vector: dict[str, Any]) -> None:
    plaintext = bytes.fromhex(vector["plaintext_hex"])
    ciphertext = bytes.fromhex(vector["ciphertext_hex"])
    assert plaintext == vector["plaintext"].encode("utf-8")
    assert len(ciphertext) == len(plaintext) + vector["pad_length"]
    assert (
        vector["signature"] == vector["ciphertext_hex"] + vector["key_chars"] + vector["iv_chars"]
    )


@pytest.mark.parametrize("vector", VECTORS, ids=_vector_id)
def test_decrypt_recovers_openssl_plaintext(vector: dict[str, Any]) -> None:
    assert decrypt_signature(vector["signature"]) == bytes.fromhex(vector["plaintext_hex"])


@pytest.mark.parametrize("vector", VECTORS, ids=_vector_id)
def test_encrypt_reproduces_openssl_signature(vector: dict[str, Any]) -> None:
    plaintext = bytes.fromhex(vector["plaintext_hex"])
    signature = encrypt_signature(plaintext, key_hex=vector["key_chars"], iv_hex=vector["iv_chars"])
    assert signature == vector["signature"]


@pytest.mark.parametrize("vector", VECTORS, ids=_vector_id)
def test_split_finds_openssl_parts(vector: dict[str, Any]) -> None:
    assert split_signature(vector["signature"]) == (
        bytes.fromhex(vector["ciphertext_hex"]),
        vector["key_chars"],
        vector["iv_chars"],
    )


@pytest.mark.parametrize("vector", VECTORS, ids=_vector_id)
def test_the_two_oracles_agree(vector: dict[str, Any]) -> None:
    # If this fails the vectors file is wrong, not the codec.
    plaintext = bytes.fromhex(vector["plaintext_hex"])
    ciphertext = oracle.encrypt(plaintext, vector["key_chars"], vector["iv_chars"])
    assert ciphertext.hex() == vector["ciphertext_hex"]


# --- live differential checks with `cryptography` --------------------------------------------

LIVE_PLAINTEXTS = [
    b"",
    b"x",
    "Привет, мир! 🌍".encode(),
    json.dumps({"messages": [{"role": "user", "content": "hi 👋"}], "stream": True}).encode(),
    bytes(range(128)) * 3,
]


@pytest.mark.parametrize("plaintext", LIVE_PLAINTEXTS)
def test_cryptography_decrypts_what_we_encrypt(plaintext: bytes) -> None:
    signature = encrypt_signature(plaintext)
    key, iv = signature[-32:-16], signature[-16:]
    ciphertext = bytes.fromhex(signature[:-32])
    assert _oracle_unpad(oracle.decrypt_raw(ciphertext, key, iv)) == plaintext


@pytest.mark.parametrize("plaintext", LIVE_PLAINTEXTS)
def test_we_decrypt_what_cryptography_encrypts(plaintext: bytes) -> None:
    key, iv = "a1b2c3d4e5f60718", "0f1e2d3c4b5a6978"
    assert decrypt_signature(_signature(oracle.encrypt(plaintext, key, iv), key, iv)) == plaintext


@pytest.mark.parametrize("pad_length", range(1, 17))
@pytest.mark.parametrize("full_blocks", [0, 1, 3])
def test_every_padding_length(pad_length: int, full_blocks: int) -> None:
    plaintext = b"p" * (16 * full_blocks + 16 - pad_length)
    signature = encrypt_signature(plaintext, key_hex=KEY, iv_hex=IV)
    ciphertext = bytes.fromhex(signature[:-32])
    assert len(ciphertext) == len(plaintext) + pad_length
    padded = oracle.decrypt_raw(ciphertext, KEY, IV)
    assert padded == plaintext + bytes([pad_length]) * pad_length
    assert decrypt_signature(signature) == plaintext


# --- key material ----------------------------------------------------------------------------


def test_new_key_material_hex_encodes_eight_bytes_each_key_first() -> None:
    requests: list[int] = []
    stream = iter(range(256))

    def counting(n: int) -> bytes:
        requests.append(n)
        return bytes(next(stream) for _ in range(n))

    assert new_key_material(counting) == ("0001020304050607", "08090a0b0c0d0e0f")
    assert requests == [8, 8]


def test_new_key_material_default_is_lowercase_hex() -> None:
    key, iv = new_key_material()
    for chars in (key, iv):
        assert len(chars) == KEY_CHARS == 16
        assert set(chars) <= set("0123456789abcdef")


def test_new_key_material_rejects_a_short_random_source() -> None:
    with pytest.raises(LocalProtocolError):
        new_key_material(lambda n: b"\x00" * (n - 1))


BAD_KEY_CHARS = [
    "0123456789ABCDEF",
    "0123456789abcde",
    "0123456789abcdef0",
    "0123456789abcdeg",
    "",
    "٠١٢٣٤٥٦٧٨٩abcdef",  # Arabic-Indic digits are str.isdigit() but not hex
    "0123456789abcde ",
]


@pytest.mark.parametrize("bad", BAD_KEY_CHARS)
@pytest.mark.parametrize("which", ["key_hex", "iv_hex"])
def test_encrypt_rejects_bad_key_material(bad: str, which: str) -> None:
    material = {"key_hex": KEY, "iv_hex": IV, which: bad}
    with pytest.raises(LocalProtocolError, match=which):
        encrypt_signature(b"hello", **material)


def test_encrypt_rejects_a_plaintext_the_server_could_not_accept() -> None:
    with pytest.raises(LocalProtocolError, match="UTF-8"):
        encrypt_signature(b"\xff", key_hex=KEY, iv_hex=IV)


def test_encrypt_keeps_given_key_and_draws_the_missing_iv() -> None:
    signature = encrypt_signature(b"hello", key_hex=KEY)
    assert signature[-32:-16] == KEY
    assert signature[-16:] != IV
    assert decrypt_signature(signature) == b"hello"


# --- malformed signatures: one public face, distinct private reasons -------------------------

_GOOD = oracle.encrypt(b"hello", KEY, IV)


def _bad_padding(last_block: bytes) -> str:
    return _signature(oracle.aes_cbc(b"B" * 16 + last_block, KEY, IV))


MALFORMED: list[tuple[str, object, bool, str]] = [
    ("none", None, True, "not a string"),
    ("int", 12345, True, "not a string"),
    ("bytes", _signature(_GOOD).encode(), True, "not a string"),
    ("empty", "", True, "empty"),
    ("short", "ab" * 10, True, "too short"),
    ("one-char-short", _signature(_GOOD)[1:], True, "too short"),
    ("odd-length-hex", "a" * 33 + KEY + IV, True, "odd-length hex"),
    ("non-hex-letters", "zz" + "0" * 30 + KEY + IV, True, "not hex"),
    ("whitespace-in-hex", "0 " * 16 + KEY + IV, True, "not hex"),
    ("non-ascii-digits", "٠" * 32 + KEY + IV, True, "not hex"),
    (
        "uppercase-key",
        _signature(_GOOD, KEY.upper()),
        True,
        "key/iv characters are not lowercase hex",
    ),
    (
        "uppercase-iv",
        _signature(_GOOD, KEY, IV.upper()),
        True,
        "key/iv characters are not lowercase hex",
    ),
    ("non-ascii-key", _signature(_GOOD, "é" * 16), False, "key/iv characters are not ASCII"),
    ("24-byte-ciphertext", "00" * 24 + KEY + IV, True, "ciphertext length not a multiple of 16"),
    ("17-byte-ciphertext", "00" * 17 + KEY + IV, True, "ciphertext length not a multiple of 16"),
    ("pad-byte-zero", _bad_padding(b"A" * 15 + b"\x00"), True, "bad PKCS#7 padding"),
    ("pad-byte-17", _bad_padding(b"A" * 15 + b"\x11"), True, "bad PKCS#7 padding"),
    (
        "pad-bytes-inconsistent",
        _bad_padding(b"A" * 13 + b"\x03\x02\x03"),
        True,
        "bad PKCS#7 padding",
    ),
    ("pad-longer-than-data", _bad_padding(b"\x20" * 16), True, "bad PKCS#7 padding"),
    (
        "invalid-utf8",
        _signature(oracle.encrypt(b"\xff\xfe", KEY, IV)),
        True,
        "plaintext is not UTF-8",
    ),
    (
        "cut-utf8",
        _signature(oracle.encrypt("é".encode()[:1], KEY, IV)),
        True,
        "plaintext is not UTF-8",
    ),
    (
        "utf8-surrogate",
        _signature(oracle.encrypt(b"\xed\xa0\x80", KEY, IV)),
        True,
        "plaintext is not UTF-8",
    ),
]


def _public_face(error: SignatureError) -> tuple[object, ...]:
    return (
        type(error),
        str(error),
        error.args,
        repr(error),
        error.code,
        error.status,
        error.field,
        json.dumps(error.to_json()),
    )


@pytest.mark.parametrize(
    ("value", "strict", "reason"), [row[1:] for row in MALFORMED], ids=[row[0] for row in MALFORMED]
)
def test_malformed_signature_is_rejected(value: object, strict: bool, reason: str) -> None:
    with pytest.raises(SignatureError) as caught:
        decrypt_signature(value, strict_key_chars=strict)
    error = caught.value
    assert isinstance(error, InvalidRequestError)
    assert isinstance(error, ValueError)
    assert str(error) == "signature could not be decrypted"
    assert (error.code, error.status, error.field) == ("bad_signature", 400, "signature")
    assert error.to_json() == {
        "error": {
            "code": "bad_signature",
            "message": "signature could not be decrypted",
            "field": "signature",
        }
    }
    # Nothing chained either: a traceback or log line must not tell the stages apart.
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__
    assert vars(error)["reason"] == reason
    assert signature_failure_reason(error) == reason


def test_all_failures_look_alike_from_outside_and_differ_inside() -> None:
    faces = set()
    reasons = set()
    for _, value, strict, _ in MALFORMED:
        with pytest.raises(SignatureError) as caught:
            decrypt_signature(value, strict_key_chars=strict)
        faces.add(_public_face(caught.value))
        reasons.add(signature_failure_reason(caught.value))
    assert len(faces) == 1
    assert len(reasons) == len({row[3] for row in MALFORMED}) == 10


def test_split_rejects_like_decrypt() -> None:
    with pytest.raises(SignatureError) as caught:
        split_signature("0" * 33 + KEY + IV)
    assert str(caught.value) == "signature could not be decrypted"
    assert signature_failure_reason(caught.value) == "odd-length hex"


def test_signature_error_factory_gives_later_stages_the_same_face() -> None:
    with pytest.raises(SignatureError) as caught:
        decrypt_signature("")
    later = signature_error("plaintext is not a JSON object")
    assert _public_face(later) == _public_face(caught.value)
    assert signature_failure_reason(later) == "plaintext is not a JSON object"


def test_reason_of_a_foreign_signature_error_is_empty() -> None:
    assert signature_failure_reason(SignatureError("elsewhere")) == ""


# --- strict_key_chars=False: what a real server would have accepted -------------------------


@pytest.mark.parametrize(
    ("key", "iv"), [(KEY.upper(), IV.upper()), ("!~ Zz{}|\\/-_=+*&", "\x00" * 16)]
)
def test_lenient_mode_uses_any_ascii_key_characters_as_bytes(key: str, iv: str) -> None:
    plaintext = "ключ 🔑".encode()
    signature = _signature(oracle.encrypt(plaintext, key, iv), key, iv)
    assert decrypt_signature(signature, strict_key_chars=False) == plaintext
    with pytest.raises(SignatureError):
        decrypt_signature(signature)


def test_ciphertext_hex_may_be_uppercase() -> None:
    signature = _GOOD.hex().upper() + KEY + IV
    assert decrypt_signature(signature) == b"hello"
