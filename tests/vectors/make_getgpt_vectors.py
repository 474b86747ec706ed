"""Regenerate ``getgpt_signature_vectors.json`` with the ``openssl`` command-line tool.

A dev tool, not run by the test suite. It deliberately imports nothing from ``providers``: the
vectors must come from an implementation independent of the code they check. Run from the repo
root::

    python tests/vectors/make_getgpt_vectors.py

``openssl enc -aes-128-cbc -K <hex> -iv <hex>`` pads with PKCS#7 by default and, given ``-K``,
uses no salt and no key derivation. The GetGpt key is the 16 *ASCII characters* of a hex string,
so ``-K`` gets the hex of those characters (``"01"`` -> ``"3031"``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

OUTPUT = Path(__file__).with_name("getgpt_signature_vectors.json")
BLOCK = 16

# (key characters, iv characters): the GetGpt client only ever produced lowercase hex.
KEY_PAIRS = (
    ("0123456789abcdef", "fedcba9876543210"),
    ("3f9a0c27d41be856", "a0b1c2d3e4f50617"),
    ("0000000000000000", "ffffffffffffffff"),
)

_ASCII_SOURCE = "The quick brown fox jumps over the lazy dog; 0123456789!"

# The request body the original client encrypted: default json.dumps separators, ASCII escapes.
_GETGPT_BODY = {
    "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Привет! Как дела? 👋"},
    ],
    "frequency_penalty": 0,
    "max_tokens": 4000,
    "model": "gpt-3.5-turbo",
    "presence_penalty": 0,
    "temperature": 1,
    "top_p": 1,
    "stream": True,
    "uuid": "5b0f6f3c-6a9e-4c1e-9d59-2f3cbb1c4a7e",
}


def _plaintexts() -> list[tuple[str, bytes]]:
    """Named plaintexts: every length 0..48 (so every pad length 1..16 at least three times)."""
    cases = [(f"ascii-{n}", _ASCII_SOURCE.encode("ascii")[:n]) for n in range(49)]
    cases += [
        ("cyrillic-emoji", "Привет, мир! 🌍🚀".encode()),
        ("cjk-combining", "日本語テキスト e\u0301 ñ 𝄞".encode()),
        ("nul-and-controls", b"a\x00b\x01\x7f\n\t"),
        ("getgpt-json-ascii", json.dumps(_GETGPT_BODY).encode("ascii")),
        ("getgpt-json-utf8", json.dumps(_GETGPT_BODY, ensure_ascii=False).encode("utf-8")),
    ]
    return cases


def _openssl_encrypt(plaintext: bytes, key_chars: str, iv_chars: str) -> bytes:
    command = [
        "openssl",
        "enc",
        "-aes-128-cbc",
        "-e",
        "-K",
        key_chars.encode("ascii").hex(),
        "-iv",
        iv_chars.encode("ascii").hex(),
    ]
    result = subprocess.run(command, input=plaintext, capture_output=True, check=True)
    return result.stdout


def _openssl_version() -> str:
    result = subprocess.run(["openssl", "version"], capture_output=True, text=True, check=True)
    return result.stdout.strip()


def build() -> dict[str, Any]:
    """All vectors, as the JSON document to write."""
    vectors = []
    for index, (name, plaintext) in enumerate(_plaintexts()):
        key_chars, iv_chars = KEY_PAIRS[index % len(KEY_PAIRS)]
        ciphertext = _openssl_encrypt(plaintext, key_chars, iv_chars)
        vectors.append(
            {
                "name": name,
                "key_chars": key_chars,
                "iv_chars": iv_chars,
                "plaintext": plaintext.decode("utf-8"),
                "plaintext_hex": plaintext.hex(),
                "pad_length": BLOCK - len(plaintext) % BLOCK,
                "ciphertext_hex": ciphertext.hex(),
                "signature": ciphertext.hex() + key_chars + iv_chars,
            }
        )
    return {
        "about": (
            "GetGpt signature known-answer vectors: AES-128-CBC, PKCS#7, key and IV are the "
            "ASCII bytes of 16 hex characters; signature = hex(ciphertext) + key + iv."
        ),
        "generator": "tests/vectors/make_getgpt_vectors.py",
        "implementation": _openssl_version(),
        "vectors": vectors,
    }


def main() -> int:
    document = build()
    OUTPUT.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {len(document['vectors'])} vectors to {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
