"""A deliberately dumb HTTP/1.1 server on a raw socket, for tests that need exact bytes.

It records every request byte for byte (request line, header lines as sent, body) and answers
with a scripted reply whose chunked framing it writes itself, so neither side's HTTP library can
hide or add anything. It shares no code with Tapedeck's fakes: it is the independent oracle.
"""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class RawRequest:
    head: bytes  # request line + header lines, up to and including the blank line
    body: bytes

    @property
    def request_line(self) -> str:
        return self.head.split(b"\r\n", 1)[0].decode("latin-1")

    @property
    def header_lines(self) -> list[tuple[str, str]]:
        lines = self.head.decode("latin-1").split("\r\n")[1:]
        pairs = []
        for line in lines:
            if line:
                name, _, value = line.partition(":")
                pairs.append((name, value.strip()))
        return pairs


@dataclass
class RawReply:
    status: int = 200
    reason: str = "OK"
    headers: Sequence[tuple[str, str]] = (("Content-Type", "text/plain; charset=utf-8"),)
    chunks: Sequence[bytes] = ()
    terminate: bool = True  # write the final 0-chunk (False: close mid-stream)
    delay_before_head: float = 0.0  # seconds of silence before the status line

    def encode_head(self) -> bytes:
        lines = [f"HTTP/1.1 {self.status} {self.reason}"]
        lines += [f"{name}: {value}" for name, value in self.headers]
        lines += ["Transfer-Encoding: chunked", "Connection: close", "", ""]
        return "\r\n".join(lines).encode("latin-1")


@dataclass
class RawServer:
    url: str
    requests: list[RawRequest] = field(default_factory=list)
    replies: list[RawReply] = field(default_factory=list)


def _read_request(conn: socket.socket) -> RawRequest:
    data = b""
    while b"\r\n\r\n" not in data:
        more = conn.recv(65536)
        if not more:
            raise ConnectionError("client closed before the request head ended")
        data += more
    head, _, body = data.partition(b"\r\n\r\n")
    head += b"\r\n\r\n"
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        more = conn.recv(65536)
        if not more:
            break
        body += more
    return RawRequest(head=head, body=body)


@contextmanager
def raw_server(*replies: RawReply) -> Iterator[RawServer]:
    """Serve the replies in order (the last one repeats) on 127.0.0.1, port 0."""
    state = RawServer(url="", replies=list(replies) or [RawReply()])

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            conn: socket.socket = self.request
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                request = _read_request(conn)
            except ConnectionError:
                return
            index = len(state.requests)
            state.requests.append(request)
            reply = state.replies[min(index, len(state.replies) - 1)]
            try:
                if reply.delay_before_head:
                    time.sleep(reply.delay_before_head)
                conn.sendall(reply.encode_head())
                for chunk in reply.chunks:
                    conn.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                if reply.terminate:
                    conn.sendall(b"0\r\n\r\n")
            except OSError:
                return  # the client hung up early; that is its right

    class Server(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True

    with Server(("127.0.0.1", 0), Handler) as server:
        host, port = server.server_address[:2]
        state.url = f"http://{host!s}:{port}"
        thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
        thread.start()
        try:
            yield state
        finally:
            server.shutdown()
            thread.join(timeout=5)
