"""The line splitters against the real libraries they emulate, and urllib3's piece boundaries.

The oracles are the installed aiohttp ``StreamReader`` and requests ``Response.iter_lines``; the
loopback tests pin which pieces requests' ``iter_content`` sees for a chunked reply, which is what
:func:`requests_iter_content_pieces` (and every requests-based adapter) assumes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Sequence

import pytest
import requests
from aiohttp import web
from aiohttp.base_protocol import BaseProtocol
from aiohttp.http_exceptions import LineTooLong
from aiohttp.streams import StreamReader
from hypothesis import given
from hypothesis import strategies as st

from providers.errors import MalformedReplyError
from providers.wire.lines import (
    REQUESTS_ITER_LINES_CHUNK_SIZE,
    AiohttpLineSplitter,
    RequestsLineSplitter,
    requests_iter_content_pieces,
)

# Line breaks of every kind bytes.splitlines() does and does not know, plus ordinary bytes.
_TOKENS = st.sampled_from(
    [
        b"\n",
        b"\r",
        b"\r\n",
        b"\n\n",
        b"a",
        b"data: x",
        b"\x00",
        b"\xff",
        b"\xd0\xb8",
        b"\x0b",
        b"\x85",
    ]
)
_BODIES = st.lists(st.one_of(_TOKENS, st.binary(max_size=6)), max_size=40).map(b"".join)


def _cut(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    bounds = sorted(min(max(c, 0), len(data)) for c in cuts)
    return [data[a:b] for a, b in zip([0, *bounds], [*bounds, len(data)], strict=True)]


# Lines of 0-20 bytes: with a readline limit of 4-16 bytes, lengths at, just under and just over
# the limit all occur, and a cut often completes a good line and starts an overlong one.
_LINE = st.tuples(st.integers(0, 20), st.sampled_from([b"\n", b"\r\n", b"\r", b""]))
_LINE_BODIES = st.lists(_LINE, max_size=8).map(lambda ls: b"".join(b"x" * n + e for n, e in ls))


@st.composite
def _body_and_cuts(draw: st.DrawFn, bodies: st.SearchStrategy[bytes] = _BODIES) -> list[bytes]:
    data = draw(bodies)
    cuts = draw(st.lists(st.integers(0, len(data)), max_size=12))
    return _cut(data, cuts)


# --- aiohttp ------------------------------------------------------------------------------------


class _OpenConnection(BaseProtocol):
    """A protocol that claims to be connected and ignores flow control (no transport exists)."""

    @property
    def connected(self) -> bool:
        return True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self, resume_parser: bool = True) -> None:
        pass


async def _settle() -> None:
    # Let the consumer task wake up and read everything the last feed made available.
    for _ in range(5):
        await asyncio.sleep(0)


async def _aiohttp_reads(
    chunks: Sequence[bytes], limit: int
) -> tuple[list[bytes], list[int], bool]:
    """Lines a real StreamReader yields, how many after each feed, and whether it raised."""
    loop = asyncio.get_running_loop()
    reader = StreamReader(_OpenConnection(loop), limit, loop=loop)
    lines: list[bytes] = []
    failed = False

    async def consume() -> None:
        nonlocal failed
        try:
            async for line in reader:
                lines.append(line)
        except LineTooLong:
            failed = True

    consumer = asyncio.create_task(consume())
    counts = []
    for chunk in chunks:
        reader.feed_data(chunk)
        await _settle()
        counts.append(len(lines))
    reader.feed_eof()
    await consumer
    return lines, counts, failed


def _splitter_reads(
    chunks: Sequence[bytes], max_line_size: int | None
) -> tuple[list[bytes], list[int], bool]:
    splitter = AiohttpLineSplitter(max_line_size=max_line_size)
    lines: list[bytes] = []
    counts = []
    failed = False
    for chunk in chunks:
        if not failed:
            try:
                lines += splitter.feed(chunk)
            except MalformedReplyError:
                failed = True
        counts.append(len(lines))
    if not failed:
        try:
            lines += splitter.finish()
        except MalformedReplyError:
            failed = True
    return lines, counts, failed


@given(chunks=_body_and_cuts(), limit=st.sampled_from([4, 8, 16, 2**16]))
async def test_aiohttp_splitter_matches_real_stream_reader(chunks: list[bytes], limit: int) -> None:
    # aiohttp's readline limit is the high-water mark, twice the reader's limit; small limits make
    # the LineTooLong path common, so the emulated error is checked as often as the lines.
    real = await _aiohttp_reads(chunks, limit)
    assert _splitter_reads(chunks, 2 * limit) == real


@given(chunks=_body_and_cuts(_LINE_BODIES), limit=st.sampled_from([2, 4, 8]))
async def test_aiohttp_splitter_limit_matches_real_stream_reader(
    chunks: list[bytes], limit: int
) -> None:
    real = await _aiohttp_reads(chunks, limit)
    assert _splitter_reads(chunks, 2 * limit) == real


@given(chunks=_body_and_cuts())
def test_aiohttp_splitter_cut_does_not_matter(chunks: list[bytes]) -> None:
    whole = b"".join(chunks)
    assert _splitter_reads(chunks, None)[0] == _splitter_reads([whole], None)[0]


async def test_aiohttp_splitter_examples() -> None:
    chunks = [b"data: a\r", b"\ndata: b\n\n", b"tail"]
    expected = [b"data: a\r\n", b"data: b\n", b"\n", b"tail"]
    assert (await _aiohttp_reads(chunks, 2**16))[0] == expected
    assert _splitter_reads(chunks, None)[0] == expected
    splitter = AiohttpLineSplitter()
    assert splitter.feed(b"no newline yet") == []
    assert splitter.partial == b"no newline yet"


def test_aiohttp_splitter_defers_the_error_after_good_lines() -> None:
    splitter = AiohttpLineSplitter(max_line_size=4)
    assert splitter.feed(b"ok\nmuch too long") == [b"ok\n"]
    with pytest.raises(MalformedReplyError, match="longer than 4 bytes"):
        splitter.feed(b"")
    with pytest.raises(MalformedReplyError):
        AiohttpLineSplitter(max_line_size=4).feed(b"12345")
    assert AiohttpLineSplitter(max_line_size=4).feed(b"123\n") == [b"123\n"]


# --- requests -----------------------------------------------------------------------------------


class _PieceRaw:
    """Stands in for urllib3's HTTPResponse: ``stream`` yields the given pieces as they are."""

    def __init__(self, pieces: Sequence[bytes]) -> None:
        self.pieces = list(pieces)
        self.asked: list[int | None] = []

    def stream(self, chunk_size: int | None, decode_content: bool | None = None) -> Iterator[bytes]:
        self.asked.append(chunk_size)
        yield from self.pieces


