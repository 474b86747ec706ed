"""The SSE decoder: the web-platform-tests eventsource vectors, then one test per parsing rule.

Expected values are written out by hand from the WHATWG rules (or, for the vectors, transcribed
from the wpt tests into tests/vectors/wpt_eventsource_format.json); none is computed by the
decoder under test.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from providers.errors import LocalProtocolError, MalformedReplyError, RemoteProtocolError
from providers.wire.sse import SSEDecoder, SSEEvent, SSELineDecoder

_VECTORS = Path(__file__).parent / "vectors" / "wpt_eventsource_format.json"

# Every format-* test in wpt's eventsource directory; each must be covered or skipped with a reason.
_WPT_FORMAT_TESTS = {
    "format-bom",
    "format-bom-2",
    "format-comments",
    "format-data-before-final-empty-line",
    "format-field-data",
    "format-field-event",
    "format-field-event-empty",
    "format-field-id",
    "format-field-id-2",
    "format-field-id-3",
    "format-field-id-null",
    "format-field-parsing",
    "format-field-retry",
    "format-field-retry-bogus",
    "format-field-retry-empty",
    "format-field-unknown",
    "format-leading-space",
    "format-mime-bogus",
    "format-mime-trailing-semicolon",
    "format-mime-valid-bogus",
    "format-newlines",
    "format-null-character",
    "format-utf-8",
}


def _load_vectors() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(_VECTORS.read_text(encoding="utf-8"))
    return document


def _split_whole(chunks: list[bytes]) -> list[bytes]:
    return [b"".join(chunks)]


def _split_as_sent(chunks: list[bytes]) -> list[bytes]:
    return chunks


def _split_bytewise(chunks: list[bytes]) -> list[bytes]:
    joined = b"".join(chunks)
    return [joined[i : i + 1] for i in range(len(joined))]


_SPLITTERS: dict[str, Callable[[list[bytes]], list[bytes]]] = {
    "whole": _split_whole,
    "as-sent": _split_as_sent,
    "bytewise": _split_bytewise,
}


def _feed_all(decoder: SSEDecoder, pieces: list[bytes]) -> list[SSEEvent]:
    events: list[SSEEvent] = []
    for piece in pieces:
        events.extend(decoder.feed(piece))
    return events


def _decode(*pieces: bytes, **options: Any) -> list[SSEEvent]:
    """Feed pieces, then end the stream; the events of the whole stream."""
    decoder = SSEDecoder(**options)
    events = _feed_all(decoder, list(pieces))
    return events + decoder.finish()


def _lines(*pieces: bytes) -> list[str]:
    decoder = SSELineDecoder()
    lines: list[str] = []
    for piece in pieces:
        lines.extend(decoder.feed(piece))
    return lines + decoder.finish()


# --- web-platform-tests vectors -------------------------------------------------------------


@pytest.mark.parametrize("splitter", sorted(_SPLITTERS))
@pytest.mark.parametrize("vector", _load_vectors()["vectors"], ids=lambda v: v["name"])
def test_wpt_format_vector(vector: dict[str, Any], splitter: str) -> None:
    decoder = SSEDecoder()  # one decoder across reconnects, as one EventSource
    for number, connection in enumerate(vector["connections"]):
        chunks = [chunk.encode("utf-8") for chunk in connection["chunks"]]
        got = _feed_all(decoder, _SPLITTERS[splitter](chunks)) + decoder.finish()
        expected = [SSEEvent(**event) for event in connection["events"]]
        assert got == expected, f"connection {number} of {vector['wpt']}"


def test_wpt_vectors_cover_every_format_test() -> None:
    document = _load_vectors()
    covered = {
        Path(name).stem.removesuffix(".any")
        for vector in document["vectors"]
        for name in vector["wpt"]
        if Path(name).name.startswith("format-")
    }
    skipped = {Path(item["wpt"]).stem for item in document["skipped"]}
    assert all(item["reason"] for item in document["skipped"])
    assert covered | skipped == _WPT_FORMAT_TESTS
    assert not covered & skipped
    assert all(any(c["events"] for c in v["connections"]) for v in document["vectors"])


# --- line ends ------------------------------------------------------------------------------


@pytest.mark.parametrize("end", [b"\n", b"\r\n", b"\r"])
def test_each_line_end_alone(end: bytes) -> None:
    stream = b"data:a" + end + b"data:b" + end + end
    assert _decode(stream) == [SSEEvent("a\nb")]


def test_mixed_line_ends() -> None:
    assert _decode(b"data:a\rdata:b\r\ndata:c\n\r\n") == [SSEEvent("a\nb\nc")]


def test_cr_then_lf_in_next_chunk_is_one_line_end() -> None:
    # Were it two line ends, the LF would make a blank line and dispatch "a" on its own.
    assert _decode(b"data:a\r", b"\ndata:b\n\n") == [SSEEvent("a\nb")]
    assert _lines(b"x\r", b"\ny\n") == ["x", "y"]


def test_cr_lf_split_by_an_empty_feed() -> None:
    assert _lines(b"x\r", b"", b"\ny\n") == ["x", "y"]


def test_two_crs_are_two_line_ends() -> None:
    assert _decode(b"data:a\r", b"\r") == [SSEEvent("a")]
    assert _lines(b"x\r", b"\r") == ["x", ""]


def test_lf_cr_is_two_line_ends() -> None:
    assert _lines(b"x\n\ry\n") == ["x", "", "y"]


def test_cr_at_end_of_stream_is_a_line_end() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data:a\r\r") == [SSEEvent("a")]
    assert not decoder.pending
    assert decoder.finish() == []


@pytest.mark.parametrize(
    "char", ["\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e"]
)
def test_splitlines_separators_stay_inside_data(char: str) -> None:
    text = f"one{char}two"
    assert _decode(f"data: {text}\n\n".encode()) == [SSEEvent(text)]
    assert _lines(f"{text}\n".encode()) == [text]


# --- byte order mark ------------------------------------------------------------------------


def test_leading_bom_is_stripped() -> None:
    assert _decode(b"\xef\xbb\xbfdata:x\n\n") == [SSEEvent("x")]


@pytest.mark.parametrize("cut", [1, 2, 3, 4])
def test_bom_split_across_feeds(cut: int) -> None:
    stream = b"\xef\xbb\xbfdata:x\n\n"
    assert _decode(stream[:cut], stream[cut:]) == [SSEEvent("x")]


def test_bom_fed_one_byte_at_a_time() -> None:
    assert _decode(b"\xef", b"\xbb", b"\xbf", b"data:x\n", b"\n") == [SSEEvent("x")]


def test_only_one_bom_is_stripped() -> None:
    # The second BOM becomes part of the field name, which is then unknown.
    assert _decode(b"\xef\xbb\xbf\xef\xbb\xbfdata:x\n\ndata:y\n\n") == [SSEEvent("y")]


def test_bom_after_the_first_line_is_kept() -> None:
    assert _lines(b"a\n\xef\xbb\xbfb\n") == ["a", "\ufeffb"]
    assert _decode(b"data:\xef\xbb\xbfx\n\n") == [SSEEvent("\ufeffx")]


def test_bom_alone_is_not_a_pending_line() -> None:
    decoder = SSELineDecoder()
    assert decoder.feed(b"\xef\xbb\xbf") == []
    assert not decoder.pending
    assert decoder.partial == ""


# --- fields ---------------------------------------------------------------------------------


def test_comment_lines_are_ignored() -> None:
    stream = b":hello\ndata:a\n: data: no\n:\ndata:b\n\n"
    assert _decode(stream) == [SSEEvent("a\nb")]


def test_comment_only_block_dispatches_nothing() -> None:
    assert _decode(b": keep-alive\n\n") == []


@pytest.mark.parametrize(
    ("line", "data"),
    [
        (b"data:a:b", "a:b"),  # split at the first colon only
        (b"data: a", "a"),  # one leading space removed
        (b"data:  a", " a"),  # ...only one
        (b"data:a ", "a "),  # trailing space kept
        (b"data:\ta", "\ta"),  # a tab is not a space
        (b"data", ""),  # no colon: the field with an empty value
        (b"data:", ""),
        (b"data: ", ""),
    ],
)
def test_field_value_parsing(line: bytes, data: str) -> None:
    assert _decode(line + b"\n\n") == [SSEEvent(data)]


def test_field_names_are_exact() -> None:
    stream = b"Data:no\ndata :no\n data:no\ndatas:no\ndata\x00:no\ndata:yes\n\n"
    assert _decode(stream) == [SSEEvent("yes")]


def test_unknown_fields_are_ignored() -> None:
    assert _decode(b"foo:bar\nbaz\ndata:x\n\n") == [SSEEvent("x")]


def test_data_lines_are_joined_and_one_trailing_lf_removed() -> None:
    assert _decode(b"data:a\ndata:b\ndata:c\n\n") == [SSEEvent("a\nb\nc")]
    assert _decode(b"data:\ndata:\n\n") == [SSEEvent("\n")]
    assert _decode(b"data:a\ndata:\n\n") == [SSEEvent("a\n")]


def test_event_type_applies_to_one_event() -> None:
    stream = b"event:add\ndata:1\n\ndata:2\n\nevent:\ndata:3\n\nevent\ndata:4\n\n"
    assert _decode(stream) == [
        SSEEvent("1", event="add"),
        SSEEvent("2"),
        SSEEvent("3"),
        SSEEvent("4"),
    ]


def test_blank_line_without_data_resets_event_type() -> None:
    assert _decode(b"event:add\n\ndata:x\n\n") == [SSEEvent("x")]


def test_id_persists_changes_and_resets() -> None:
    stream = b"data:1\n\nid:7\ndata:2\n\ndata:3\n\nid: 8\ndata:4\n\nid\ndata:5\n\n"
    assert _decode(stream) == [
        SSEEvent("1"),
        SSEEvent("2", id="7"),
        SSEEvent("3", id="7"),
        SSEEvent("4", id="8"),
        SSEEvent("5", id=""),
    ]


def test_id_containing_nul_is_ignored() -> None:
    stream = b"id:1\ndata:a\n\nid:2\x003\ndata:b\n\nid:\x00\ndata:c\n\n"
    assert _decode(stream) == [SSEEvent("a", id="1"), SSEEvent("b", id="1"), SSEEvent("c", id="1")]


@pytest.mark.parametrize(("value", "retry"), [(b"0", 0), (b"1500", 1500), (b"007", 7)])
def test_retry_digits(value: bytes, retry: int) -> None:
    assert _decode(b"retry:" + value + b"\ndata:x\n\n") == [SSEEvent("x", retry=retry)]


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"  5",  # the one space after the colon is removed, a second one is not
        b"5 ",
        b"-5",
        b"+5",
        b"1.5",
        b"1_000",
        b"1e3",
        b"0x10",
        "\u0661\u0662".encode(),  # Arabic-Indic digits: digits, but not ASCII
        "\u00b2".encode(),  # superscript two: str.isdigit() says yes
        b"9" * 5000,  # more digits than int() will convert: ignored, not a ValueError
    ],
)
def test_invalid_retry_is_ignored(value: bytes) -> None:
    stream = b"retry:100\nretry:" + value + b"\ndata:x\n\n"
    assert _decode(stream) == [SSEEvent("x", retry=100)]


def test_retry_is_kept_for_later_events() -> None:
    assert _decode(b"retry:5\n\ndata:a\n\ndata:b\n\n") == [
        SSEEvent("a", retry=5),
        SSEEvent("b", retry=5),
    ]


def test_nul_and_controls_inside_data_are_kept() -> None:
    assert _decode(b"data:\x00\x01\x7f\n\n") == [SSEEvent("\x00\x01\x7f")]


# --- end of stream and pending --------------------------------------------------------------


def test_event_cut_off_by_eof_is_not_dispatched() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data:a\n\ndata:b\n") == [SSEEvent("a")]
    assert decoder.pending
    assert decoder.finish() == []
    assert not decoder.pending


def test_line_cut_off_by_eof_is_not_a_line() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data:a\n\ndata: ab") == [SSEEvent("a")]
    assert decoder.pending
    assert decoder.finish() == []


def test_pending_states() -> None:
    decoder = SSEDecoder()
    assert not decoder.pending
    decoder.feed(b"id: 3\nevent: x\n")
    assert not decoder.pending  # no data: nothing would be dispatched
    decoder.feed(b": comm")
    assert decoder.pending
    decoder.feed(b"ent\n")
    assert not decoder.pending
    decoder.feed(b"data: x\n")
    assert decoder.pending
    decoder.feed(b"\n")
    assert not decoder.pending


def test_line_decoder_partial_and_finish() -> None:
    decoder = SSELineDecoder()
    assert decoder.feed(b"one\ntw") == ["one"]
    assert decoder.partial == "tw"
    assert decoder.pending
    assert decoder.finish() == []
    assert decoder.partial == "tw"  # what finish dropped, until the next feed
    assert not decoder.pending
    assert decoder.feed(b"three\n") == ["three"]  # a new stream: the dropped tail is gone
    assert decoder.partial == ""


def test_partial_shows_a_cut_character_as_replacement() -> None:
    decoder = SSELineDecoder()
    decoder.feed("data: €".encode()[:-1])
    assert decoder.partial == "data: \ufffd"


def test_finish_starts_a_reconnect_with_last_dispatched_id_and_retry() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"retry:50\nid:1\ndata:a\n\nid:2\n\nid:3\ndata:cut") == [
        SSEEvent("a", id="1", retry=50)
    ]
    # "id:2" ended by a blank line counts even without data; the undispatched "id:3" does not.
    assert decoder.last_event_id == "2"
    assert decoder.finish() == []
    assert decoder.last_event_id == "2"
    assert decoder.retry == 50
    # The new connection's BOM is stripped again, and its events see the carried-over id.
    assert decoder.feed(b"\xef\xbb\xbfdata:b\n\n") == [SSEEvent("b", id="2", retry=50)]


# --- UTF-8 ----------------------------------------------------------------------------------


def test_multibyte_characters_split_at_every_offset() -> None:
    text = "é€😀\u2028"
    stream = f"data:{text}\n\n".encode()
    for cut in range(len(stream) + 1):
        assert _decode(stream[:cut], stream[cut:]) == [SSEEvent(text)], cut


def test_invalid_utf8_is_replaced_by_default() -> None:
    assert _decode(b"data:a\xffb\xe2\x82\n\n") == [SSEEvent("a\ufffdb\ufffd")]


def test_invalid_utf8_raises_in_strict_mode() -> None:
    decoder = SSEDecoder(errors="strict")
    with pytest.raises(MalformedReplyError, match="invalid UTF-8"):
        decoder.feed(b"data:a\xffb\n\n")


def test_strict_error_is_a_remote_protocol_error() -> None:
    with pytest.raises(RemoteProtocolError):
        _decode(b"data:\xc0\xaf\n\n", errors="strict")


def test_stream_cut_inside_a_character_strict_and_replace() -> None:
    cut = "data:€".encode()[:-1]
    assert _decode(b"data:a\n\n", cut) == [SSEEvent("a")]  # replace: the tail is just dropped
    decoder = SSEDecoder(errors="strict")
    assert decoder.feed(b"data:a\n\n" + cut) == [SSEEvent("a")]
    with pytest.raises(MalformedReplyError):
        decoder.finish()
    assert not decoder.pending  # finish reset the state even though it raised


# --- limits and arguments -------------------------------------------------------------------


def test_line_of_exactly_the_limit_is_accepted() -> None:
    assert _decode(b"data:" + b"x" * 5 + b"\n\n", max_line_bytes=10) == [SSEEvent("xxxxx")]


def test_line_over_the_limit_raises() -> None:
    with pytest.raises(MalformedReplyError, match="exceeds the limit"):
        _decode(b"data:" + b"x" * 6 + b"\n\n", max_line_bytes=10)


def test_endless_line_raises_before_buffering_more_than_the_limit() -> None:
    decoder = SSEDecoder(max_line_bytes=1000)
    for _ in range(10):
        decoder.feed(b"x" * 100)  # exactly 1000 bytes buffered: still allowed
    with pytest.raises(MalformedReplyError):
        decoder.feed(b"x")


@pytest.mark.parametrize(
    "options", [{"errors": "ignore"}, {"max_line_bytes": 0}, {"max_line_bytes": -1}]
)
def test_bad_arguments(options: dict[str, Any]) -> None:
    with pytest.raises(LocalProtocolError):
        SSEDecoder(**options)


def test_event_is_a_frozen_value() -> None:
    event = SSEEvent("x")
    assert (event.data, event.event, event.id, event.retry) == ("x", "message", None, None)
    with pytest.raises(AttributeError):
        event.data = "y"  # type: ignore[misc]
