"""providers.wire.aes_cbc: the libcrypto fast path and its cryptography fallback agree exactly."""

from __future__ import annotations

import ctypes
import re
import threading
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from providers.wire import aes_cbc
from providers.wire.aes_cbc import LibcryptoCBC, decrypt_with_cryptography, load_libcrypto


def _openssl3_is_here() -> bool:
    """Whether this machine has an OpenSSL 3 libcrypto at all, asked without our module.

    The skip depends on this, not on our loader: a loader that breaks must fail these tests
    (FAST is None then), never skip them.
    """
    for name in aes_cbc._LIBCRYPTO_NAMES:
        try:
            version = ctypes.CDLL(name).OpenSSL_version_num
        except (OSError, AttributeError):
            continue
        version.restype = ctypes.c_ulong
        return bool(version() >= 0x30000000)
    return False


FAST = load_libcrypto()
needs_libcrypto = pytest.mark.skipif(
    not _openssl3_is_here(), reason="no OpenSSL 3 libcrypto on this machine"
)
NIST = tuple(bytes.fromhex(part) for part in aes_cbc.NIST_CBC_AES128)
keys = st.binary(min_size=16, max_size=16)
blocks = st.integers(min_value=0, max_value=40).flatmap(
    lambda count: st.binary(min_size=16 * count, max_size=16 * count)
)


def implementations() -> list[Callable[[bytes, bytes, bytes], bytes]]:
    found: list[Callable[[bytes, bytes, bytes], bytes]] = [
        decrypt_with_cryptography,
        aes_cbc.decrypt_blocks,
    ]
    return found if FAST is None else [*found, FAST.decrypt]


@pytest.fixture
def fresh_choice() -> Iterator[None]:
    """Let a test change how the implementation is chosen, and choose afresh after it."""
    aes_cbc._decrypt_function.cache_clear()
    yield
    aes_cbc._decrypt_function.cache_clear()


@pytest.mark.parametrize("decrypt", implementations(), ids=lambda f: f.__qualname__)
def test_nist_sp800_38a_cbc_aes128_vector(decrypt: Callable[[bytes, bytes, bytes], bytes]) -> None:
    key, iv, ciphertext, plaintext = NIST
    assert decrypt(ciphertext, key, iv) == plaintext
    # Block by block: the IV of each block is the ciphertext block before it.
    assert decrypt(ciphertext[16:32], key, ciphertext[:16]) == plaintext[16:32]


@needs_libcrypto
def test_this_machine_uses_the_fast_path() -> None:
    assert FAST is not None, "OpenSSL 3 is here, but load_libcrypto() refused it"
    assert aes_cbc.backend_name() == "libcrypto"


@needs_libcrypto
@given(ciphertext=blocks, key=keys, iv=keys)
def test_libcrypto_and_cryptography_agree(ciphertext: bytes, key: bytes, iv: bytes) -> None:
    assert FAST is not None
    assert FAST.decrypt(ciphertext, key, iv) == decrypt_with_cryptography(ciphertext, key, iv)


@needs_libcrypto
def test_libcrypto_handles_signatures_of_any_size() -> None:
    # In turn: the first buffer, one grown and kept, a one-off beyond 1 MiB, the kept one again.
    assert FAST is not None
    key, iv = b"k" * 16, b"i" * 16
    for blocks in (1, 300, 70_000, 2):
        ciphertext = (bytes(range(256)) * (blocks // 16 + 1))[: 16 * blocks]
        assert FAST.decrypt(ciphertext, key, iv) == decrypt_with_cryptography(ciphertext, key, iv)


@needs_libcrypto
@pytest.mark.parametrize(
    ("ciphertext", "key", "iv"),
    [
        (b"x" * 15, b"k" * 16, b"i" * 16),
        (b"x" * 16, b"k" * 15, b"i" * 16),
        (b"x" * 16, b"k" * 16, b"i" * 17),
    ],
)
def test_libcrypto_refuses_what_it_would_read_past(
    ciphertext: bytes, key: bytes, iv: bytes
) -> None:
    assert FAST is not None
    with pytest.raises(ValueError, match="16-byte"):
        FAST.decrypt(ciphertext, key, iv)


@needs_libcrypto
def test_threads_never_share_a_context() -> None:
    # Each thread decrypts its own messages with its own key; a context shared mid-call would
    # give one thread another's key schedule or IV.
    assert FAST is not None
    wrong: list[int] = []

    def work(seed: int) -> None:
        key, iv = bytes([seed]) * 16, bytes([seed + 1]) * 16
        message = bytes(range(seed, seed + 64))
        ciphertext = _encrypt(message, key, iv)
        for _ in range(2000):
            if FAST.decrypt(ciphertext, key, iv) != message:
                wrong.append(seed)
                return

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []


def test_without_libcrypto_cryptography_does_the_work(
    monkeypatch: pytest.MonkeyPatch, fresh_choice: None
) -> None:
    monkeypatch.setattr(aes_cbc, "_LIBCRYPTO_NAMES", ("libcrypto-that-is-not-there.so.3",))
    assert load_libcrypto() is None
    assert aes_cbc.backend_name() == "cryptography"
    key, iv, ciphertext, plaintext = NIST
    assert aes_cbc.decrypt_blocks(ciphertext, key, iv) == plaintext


@needs_libcrypto
def test_a_call_openssl_refuses_falls_back(
    monkeypatch: pytest.MonkeyPatch, fresh_choice: None
) -> None:
    refusing = load_libcrypto()
    assert refusing is not None
    monkeypatch.setattr(refusing, "_init", lambda *arguments: 0)  # EVP_DecryptInit_ex2 failed
    with pytest.raises(OSError, match="EVP_DecryptInit_ex2"):
        refusing.decrypt(NIST[2], NIST[0], NIST[1])
    monkeypatch.setattr(aes_cbc, "load_libcrypto", lambda: refusing)
    assert aes_cbc.backend_name() == "libcrypto"
    key, iv, ciphertext, plaintext = NIST
    assert aes_cbc.decrypt_blocks(ciphertext, key, iv) == plaintext


@needs_libcrypto
def test_a_library_that_decrypts_wrongly_is_not_used(
    monkeypatch: pytest.MonkeyPatch, fresh_choice: None
) -> None:
    # The NIST check at load is what stands between a mis-declared C call and the fakes.
    real = LibcryptoCBC.decrypt

    def garble(self: LibcryptoCBC, ciphertext: bytes, key: bytes, iv: bytes) -> bytes:
        return bytes(b ^ 1 for b in real(self, ciphertext, key, iv))

    monkeypatch.setattr(LibcryptoCBC, "decrypt", garble)
    assert load_libcrypto() is None
    assert aes_cbc.backend_name() == "cryptography"


def _encrypt(message: bytes, key: bytes, iv: bytes) -> bytes:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return encryptor.update(message) + encryptor.finalize()


def test_only_versioned_libcrypto_files_are_ever_opened() -> None:
    # An unversioned libcrypto can be macOS's stub, which aborts the process when loaded (no
    # exception to catch), so the candidates never include one, nor a library search's answer.
    candidates = list(aes_cbc._libcrypto_candidates())
    assert candidates
    for candidate in candidates:
        assert re.search(r"(^|/)libcrypto\.(so\.3|3\.dylib)$", candidate), candidate
