"""`tapedeck inspect CASSETTE`: what a cassette holds, readable in a terminal (or as JSON).

Shows where the cassette came from (target, date, tool version, live site or local fake), then
for each interaction the request (method, path), the response (status, reason), how many chunks
and bytes it has, and a per-chunk timeline: arrival offset in milliseconds, size, and a short
preview with control characters and invalid UTF-8 escaped, so a split character or a cut
``data:`` line is visible.

Everything printed from the cassette is escaped the same way (``\x1b``, ``\n``, ``\u202e``):
a cassette is data from outside, and raw control characters would reach the terminal (colours,
a cleared screen, a changed window title) or break the one-line layout. The JSON form escapes
them as JSON does (``\u001b``); only what is printed changes, never the data.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any

from cassettes import yamlio
from cassettes.model import FORMAT_VERSION, Cassette, Interaction

NAME = "inspect"
HELP = "show a cassette's provenance, interactions and per-chunk timeline"
PREVIEW_CHARS = 40
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `tapedeck inspect`."""
    parser.add_argument("cassette", metavar="CASSETTE", help="the cassette file (YAML)")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead")
    parser.add_argument(
        "--no-chunks", action="store_true", help="leave out the per-chunk timelines"
    )


def preview(data: bytes, limit: int = PREVIEW_CHARS) -> str:
    """``data`` as one short printable line: UTF-8 text, everything else escaped.

    Invalid UTF-8 bytes (half of a split character) show as ``\\xc3``, control characters as
    ``\\n``, ``\\r``, ``\\x00``, a backslash as ``\\\\``; longer previews end in ``…``.
    """
    pieces: list[str] = []
    length = 0
    for char in data[: 4 * limit + 4].decode("utf-8", "surrogateescape"):
        piece = _escape(char)
        if length + len(piece) > limit:
            return "".join(pieces) + "…"
        pieces.append(piece)
        length += len(piece)
    return "".join(pieces)


def _escape(char: str) -> str:
    if char in _ESCAPES:
        return _ESCAPES[char]
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte, kept by surrogateescape
        return f"\\x{code - 0xDC00:02x}"
    if char.isprintable():
        return char
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def printable(text: str) -> str:
    """``text`` escaped like :func:`preview` (not shortened), for one line of a terminal."""
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(map(_escape, text))


# JSON text from json.dumps(ensure_ascii=False) holds raw characters only inside strings (it
# escapes those below U+0020 itself), plus the newlines of its indentation.
_MAYBE_UNPRINTABLE = re.compile(r"[^\x20-\x7e\n]")


def _json_escape_unprintable(text: str) -> str:
    def escape(match: re.Match[str]) -> str:
        char = match[0]
        if char.isprintable():
            return char
        utf16 = char.encode("utf-16-be", "surrogatepass")
        return "".join(f"\\u{utf16[i]:02x}{utf16[i + 1]:02x}" for i in range(0, len(utf16), 2))

    return _MAYBE_UNPRINTABLE.sub(escape, text)


def describe(cassette: Cassette, source: str, *, chunks: bool = True) -> dict[str, Any]:
    """The JSON form: provenance and, per interaction, request, response, chunks."""
    provenance = cassette.provenance
    return {
        "cassette": source,
        "format_version": FORMAT_VERSION if provenance is not None else None,
        "provenance": None
        if provenance is None
        else {
            "target_url": provenance.target_url,
            "recorded_at": provenance.recorded_at,
            "tool_version": provenance.tool_version,
            "source": provenance.source,
        },
        "interactions": [
            _interaction(number, interaction, chunks=chunks)
            for number, interaction in enumerate(cassette.interactions)
        ],
    }


def _interaction(number: int, interaction: Interaction, *, chunks: bool) -> dict[str, Any]:
    request, response = interaction.request, interaction.response
    entry: dict[str, Any] = {
        "number": number,
        "method": request.method,
        "uri": request.uri,
        "path": request.path,
        "status": response.status,
        "reason": response.reason,
        "chunk_count": len(response.plan),
        "bytes": len(response.body),
    }
    if chunks:
        entry["chunks"] = [
            {"offset_ms": chunk.offset_ms, "size": chunk.size, "preview": preview(piece)}
            for chunk, piece in zip(response.plan, response.chunk_bytes(), strict=True)
        ]
    return entry


def render(document: dict[str, Any]) -> str:
    """The terminal form of :func:`describe`'s document, every text from the cassette escaped."""
    lines = [f"cassette      {printable(document['cassette'])}"]
    provenance = document["provenance"]
    if provenance is None:
        lines.append("provenance    none (a plain vcrpy cassette)")
    else:
        where = "a local fake upstream" if provenance["source"] == "fake" else "the live site"
        target, stamp, version = (
            printable(provenance[key]) for key in ("target_url", "recorded_at", "tool_version")
        )
        lines += [
            f"recorded from {target} ({where})",
            f"recorded at   {stamp} by tapedeck {version}",
        ]
    interactions = document["interactions"]
    lines.append(f"interactions  {len(interactions)}")
    for entry in interactions:
        lines.append("")
        lines.append(
            f"#{entry['number']} {printable(entry['method'])} {printable(entry['path'])} -> "
            f"{entry['status']} {printable(entry['reason'])}  {entry['chunk_count']} chunk(s), "
            f"{entry['bytes']} B"
        )
        if entry.get("chunks"):
            lines.append(f"    {'offset ms':>10}  {'bytes':>6}  preview")
            for chunk in entry["chunks"]:
                lines.append(
                    f"    {chunk['offset_ms']:>10.2f}  {chunk['size']:>6}  {chunk['preview']}"
                )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Print the cassette; 1 when it cannot be read (the CLI prints Tapedeck's own errors)."""
    try:
        cassette = yamlio.load(args.cassette)
    except OSError as error:
        print(f"tapedeck inspect: cannot read {args.cassette}: {error.strerror}", file=sys.stderr)
        return 1
    document = describe(cassette, args.cassette, chunks=not args.no_chunks)
    if args.json:
        print(_json_escape_unprintable(json.dumps(document, indent=2, ensure_ascii=False)))
    else:
        print(render(document))
    return 0