def _requests_iter_lines(pieces: Sequence[bytes]) -> list[bytes]:
    raw = _PieceRaw(pieces)
    response = requests.Response()
    response.status_code = 200
    response.raw = raw
    lines = list(response.iter_lines())
    assert raw.asked == [REQUESTS_ITER_LINES_CHUNK_SIZE]
    return lines


def _splitter_lines(pieces: Sequence[bytes]) -> list[bytes]:
    splitter = RequestsLineSplitter()
    lines = [line for piece in pieces for line in splitter.feed(piece)]
    return lines + splitter.finish()


@given(pieces=_body_and_cuts())
def test_requests_splitter_matches_real_iter_lines(pieces: list[bytes]) -> None:
    assert _splitter_lines(pieces) == _requests_iter_lines(pieces)


@given(pieces=st.lists(st.binary(min_size=1, max_size=512), max_size=4))
def test_requests_splitter_matches_on_arbitrary_bytes(pieces: list[bytes]) -> None:
    assert _splitter_lines(pieces) == _requests_iter_lines(pieces)


def test_requests_cr_lf_split_across_pieces_gives_an_extra_empty_line() -> None:
    pieces = [b"data: a\r", b"\ndata: b\r\n"]
    assert _requests_iter_lines(pieces) == [b"data: a", b"", b"data: b"]
    assert _splitter_lines(pieces) == [b"data: a", b"", b"data: b"]
    assert _splitter_lines([b"".join(pieces)]) == [b"data: a", b"data: b"]


def test_requests_iter_content_pieces_model() -> None:
    chunks = [b"a" * 1100, b"b" * 3, b"c" * 512]
    assert [len(p) for p in requests_iter_content_pieces(chunks)] == [512, 512, 76, 3, 512]
    flat = requests_iter_content_pieces(chunks, 512, chunked=False)
    assert [len(p) for p in flat] == [512, 512, 512, 79]
    assert requests_iter_content_pieces([b"x" * 5000], 4096) == [b"x" * 4096, b"x" * 904]
    with pytest.raises(ValueError, match="at least 1"):
        requests_iter_content_pieces([b"x"], 0)


