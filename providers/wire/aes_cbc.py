"""Raw AES-128-CBC decryption of whole blocks, with as little set-up per call as OpenSSL allows.

A fake decrypts every GetGpt request, and a signature is a few blocks: the work is the set-up.
``cryptography``'s ``Cipher(...).decryptor()`` builds and checks three Python objects and a new
OpenSSL context per call: 3.7 µs in a tight loop, and measured ~20 µs per request in a busy fake
(``tapedeck bench``'s GetGpt short-reply row, where it was the largest share of the fake's own
work). So when the process can load OpenSSL 3's ``libcrypto`` (the one Python's ``ssl`` module
uses), this module calls it through :mod:`ctypes`: the cipher is fetched once, and contexts
(with their output buffers) are kept and only re-keyed with each key and IV: 1.6-1.9 µs in the
loop, and ~10 µs less per request in the fake (server CPU per reply in that row: ~110 -> ~100 µs
in row-only runs). Otherwise ``cryptography`` does the same work.

Both give the same bytes or the fast path is not used: it must decrypt NIST SP 800-38A's
CBC-AES128 vector exactly before its first use, and tests compare the two on random input. No
padding is removed here (the caller checks PKCS#7 itself, to say what was wrong).

The calls hold the GIL (``ctypes.PyDLL``): each lasts about a microsecond, and a context taken
from the pool belongs to one caller until it is put back, so threads never share one mid-call.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys
from collections.abc import Callable, Iterator

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

#: Bytes of an AES-128 key, and of an AES block (so of a CBC IV).
KEY_BYTES = 16

#: NIST SP 800-38A, F.2.2 CBC-AES128.Decrypt: key, IV, ciphertext, plaintext (hex).
NIST_CBC_AES128 = (
    "2b7e151628aed2a6abf7158809cf4f3c",
    "000102030405060708090a0b0c0d0e0f",
    "7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2"
    "73bed6b8e3c1743b7116e69e222295163ff1caa1681fac09120eca307586e1a7",
    "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"
    "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710",
)
#: OpenSSL 3's libcrypto by its versioned file names (Linux, macOS), tried first as the loader
#: finds them (Python's own ssl module has usually loaded it already), then in Python's lib
#: folder (python.org's macOS builds ship it there). Never an unversioned name and never
#: ctypes.util.find_library's answer: on macOS that is /usr/lib/libcrypto.dylib, a stub whose
#: loading aborts the process ("Invalid dylib load"), before any exception could be caught.
_LIBCRYPTO_NAMES = ("libcrypto.so.3", "libcrypto.3.dylib")
_OPENSSL_3 = 0x30000000


def decrypt_with_cryptography(ciphertext: bytes, key: bytes, iv: bytes) -> bytes:
    """Whole blocks of ``ciphertext`` decrypted with ``cryptography`` (no unpadding)."""
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    # Whole blocks in, so update() returns every byte; finalize() only releases the context.
    return decryptor.update(ciphertext) + decryptor.finalize()


class LibcryptoCBC:
    """AES-128-CBC decryption straight through a loaded libcrypto (OpenSSL 3 API)."""

    def __init__(self, library: ctypes.CDLL) -> None:
        c_int, c_void_p, c_char_p = ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p
        version = library.OpenSSL_version_num
        version.argtypes, version.restype = [], ctypes.c_ulong
        if version() < _OPENSSL_3:
            raise OSError(f"libcrypto {version():#x} predates OpenSSL 3's EVP_CIPHER_fetch")
        signatures: dict[str, tuple[list[type], type | None]] = {
            "EVP_CIPHER_fetch": ([c_void_p, c_char_p, c_char_p], c_void_p),
            "EVP_CIPHER_CTX_new": ([], c_void_p),
            "EVP_DecryptInit_ex2": ([c_void_p, c_void_p, c_char_p, c_char_p, c_void_p], c_int),
            "EVP_CIPHER_CTX_set_padding": ([c_void_p, c_int], c_int),
            "EVP_DecryptUpdate": (
                [c_void_p, c_char_p, ctypes.POINTER(c_int), c_char_p, c_int],
                c_int,
            ),
        }
        for name, (argtypes, restype) in signatures.items():
            function = getattr(library, name)
            function.argtypes, function.restype = argtypes, restype
        self._new_context: Callable[[], int | None] = library.EVP_CIPHER_CTX_new
        self._init = library.EVP_DecryptInit_ex2
        self._set_padding = library.EVP_CIPHER_CTX_set_padding
        self._update = library.EVP_DecryptUpdate
        # Fetched once: an implicit fetch (EVP_aes_128_cbc()) would look it up on every init.
        self._cipher = library.EVP_CIPHER_fetch(None, b"AES-128-CBC", None)
        if not self._cipher:
            raise OSError("libcrypto has no AES-128-CBC")
        self._idle: list[_Context] = []  # contexts not in use; list.pop/append are atomic

    def decrypt(self, ciphertext: bytes, key: bytes, iv: bytes) -> bytes:
        """Whole blocks of ``ciphertext`` decrypted (no unpadding); OSError if OpenSSL refuses."""
        # The C side reads exactly 16 bytes of each and a whole number of blocks: checked here,
        # so no call can read past a Python buffer whatever the caller passed.
        size = len(ciphertext)
        if len(key) != KEY_BYTES or len(iv) != KEY_BYTES or size % KEY_BYTES:
            raise ValueError("AES-128-CBC needs a 16-byte key and IV and whole 16-byte blocks")
        try:
            context = self._idle.pop()
        except IndexError:
            context = self._fresh_context()
        try:
            # No cipher given: the context keeps the one it was made with, its provider state
            # and its padding setting, and only takes the new key and IV (OpenSSL's documented
            # way to re-key; it saves a provider context per call, ~40% of the call's time).
            if self._init(context.pointer, None, key, iv, None) != 1:
                raise OSError("EVP_DecryptInit_ex2 failed")
            out, view = context.room_for(size)
            if self._update(context.pointer, out, context.written_ref, ciphertext, size) != 1:
                raise OSError("EVP_DecryptUpdate failed")
            written = context.written.value
            if written != size:
                raise OSError(f"EVP_DecryptUpdate wrote {written} of {size} bytes")
            return view[:written].tobytes()
        finally:
            self._idle.append(context)

    def _fresh_context(self) -> _Context:
        pointer = self._new_context()
        if not pointer:
            raise OSError("EVP_CIPHER_CTX_new failed")
        # The cipher once, without key or IV; padding off for good, so every byte comes out of
        # update() and no final call is needed (the caller checks PKCS#7 itself).
        if self._init(pointer, self._cipher, None, None, None) != 1:
            raise OSError("EVP_DecryptInit_ex2 failed")
        self._set_padding(pointer, 0)
        return _Context(pointer)


class _Context:
    """One EVP_CIPHER_CTX with its output buffer, owned by one caller at a time.

    The buffer grows to the largest signature seen, up to :data:`_KEPT_BUFFER_BYTES`; a larger
    one gets a buffer of its own for that call, so a single huge request pins no memory.
    """

    __slots__ = ("_buffer", "_view", "pointer", "written", "written_ref")

    def __init__(self, pointer: int) -> None:
        self.pointer = pointer
        self.written = ctypes.c_int()
        self.written_ref = ctypes.byref(self.written)
        self._buffer = ctypes.create_string_buffer(_FIRST_BUFFER_BYTES)
        self._view = memoryview(self._buffer).cast("B")  # slices copy n bytes, not the buffer

    def room_for(self, size: int) -> tuple[ctypes.Array[ctypes.c_char], memoryview]:
        """A buffer for ``size`` input bytes: OpenSSL asks for one block more than the input."""
        needed = size + KEY_BYTES
        if needed <= len(self._buffer):
            return self._buffer, self._view
        buffer = ctypes.create_string_buffer(needed)
        view = memoryview(buffer).cast("B")
        if needed <= _KEPT_BUFFER_BYTES:
            self._buffer, self._view = buffer, view
        return buffer, view


_FIRST_BUFFER_BYTES = 4096
_KEPT_BUFFER_BYTES = 1024 * 1024


def load_libcrypto() -> LibcryptoCBC | None:
    """The libcrypto fast path, checked against the NIST vector; None where it cannot be had."""
    for name in _libcrypto_candidates():
        try:
            fast = LibcryptoCBC(ctypes.PyDLL(name))
            key, iv, ciphertext, plaintext = (bytes.fromhex(part) for part in NIST_CBC_AES128)
            if fast.decrypt(ciphertext, key, iv) == plaintext:
                return fast
        except (OSError, AttributeError):  # not there, too old, or lacking a function
            continue
    return None


def _libcrypto_candidates() -> Iterator[str]:
    yield from _LIBCRYPTO_NAMES
    for name in _LIBCRYPTO_NAMES:
        beside_python = os.path.join(sys.base_prefix, "lib", name)
        if os.path.isfile(beside_python):
            yield beside_python


@functools.cache
def _decrypt_function() -> Callable[[bytes, bytes, bytes], bytes]:
    fast = load_libcrypto()
    if fast is None:
        return decrypt_with_cryptography
    fast_decrypt = fast.decrypt

    def decrypt(ciphertext: bytes, key: bytes, iv: bytes) -> bytes:
        try:
            return fast_decrypt(ciphertext, key, iv)
        except OSError:  # OpenSSL refused (out of memory, say): the slower path still works
            return decrypt_with_cryptography(ciphertext, key, iv)

    return decrypt


def backend_name() -> str:
    """Which implementation :func:`decrypt_blocks` uses: ``"libcrypto"`` or ``"cryptography"``."""
    return "cryptography" if _decrypt_function() is decrypt_with_cryptography else "libcrypto"


def decrypt_blocks(ciphertext: bytes, key: bytes, iv: bytes) -> bytes:
    """Whole 16-byte blocks of ``ciphertext`` decrypted with AES-128-CBC (no unpadding)."""
    return _decrypt_function()(ciphertext, key, iv)
