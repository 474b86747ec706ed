"""A raw-socket HTTP/1.1 client that shows exactly what a server put on the wire.

It sends the request bytes it is given and parses the chunked framing itself, so every chunk
boundary, a missing terminating chunk, a reset or a framing error is visible — nothing an HTTP
library could smooth over. Independent of Tapedeck's code: it is the oracle for the fakes.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class RawResponse:
    status: int = 0
    headers: list[tuple[str, str]] = field(default_factory=list)
    raw: bytes = b""  # every byte received
    chunks: list[bytes] = field(default_factory=list)  # chunk payloads, in order
    chunk_times: list[float] = field(default_factory=list)  # seconds after sending, per chunk
    body: bytes = b""  # the body: joined chunks, or everything after the head if not chunked
    complete: bool = False  # the terminating zero-size chunk arrived
    problem: str = ""  # "", "reset", "timeout", or what was wrong with the framing
    elapsed: float = 0.0  # seconds until EOF, reset or timeout
    head_time: float | None = None  # seconds until the end of the response head arrived

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


def build_request(
    path: str,
    body: bytes,
    headers: Sequence[tuple[str, str]] = (("Content-Type", "application/json"),),
    *,
    method: str = "POST",
    version: str = "1.1",
) -> bytes:
    """Request bytes with exactly these headers, plus Host, Content-Length, Connection: close."""
    lines = [f"{method} {path} HTTP/{version}", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in headers]
    lines += [f"Content-Length: {len(body)}", "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def exchange(
    port: int, request: bytes, *, deadline: float = 5.0, read_limit: int | None = None
) -> RawResponse:
    """Send ``request``, read until EOF (or reset, ``deadline`` seconds, ``read_limit`` bytes)."""
    result = RawResponse()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    arrivals: list[tuple[int, float]] = []  # (bytes received so far, seconds) after each read
    received = bytearray()
    try:
        writer.write(request)
        await writer.drain()
        while read_limit is None or len(received) < read_limit:
            remaining = deadline - (time.monotonic() - started)
            data = await asyncio.wait_for(reader.read(65536), max(remaining, 0.001))
            if not data:
                break
            received += data
            arrivals.append((len(received), time.monotonic() - started))
    except ConnectionResetError:
        result.problem = "reset"
    except TimeoutError:
        result.problem = "timeout"
    finally:
        result.elapsed = time.monotonic() - started
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    result.raw = bytes(received)
    _parse(result, arrivals)
    return result


def _time_at(offset: int, arrivals: list[tuple[int, float]]) -> float:
    return next(seconds for total, seconds in arrivals if total >= offset)


def _parse(result: RawResponse, arrivals: list[tuple[int, float]]) -> None:
    data = result.raw
    head_end = data.find(b"\r\n\r\n")
    if head_end < 0:
        result.problem = result.problem or "no complete response head"
        return
    result.head_time = _time_at(head_end + 4, arrivals)
    status_line, *header_lines = data[:head_end].decode("latin-1").split("\r\n")
    match = re.fullmatch(r"HTTP/1\.[01] (\d{3}) .*", status_line)
    if match is None:
        result.problem = result.problem or f"bad status line {status_line!r}"
        return
    result.status = int(match.group(1))
    for line in header_lines:
        name, _, value = line.partition(":")
        result.headers.append((name, value.strip()))
    rest = data[head_end + 4 :]
    if (result.header("Transfer-Encoding") or "").lower() != "chunked":
        result.body = rest
        return
    position = head_end + 4
    while True:
        line_end = data.find(b"\r\n", position)
        if line_end < 0:
            if position < len(data):
                result.problem = result.problem or "cut inside a chunk size line"
            break
        size_text = data[position:line_end]
        if not re.fullmatch(rb"[0-9a-fA-F]+", size_text):
            result.problem = result.problem or f"bad chunk size line {size_text!r}"
            break
        size = int(size_text, 16)
        start, end = line_end + 2, line_end + 2 + size
        if size == 0:
            result.complete = data[start : start + 2] == b"\r\n"
            break
        if len(data) < end + 2:
            result.problem = result.problem or "cut inside a chunk"
            break
        if data[end : end + 2] != b"\r\n":
            result.problem = result.problem or "chunk not followed by CRLF"
            break
        result.chunks.append(data[start:end])
        result.chunk_times.append(_time_at(end + 2, arrivals))
        position = end + 2
    result.body = b"".join(result.chunks)
