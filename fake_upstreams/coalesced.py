"""A ``StreamResponse`` whose status line and headers leave in the same send as the first chunk.

aiohttp's ``StreamResponse.prepare`` hands the headers to the socket at once, so a reply of n
chunks costs n + 2 sends (headers, chunks, terminating chunk); each send on loopback also wakes
the reader. Where nothing may happen between the headers and the first chunk (no pause, no
fault), sending them together is the same reply on the wire, framing and chunk boundaries
included, one system call and one wake-up of the reader cheaper. The fakes' replies use it and
end with ``write_eof(last_chunk)``, which puts the terminating chunk in the last chunk's send
(public aiohttp API), so a reply of n chunks is n sends. (The replay server does not: there,
A/B runs of ``tapedeck bench`` showed no gain, its client being the bottleneck.)

aiohttp supports this itself: its ``Response`` buffers the headers to coalesce them with a small
body, through the class attribute this subclass sets, and its writer sends buffered headers with
the next ``write`` or with ``write_eof`` (an empty body then leaves as headers plus terminating
chunk, still one send). The attribute is private; if a future aiohttp dropped it, the headers
would simply go out on their own again, which tests/test_fake_app_generic.py would report.
"""

from __future__ import annotations

from aiohttp import web


class HeadersWithFirstChunk(web.StreamResponse):
    """Send the headers together with the first body write (or with ``write_eof``)."""

    _send_headers_immediately = False
