"""What the original clients put on the wire, written out once, by hand, from docs/PROTOCOLS.md.

Tests compare the codecs, the adapters and the fakes against these values, so nothing here may
come from the code under test: this module imports nothing from ``providers`` or
``fake_upstreams``, and every value is spelled out (at most serialised with ``json.dumps``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

#: The headers each original client set itself, in the order it set them. Content-Type stands
#: where the original wrote it (CodeLinkAva's came from aiohttp's ``json=``, so it is absent).
#: Aivvm's original also set ``content-length``, right after ``content-type``; that value
#: depends on the body, so a test that needs it inserts it there.
ORIGINAL_HEADERS: Mapping[str, tuple[tuple[str, str], ...]] = {
    "Aivvm": (
        ("accept", "text/event-stream"),
        ("accept-language", "en-US,en;q=0.9"),
        ("content-type", "application/json"),
        ("sec-ch-ua", '"Chrome";v="117", "Not;A=Brand";v="8", "Chromium";v="117"'),
        ("sec-ch-ua-mobile", "?0"),
        ("sec-ch-ua-platform", '"Windows"'),
        ("sec-fetch-dest", "empty"),
        ("sec-fetch-mode", "cors"),
        ("sec-fetch-site", "same-origin"),
        ("sec-gpc", "1"),
        ("referrer", "https://chat.aivvm.com/"),
        (
            "user-agent",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/117.0.0.0 Safari/537.36",
        ),
    ),
    "AI365VIP": (
        ("accept", "*/*"),
        ("accept-language", "en-US,en;q=0.9"),
        ("content-type", "application/json"),
        ("origin", "https://chat.ai365vip.com"),
        ("referer", "https://chat.ai365vip.com/en"),
        ("sec-ch-ua", '"Chromium";v="127", "Not)A;Brand";v="99"'),
        ("sec-ch-ua-arch", '"x86"'),
        ("sec-ch-ua-bitness", '"64"'),
        ("sec-ch-ua-full-version", '"127.0.6533.119"'),
        (
            "sec-ch-ua-full-version-list",
            '"Chromium";v="127.0.6533.119", "Not)A;Brand";v="99.0.0.0"',
        ),
        ("sec-ch-ua-mobile", "?0"),
        ("sec-ch-ua-model", '""'),
        ("sec-ch-ua-platform", '"Linux"'),
        ("sec-ch-ua-platform-version", '"4.19.276"'),
        ("sec-fetch-dest", "empty"),
        ("sec-fetch-mode", "cors"),
        ("sec-fetch-site", "same-origin"),
        (
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/127.0.0.0 Safari/537.36",
        ),
    ),
    "GetGpt": (
        ("Content-Type", "application/json"),
        ("Referer", "https://chat.getgpt.world/"),
        (
            "user-agent",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/114.0.0.0 Safari/537.36",
        ),
    ),
    "CodeLinkAva": (
        (
            "User-Agent",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/116.0.0.0 Safari/537.36",
        ),
        ("Accept", "*/*"),
        (
            "Accept-language",
            "en,fr-FR;q=0.9,fr;q=0.8,es-ES;q=0.7,es;q=0.6,en-US;q=0.5,am;q=0.4,de;q=0.3",
        ),
        ("Origin", "https://ava-ai-ef611.web.app"),
        ("Referer", "https://ava-ai-ef611.web.app/"),
        ("Sec-Fetch-Dest", "empty"),
        ("Sec-Fetch-Mode", "cors"),
        ("Sec-Fetch-Site", "same-origin"),
    ),
}


def getgpt_plaintext(messages: Sequence[Mapping[str, str]], request_id: str) -> dict[str, Any]:
    """The object GetGpt's client encrypted, its fields in the client's order, for ``messages``."""
    return {
        "messages": messages,
        "frequency_penalty": 0,
        "max_tokens": 4000,
        "model": "gpt-3.5-turbo",
        "presence_penalty": 0,
        "temperature": 1,
        "top_p": 1,
        "stream": True,
        "uuid": request_id,
    }


#: A short valid Aivvm chat body (one user message "hi"), serialised as the original did it.
AIVVM_HI_BODY = json.dumps(
    {
        "model": {"id": "gpt-4", "name": "GPT-4"},
        "messages": [{"role": "user", "content": "hi"}],
        "key": "",
        "prompt": "p",
        "temperature": 0.7,
    }
).encode()
