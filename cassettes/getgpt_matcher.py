"""Matching GetGpt requests, whose bodies differ on every call by construction.

A GetGpt request body is ``{"signature": hex(AES-CBC(plaintext)) + key + iv}`` with a fresh key,
IV and ``uuid`` inside the plaintext each time, so two calls for the same conversation never
share a byte of body. :func:`getgpt_body` decrypts the signature, drops ``uuid`` and returns the
canonical JSON of what is left: the same conversation gives the same part, another prompt or
option gives another one, and a mismatch is explained field by field (``messages``) like any
JSON body, because the part has the default normaliser's ``("json", text)`` shape.

The signature is decrypted leniently (any 16 ASCII key/IV characters), as the real server did: a
replay should answer whatever the real site answered, not judge the client. A body that does not
decrypt is compared as the default normaliser compares it (canonical JSON, else bytes), so it
still matches an identical recording and its mismatch still reads sensibly.

:func:`tapedeck_matcher` is the :class:`~cassettes.matchers.Matcher` with this registered, used
by the replay server and the pytest plugin; :func:`register_getgpt` registers the same matchers
on a ``vcr.VCR`` for plain vcrpy users.
"""

from __future__ import annotations

import json
from collections.abc import Hashable
from typing import Any

from cassettes import vcr_compat
from cassettes.matchers import DEFAULT_MATCH_ON, MATCHERS, BodyNormalisers, Matcher, json_body
from cassettes.model import RecordedRequest
from cassettes.scrub import DEFAULT_POLICY, ScrubPolicy
from providers.errors import SignatureError
from providers.wire.getgpt import CODEC
from providers.wire.signature import decrypt_signature

__all__ = [
    "GETGPT_PATH",
    "add_getgpt",
    "getgpt_body",
    "getgpt_plaintext",
    "register_getgpt",
    "tapedeck_matcher",
]

#: The path whose bodies :func:`getgpt_body` normalises.
GETGPT_PATH = CODEC.chat_path
#: Plaintext fields that differ on every call by design and never decide a match.
VOLATILE_FIELDS = frozenset({"uuid"})


def getgpt_plaintext(body: bytes | None) -> dict[str, Any] | None:
    """The decrypted plaintext object of a GetGpt request body, or None if it has none."""
    try:
        outer = json.loads(body or b"")
        if not isinstance(outer, dict):
            return None
        inner = json.loads(decrypt_signature(outer.get("signature"), strict_key_chars=False))
    except (ValueError, RecursionError, SignatureError):
        return None
    return inner if isinstance(inner, dict) else None


def getgpt_body(request: RecordedRequest) -> Hashable:
    """``("json", canonical plaintext without uuid)``; the default body part if it won't decrypt.

    >>> getgpt_body(RecordedRequest("POST", "/api/chat/stream", body=b"[]"))
    ('json', '[]')
    """
    plaintext = getgpt_plaintext(request.body)
    if plaintext is None:
        return json_body(request)
    kept = {key: value for key, value in plaintext.items() if key not in VOLATILE_FIELDS}
    return ("json", json.dumps(kept, sort_keys=True, separators=(",", ":"), ensure_ascii=False))


def add_getgpt(normalisers: BodyNormalisers) -> BodyNormalisers:
    """Register :func:`getgpt_body` for GetGpt's chat path on ``normalisers``; returns them."""
    normalisers.register(getgpt_body, path=GETGPT_PATH)
    return normalisers


def tapedeck_matcher(
    match_on: tuple[str, ...] = DEFAULT_MATCH_ON, scrub: ScrubPolicy | None = DEFAULT_POLICY
) -> Matcher:
    """Tapedeck's matcher: method, path, query and body, with every provider's normaliser."""
    return Matcher(match_on, add_getgpt(BodyNormalisers()), scrub)


def register_getgpt(vcr: Any, *, matcher: Matcher | None = None) -> tuple[str, ...]:
    """Register Tapedeck's matchers on a ``vcr.VCR``, GetGpt's decrypting body matcher included.

    The names are those of :func:`cassettes.vcr_compat.register` (``tapedeck`` for the whole key,
    ``tapedeck_body`` for the body alone, ...), so this replaces a plain registration::

        my_vcr = vcr.VCR(match_on=["tapedeck"])
        register_getgpt(my_vcr)
        with my_vcr.use_cassette("getgpt.yaml", record_mode="none"): ...
    """
    matcher = matcher or tapedeck_matcher()
    names = []
    for name in (*MATCHERS, "all"):
        function = vcr_compat.vcr_matcher(name, matcher)
        vcr.register_matcher(function.__name__, function)
        names.append(function.__name__)
    return tuple(names)