# --- loopback: what urllib3 really hands requests ---------------------------------------------

_HTTP_CHUNKS = [b"a" * 10, b"b" * 1100, b"c" * 5000, b"line one\r", b"\nline two\n", b"d" * 3]


async def _stream_chunks(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    if request.query.get("mode") == "length":
        response.content_length = sum(len(c) for c in _HTTP_CHUNKS)
    else:
        response.enable_chunked_encoding()
    await response.prepare(request)
    for chunk in _HTTP_CHUNKS:
        await response.write(chunk)  # with chunked encoding, one write = one HTTP chunk
    await response.write_eof()
    return response


async def _serve_raw_chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    # The whole chunked reply in a single write: the HTTP chunks share TCP segments, so only the
    # chunk framing can tell urllib3 where one ends.
    while (await reader.readline()) not in (b"\r\n", b""):
        pass
    body = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in _HTTP_CHUNKS) + b"0\r\n\r\n"
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    writer.write(head + body)
    await writer.drain()
    writer.close()


def _fetch(url: str) -> dict[str, list[bytes]]:
    pieces: dict[str, list[bytes]] = {}
    with requests.Session() as session:
        session.trust_env = False  # no proxy from the environment for a loopback URL
        for size in (4096, 512):
            with session.get(url, stream=True, timeout=10) as response:
                pieces[f"content{size}"] = list(response.iter_content(size))
        with session.get(url, stream=True, timeout=10) as response:
            pieces["lines"] = list(response.iter_lines())
    return pieces


@pytest.fixture
async def aiohttp_url() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/", _stream_chunks)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}/"
    await runner.cleanup()


def _expected_lines() -> list[bytes]:
    # Worked out by hand from _HTTP_CHUNKS and the 512-byte pieces: the b"\r" ends one HTTP chunk
    # and the b"\n" starts the next, so iter_lines yields an extra empty line between them.
    letters = b"a" * 10 + b"b" * 1100 + b"c" * 5000
    return [letters + b"line one", b"", b"line two", b"d" * 3]


async def test_requests_pieces_follow_http_chunks(aiohttp_url: str) -> None:
    got = await asyncio.to_thread(_fetch, aiohttp_url)
    # Each HTTP chunk separately, cut at chunk_size: never merged with its neighbours.
    assert [len(p) for p in got["content4096"]] == [10, 1100, 4096, 904, 9, 10, 3]
    assert [len(p) for p in got["content512"]] == (
        [10] + [512, 512, 76] + [512] * 9 + [392] + [9, 10, 3]
    )
    assert got["content4096"] == requests_iter_content_pieces(_HTTP_CHUNKS, 4096)
    assert got["content512"] == requests_iter_content_pieces(_HTTP_CHUNKS, 512)
    assert got["lines"] == _expected_lines()
    assert _splitter_lines(requests_iter_content_pieces(_HTTP_CHUNKS)) == got["lines"]


async def test_requests_pieces_with_content_length(aiohttp_url: str) -> None:
    got = await asyncio.to_thread(_fetch, aiohttp_url + "?mode=length")
    total = sum(len(c) for c in _HTTP_CHUNKS)
    # No chunk framing: the body is re-cut into full chunk_size pieces, the last one shorter.
    assert [len(p) for p in got["content4096"]] == [4096, total - 4096]
    assert got["content512"] == requests_iter_content_pieces(_HTTP_CHUNKS, 512, chunked=False)
    # The b"\r" (byte 6118) and b"\n" (6119) share the 512-byte piece 5632-6143: no extra line.
    assert got["lines"] == [line for line in _expected_lines() if line]


async def test_requests_pieces_ignore_tcp_segmentation() -> None:
    server = await asyncio.start_server(_serve_raw_chunked, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        got = await asyncio.to_thread(_fetch, f"http://127.0.0.1:{port}/")
    assert got["content4096"] == requests_iter_content_pieces(_HTTP_CHUNKS, 4096)
    assert got["content512"] == requests_iter_content_pieces(_HTTP_CHUNKS, 512)
    assert got["lines"] == _expected_lines()
