"""GetGpt's encrypted ``signature``: AES-128-CBC with the key and IV appended in the clear.

The original client drew 8 random bytes for the key and 8 for the IV, wrote each as 16 lowercase
hex characters, and used those 16 *ASCII characters* (not the 8 bytes) as the AES-128 key and the
CBC IV. The UTF-8 plaintext is PKCS#7 padded (always 1-16 bytes added) and encrypted; the wire
value is ``hex(ciphertext) + key_chars + iv_chars``. A server takes the key from
``signature[-32:-16]``, the IV from ``signature[-16:]`` and hex-decodes the rest.

Pure functions, no I/O. The adapter uses :func:`encrypt_signature`, the fake uses
:func:`decrypt_signature`.

Two AES implementations, on purpose: encryption uses pycryptodome, as the original client did;
decryption (the fake, once per request) uses OpenSSL, called as directly as the process allows
(:mod:`providers.wire.aes_cbc`): ~1.8 µs per signature in a loop against ``cryptography``'s 3.7 µs
and pycryptodome's ~11 µs (all of it per-call cipher set-up), which was the largest single share
of the GetGpt fake's own work when ``tapedeck bench`` was profiled. The PKCS#7 check is done
here, by hand, so both only ever do raw AES-CBC.

Not a padding oracle: every way a signature can fail to decrypt raises a
:class:`~providers.errors.SignatureError` with the *same* public message, code, field and status,
and without a chained cause. The precise reason (for logs and tests, never for the HTTP reply) is
kept on the exception as ``reason`` and read with :func:`signature_failure_reason`; later stages
(e.g. a plaintext that is not the expected JSON) raise through :func:`signature_error` to look
the same.

Strictness (decided here): with ``strict_key_chars=True`` (the default, used by the strict fake)
the key and IV characters must be lowercase hex, because the original client never produced
anything else, so anything else means a client that deviates from it. A real server just used the
characters' bytes, so ``strict_key_chars=False`` accepts any 16 ASCII characters (non-ASCII
characters cannot make a 16-byte key and are always rejected). The ciphertext part is hex in
either letter case in both modes: its case does not change the bytes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable

from Crypto.Cipher import AES
from Crypto.Util.Padding import pad

from providers.errors import LocalProtocolError, SignatureError
from providers.wire.aes_cbc import decrypt_blocks

#: Characters of key (and of IV) material at the end of a signature.
KEY_CHARS = 16
#: What every decrypt-stage failure says in public (HTTP body, ``str(error)``).
PUBLIC_MESSAGE = "signature could not be decrypted"
#: The ``code`` of every decrypt-stage failure.
ERROR_CODE = "bad_signature"

_BLOCK = AES.block_size  # 16 bytes
_RANDOM_BYTES = KEY_CHARS // 2  # the original hex-encoded 8 random bytes into 16 characters
_LOWER_HEX = frozenset("0123456789abcdef")
# Exactly the 22 hex characters: classifies a ciphertext part that bytes.fromhex refused.
_ANY_HEX_RUN = re.compile("[0-9a-fA-F]*")
# One ciphertext block (32 hex characters) plus the key and IV characters.
_MIN_LENGTH = 2 * _BLOCK + 2 * KEY_CHARS
# The only valid PKCS#7 tails, indexed by their length: n bytes of value n, for n in 1..16.
_PADDING_TAILS = tuple(bytes([n]) * n for n in range(_BLOCK + 1))


def new_key_material(randbytes: Callable[[int], bytes] = os.urandom) -> tuple[str, str]:
    """Fresh ``(key_hex, iv_hex)``: 16 lowercase hex characters each, key drawn first.

    ``randbytes`` is injectable so tests can pin the material; it is asked for 8 bytes per value.

    >>> new_key_material(lambda n: bytes(n))
    ('0000000000000000', '0000000000000000')
    """
    key_hex = randbytes(_RANDOM_BYTES).hex()
    iv_hex = randbytes(_RANDOM_BYTES).hex()
    _require_key_chars(key_hex, "key_hex")
    _require_key_chars(iv_hex, "iv_hex")
    return key_hex, iv_hex


def encrypt_signature(
    plaintext: bytes, *, key_hex: str | None = None, iv_hex: str | None = None
) -> str:
    """The ``signature`` the original GetGpt client sent for ``plaintext``.

    Missing key or IV characters are drawn fresh from :func:`os.urandom`. Raises
    :class:`~providers.errors.LocalProtocolError` for key/IV characters that are not 16 lowercase
    hex characters, and for a plaintext that is not UTF-8 (the server could never accept it, so
    the encrypt side's domain is exactly the decrypt side's range).
    """
    if key_hex is None or iv_hex is None:
        fresh_key, fresh_iv = new_key_material()
        key_hex = fresh_key if key_hex is None else key_hex
        iv_hex = fresh_iv if iv_hex is None else iv_hex
    _require_key_chars(key_hex, "key_hex")
    _require_key_chars(iv_hex, "iv_hex")
    try:
        bytes(plaintext).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LocalProtocolError(
            f"GetGpt plaintext must be UTF-8 (invalid byte at offset {exc.start})"
        ) from None
    cipher = AES.new(key_hex.encode("ascii"), AES.MODE_CBC, iv=iv_hex.encode("ascii"))
    ciphertext = cipher.encrypt(pad(bytes(plaintext), _BLOCK, style="pkcs7"))
    return ciphertext.hex() + key_hex + iv_hex


def split_signature(signature: object, *, strict_key_chars: bool = True) -> tuple[bytes, str, str]:
    """Cut a signature into ``(ciphertext, key_hex, iv_hex)`` the way a server did.

    Checks everything that can be checked without the key: a string of at least 64 characters,
    key/IV characters (see the module docstring for ``strict_key_chars``), and a ciphertext part
    of whole AES blocks in hex. Raises :class:`~providers.errors.SignatureError`.
    """
    if not isinstance(signature, str):
        raise signature_error("not a string")
    if not signature:
        raise signature_error("empty")
    if len(signature) < _MIN_LENGTH:
        raise signature_error("too short")
    hex_part = signature[: -2 * KEY_CHARS]
    key_hex = signature[-2 * KEY_CHARS : -KEY_CHARS]
    iv_hex = signature[-KEY_CHARS:]
    for chars in (key_hex, iv_hex):
        if strict_key_chars and not _LOWER_HEX.issuperset(chars):
            raise signature_error("key/iv characters are not lowercase hex")
        if not chars.isascii():
            raise signature_error("key/iv characters are not ASCII")
    try:
        ciphertext: bytes | None = bytes.fromhex(hex_part)
    except ValueError:
        ciphertext = None
    # bytes.fromhex also skips whitespace, which would leave fewer bytes than half the
    # characters; only then (and on a ValueError) is the slower character check needed, to
    # say which way the part is not hex.
    if ciphertext is None or 2 * len(ciphertext) != len(hex_part):
        if _ANY_HEX_RUN.fullmatch(hex_part) is None:
            raise signature_error("not hex")
        raise signature_error("odd-length hex")
    if len(ciphertext) % _BLOCK:
        raise signature_error("ciphertext length not a multiple of 16")
    return ciphertext, key_hex, iv_hex


def decrypt_signature(signature: object, *, strict_key_chars: bool = True) -> bytes:
    """The UTF-8 plaintext bytes inside ``signature``; raises SignatureError otherwise.

    Accepts any object so that a fake can pass the JSON field through unchecked: a missing or
    ``null`` signature (the later, non-encrypting client) fails here like any other.
    """
    ciphertext, key_hex, iv_hex = split_signature(signature, strict_key_chars=strict_key_chars)
    # Whole blocks (split_signature checked) of raw AES-CBC; the padding is checked below.
    padded = decrypt_blocks(ciphertext, key_hex.encode("ascii"), iv_hex.encode("ascii"))
    pad_length = padded[-1]
    if not 1 <= pad_length <= _BLOCK or not padded.endswith(_PADDING_TAILS[pad_length]):
        raise signature_error("bad PKCS#7 padding")
    plaintext = padded[:-pad_length]
    try:
        plaintext.decode("utf-8")
    except UnicodeDecodeError:
        raise signature_error("plaintext is not UTF-8") from None
    return plaintext


def signature_failure_reason(error: SignatureError) -> str:
    """The internal reason a signature was rejected ('' for one not raised by this module)."""
    reason = getattr(error, "reason", "")
    return reason if isinstance(reason, str) else ""


def signature_error(reason: str) -> SignatureError:
    """The one public face of every decrypt-stage failure, with the private ``reason`` attached.

    Public so that a codec can reject a plaintext that decrypted but is unusable (not JSON, wrong
    shape) with the very same answer, keeping that stage indistinguishable from the others.
    """
    error = SignatureError(PUBLIC_MESSAGE, status=400, code=ERROR_CODE, field="signature")
    # SignatureError does not declare `reason` (errors.py is not ours to edit); setattr keeps
    # mypy --strict quiet until it does, and stays correct after.
    setattr(error, "reason", reason)  # noqa: B010
    return error


def _require_key_chars(value: object, name: str) -> None:
    if not (isinstance(value, str) and len(value) == KEY_CHARS and _LOWER_HEX.issuperset(value)):
        raise LocalProtocolError(
            f"GetGpt {name} must be {KEY_CHARS} lowercase hex characters, got {value!r}"
        )
