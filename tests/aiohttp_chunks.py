"""A reply's HTTP chunks as an aiohttp client receives them, for chunk-boundary tests."""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp


async def aiohttp_chunks(
    url: str, body: bytes | str, headers: Mapping[str, str] | None = None
) -> tuple[int, list[bytes]]:
    """POST ``body`` to ``url``; the reply's status and its body as the HTTP chunks it came in.

    ``iter_chunks`` may hand one HTTP chunk over in several pieces and marks the piece that ends
    it, so pieces are joined up to each end-of-chunk mark.
    """
    chunks, piece = [], b""
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=headers) as response,
    ):
        async for data, end_of_chunk in response.content.iter_chunks():
            piece += data
            if end_of_chunk and piece:
                chunks.append(piece)
                piece = b""
    assert piece == b"", "bytes after the last chunk end"
    return response.status, chunks
