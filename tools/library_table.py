"""What the shipped cassettes hold: per cassette, the scripted calls and what each must give.

Expected outcomes are written here by hand from the scripts (the text a fake was told to send,
the error docs/PROTOCOLS.md says a failure maps to), never taken from the adapter: ``make_library``
checks the adapter against them while recording, and the replay tests check replays against
them (``cassettes/library/expected.json`` holds the same table as data).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fake_upstreams.chunking import ChunkPlan
from fake_upstreams.script import ResponseScript
from providers import PROVIDERS, Provider
from providers.wire.common import Framing
from providers.wire.getgpt import GetGptCodec

#: The delay the fakes put between chunks: small, so regenerating is quick, yet visible when a
#: replay plays the recorded timing.
_GAP = 0.005


@dataclass(frozen=True)
class Call:
    """One adapter call: a single user message, the fake's script, the expected outcome.

    ``expect`` is ``{"text": ...}`` for a success (correct decoding), or ``{"error": class name,
    ...attributes}``; ``legacy_text`` where the original's decoding gives something else.
    """

    prompt: str
    script: ResponseScript
    expect: dict[str, Any]
    model: str = ""

    @property
    def messages(self) -> tuple[Mapping[str, str], ...]:
        return ({"role": "user", "content": self.prompt},)


@dataclass(frozen=True)
class Entry:
    """One cassette file: which provider, why it exists, the calls recorded in it."""

    file: str
    provider: str
    about: str
    calls: tuple[Call, ...] = field(default_factory=tuple)


def legacy_aivvm(chunks: list[bytes]) -> str:
    """The original Aivvm decoding, written out independently: every HTTP chunk decoded as
    UTF-8, or with ``unicode-escape`` where that fails (docs/PROTOCOLS.md)."""
    pieces = []
    for chunk in chunks:
        try:
            pieces.append(chunk.decode("utf-8"))
        except UnicodeDecodeError:
            pieces.append(chunk.decode("unicode-escape"))
    return "".join(pieces)


def _cut_inside_characters(text: str) -> list[bytes]:
    # Independent of the fake's plan code: a new chunk at every UTF-8 continuation byte.
    chunks: list[bytearray] = []
    for byte in text.encode("utf-8"):
        if not chunks or byte & 0xC0 == 0x80:
            chunks.append(bytearray())
        chunks[-1].append(byte)
    return [bytes(chunk) for chunk in chunks]


def _text(text: str, **script: Any) -> tuple[ResponseScript, dict[str, Any]]:
    return ResponseScript(text=text, chunk_delay=_GAP, **script), {"text": text}


_HELLO = "Hello! Bonjour! Grüß dich — 你好."
_LINES = "First line.\nSecond line, with ünïcödé.\nThird line ends without a newline"
_SPLIT = "Grüße aus Köln — 東京 🚀"
_NO_DONE = "This stream ends without the end marker."
_CHUNKY = "Status 201, and every data prefix cut in pieces."

LIBRARY: tuple[Entry, ...] = (
    Entry(
        "aivvm.yaml",
        "Aivvm",
        "raw UTF-8 text stream, one chunk per word",
        (Call("Say hello in a few languages.", *_text(_HELLO)),),
    ),
    Entry(
        "ai365vip.yaml",
        "AI365VIP",
        "raw text read line by line; the last line has no newline",
        (Call("Write three short lines.", *_text(_LINES)),),
    ),
    Entry(
        "getgpt.yaml",
        "GetGpt",
        "two calls with different prompts (encrypted requests), status 201 data: lines",
        (
            Call("What is 2 + 2?", *_text("2 + 2 = 4.")),
            Call("Name a primary colour.", *_text("Red is a primary colour.")),
        ),
    ),
    Entry(
        "codelinkava.yaml",
        "CodeLinkAva",
        "OpenAI-style SSE ending in data: [DONE]",
        (
            Call(
                "Say hello from CodeLinkAva.",
                *_text(
                    "Hello from CodeLinkAva! How can I help?", framing=Framing(finish_chunk=True)
                ),
            ),
        ),
    ),
    Entry(
        "aivvm_403_cloudflare.yaml",
        "Aivvm",
        "fault: Cloudflare's 403 'Access denied' page",
        (
            Call(
                "Are you there?",
                ResponseScript(http_error="cloudflare"),
                {"error": "AccessDeniedError", "status": 403},
            ),
        ),
    ),
    Entry(
        "aivvm_split_utf8.yaml",
        "Aivvm",
        "fault: every multi-byte character split across chunks",
        (
            Call(
                "Greetings from two cities.",
                ResponseScript(text=_SPLIT, chunking=ChunkPlan("utf8"), chunk_delay=_GAP),
                {"text": _SPLIT, "legacy_text": legacy_aivvm(_cut_inside_characters(_SPLIT))},
            ),
        ),
    ),
    Entry(
        "codelinkava_no_done.yaml",
        "CodeLinkAva",
        "fault: the stream ends without data: [DONE]",
        (
            Call(
                "Tell me something short.",
                ResponseScript(text=_NO_DONE, framing=Framing(done="missing"), chunk_delay=_GAP),
                {"error": "TruncatedStreamError", "partial": _NO_DONE, "legacy_text": _NO_DONE},
            ),
        ),
    ),
    Entry(
        "getgpt_201_stream.yaml",
        "GetGpt",
        "status 201 stream cut inside every 'data: ' prefix, role and finish deltas",
        (
            Call(
                "Stream something chunky.",
                *_text(
                    _CHUNKY,
                    chunking=ChunkPlan("data", with_frames=True),
                    framing=Framing(role_first_delta=True, finish_chunk=True),
                ),
            ),
        ),
    ),
)


def pinned_provider(name: str, *, seed: str) -> type[Provider]:
    """The adapter class, with GetGpt's key, IV and UUID drawn from a generator seeded by
    ``seed`` (still different for every call), so a recording is the same every run."""
    adapter = PROVIDERS[name]
    if name != "GetGpt":
        return adapter
    rng = random.Random(seed)
    codec = GetGptCodec(
        new_uuid=lambda: str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        randbytes=rng.randbytes,
    )
    return type(name, (adapter,), {"codec": codec, "__doc__": adapter.__doc__})
