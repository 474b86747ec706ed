"""The work each fake benchmark asks for: request bytes, the fake's script, the expected reply.

A workload is computed once in the parent process and shipped to both children: the script goes
to the fake, the planned chunks to the bare baseline (so it writes exactly what the fake would),
and the request bytes to the client (identical bytes for both servers).

Requests are built by each provider's own codec, as the adapter would send them, so the strict
fakes accept them; GetGpt's are encrypted with fresh key material each, like the original client.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fake_upstreams.registry import spec_for
from fake_upstreams.reply import plan_reply
from fake_upstreams.script import ResponseScript
from providers import PROVIDERS
from providers.wire.common import ChatRequest, UpstreamCodec
from tools.bench.httpclient import encode_request

PROMPT = "Say hi"
#: A mix of 1-, 2-, 3- and 4-byte UTF-8 so encoding work is not the all-ASCII fast path.
_WORDS = ("stream", "wörter", "données", "数据", "流式", "🙂", "résumé", "tapedeck")


@dataclass(frozen=True, slots=True)
class CannedReply:
    """What a bare baseline handler writes: one ``write`` per chunk, chunked encoding."""

    path: str
    status: int
    content_type: str
    chunks: tuple[bytes, ...]

    @property
    def body_bytes(self) -> int:
        return sum(len(chunk) for chunk in self.chunks)


@dataclass(frozen=True, slots=True)
class Workload:
    """One benchmark's traffic against one fake and its baseline."""

    fake: str
    script: dict[str, Any]
    requests: tuple[bytes, ...]
    reply: CannedReply


def request_bytes(
    fake: str, prompt: str = PROMPT, *, extra: tuple[tuple[str, str], ...] = ()
) -> bytes:
    """One chat request for ``fake`` as its adapter would send it, as raw HTTP/1.1 bytes."""
    codec = spec_for(fake).codec
    provider = PROVIDERS[spec_for(fake).name]
    wire = codec.build_request(provider.get_model(""), [{"role": "user", "content": prompt}], {})
    return encode_request(
        wire.method,
        wire.path,
        wire.headers + extra,
        wire.body,
        content_type=wire.body_content_type,
    )


def planned_chunks(codec: UpstreamCodec, script: dict[str, Any], prompt: str) -> tuple[bytes, ...]:
    """The chunks the fake will write for ``script`` (the fake's own planner, pure)."""
    chat = ChatRequest(model="", messages=({"role": "user", "content": prompt},))
    return plan_reply(ResponseScript.from_dict(script), codec, chat).chunks


def _workload(fake: str, script: dict[str, Any], requests: int) -> Workload:
    spec = spec_for(fake)
    chunks = planned_chunks(spec.codec, script, PROMPT)
    reply = CannedReply(
        spec.codec.chat_path, spec.codec.success_status, spec.codec.reply_content_type, chunks
    )
    # Distinct requests matter for GetGpt only (fresh key, IV and UUID per call); the others
    # are cycled through just the same so every fake sees the same client behaviour.
    pool = tuple(request_bytes(fake) for _ in range(requests))
    return Workload(spec.name, script, pool, reply)


def words(count: int) -> str:
    """``count`` space-separated words (each becomes one text piece, one frame)."""
    return " ".join(_WORDS[index % len(_WORDS)] for index in range(count))


def long_words(total_bytes: int, word_bytes: int) -> str:
    """About ``total_bytes`` of UTF-8 text in words of about ``word_bytes`` bytes each."""
    unit = "dönnées-stream-"  # 16 bytes of UTF-8
    word = (unit * (word_bytes // len(unit.encode()) + 1))[: max(word_bytes - 2, 1)]
    count = max(total_bytes // len((word + " ").encode()), 1)
    return " ".join([word] * count)


def sse_stream(events: int) -> Workload:
    """CodeLinkAva streaming ``events`` SSE events (plus ``[DONE]``), one chunk each."""
    return _workload("CodeLinkAva", {"text": words(events)}, requests=1)


def raw_stream(total_bytes: int, piece_bytes: int) -> Workload:
    """Aivvm streaming ``total_bytes`` of raw UTF-8 text in pieces of ``piece_bytes``."""
    return _workload("Aivvm", {"text": long_words(total_bytes, piece_bytes)}, requests=1)


def short_reply(fake: str, requests: int = 64) -> Workload:
    """The everyday test: the default script, which echoes ``You said: Say hi`` in 4 pieces."""
    return _workload(fake, {}, requests=requests)
