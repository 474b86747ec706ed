"""GetGpt's AES-128-CBC, done with the `cryptography` package: the oracle for signature tests.

Tests build and open expected signatures here, never with ``providers.wire.signature``, so an
expectation never comes from the code under test: the signature layout (ciphertext hex, then the
16 key characters, then the 16 IV characters) and the padding check are written out by hand, from
docs/PROTOCOLS.md. The adapter encrypts with pycryptodome, another library than this one. The fake
decrypts with ``cryptography`` too (for speed), so for that direction the AES primitive itself is
shared; it is pinned independently by the openssl-CLI vectors in tests/vectors.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

#: Key and IV characters used wherever a test pins GetGpt's randomness.
KEY_CHARS = "0123456789abcdef"
IV_CHARS = "fedcba9876543210"


def _cipher(key: str, iv: str) -> Cipher[modes.CBC]:
    # GetGpt's AES key and IV are the 16 ASCII characters themselves, not the bytes they spell.
    return Cipher(algorithms.AES(key.encode("ascii")), modes.CBC(iv.encode("ascii")))


def aes_cbc(blocks: bytes, key: str = KEY_CHARS, iv: str = IV_CHARS) -> bytes:
    """Raw AES-128-CBC of whole blocks: no padding is added (so a test can choose bad padding)."""
    encryptor = _cipher(key, iv).encryptor()
    return encryptor.update(blocks) + encryptor.finalize()


def decrypt_raw(ciphertext: bytes, key: str = KEY_CHARS, iv: str = IV_CHARS) -> bytes:
    """Raw AES-128-CBC decryption: the padding is left on, so a test can check its bytes."""
    decryptor = _cipher(key, iv).decryptor()
    return decryptor.update(ciphertext) + decryptor.finalize()


def encrypt(plaintext: bytes, key: str = KEY_CHARS, iv: str = IV_CHARS) -> bytes:
    """AES-128-CBC with PKCS#7 padding (1..16 bytes always added), as the GetGpt client did."""
    padder = padding.PKCS7(128).padder()
    return aes_cbc(padder.update(plaintext) + padder.finalize(), key, iv)


def seal(plaintext: bytes, key: str = KEY_CHARS, iv: str = IV_CHARS) -> str:
    """A GetGpt ``signature``: hex(encrypt(plaintext)) + key characters + IV characters."""
    return encrypt(plaintext, key, iv).hex() + key + iv


def unseal(signature: str) -> bytes:
    """The plaintext of a signature, checking by hand that its PKCS#7 padding is well formed."""
    key, iv = signature[-32:-16], signature[-16:]
    padded = decrypt_raw(bytes.fromhex(signature[:-32]), key, iv)
    assert 1 <= padded[-1] <= 16
    assert padded.endswith(bytes([padded[-1]]) * padded[-1])
    return padded[: -padded[-1]]
