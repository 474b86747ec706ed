"""Worked examples for the reply text decoders (the properties are in test_text_properties.py).

Expected strings are written out by hand from the byte values, never computed by the decoders.
"""

from __future__ import annotations

import pytest

from providers.errors import MalformedReplyError, RemoteProtocolError, TruncatedStreamError
from providers.wire.text import Utf8StreamDecoder, legacy_aivvm_decode_piece

PRIVET = "Привет".encode()  # П D0 9F, р D1 80, и D0 B8, в D0 B2, е D0 B5, т D1 82


def test_privet_split_inside_i() -> None:
    first, second = PRIVET[:5], PRIVET[5:]  # the cut falls between D0 and B8 of "и"
    assert first == b"\xd0\x9f\xd1\x80\xd0"
    decoder = Utf8StreamDecoder()
    assert decoder.feed(first) == "Пр"
    assert decoder.pending == b"\xd0"
    assert decoder.feed(second) == "ивет"
    assert decoder.finish() == ""
    assert decoder.text == "Привет"
    # The original decoded each piece on its own: both fail UTF-8, so every byte became the
    # Latin-1 character with the same number.
    assert legacy_aivvm_decode_piece(first) == "Ð\x9fÑ\x80Ð"
    assert legacy_aivvm_decode_piece(second) == "¸Ð²ÐµÑ\x82"


def test_one_byte_at_a_time() -> None:
    decoder = Utf8StreamDecoder()
    pieces = [decoder.feed(PRIVET[i : i + 1]) for i in range(len(PRIVET))]
    assert pieces == ["", "П", "", "р", "", "и", "", "в", "", "е", "", "т"]
    # The oldest Aivvm client read one byte at a time: every byte of a Cyrillic letter fails.
    legacy = [legacy_aivvm_decode_piece(PRIVET[i : i + 1]) for i in range(len(PRIVET))]
    assert "".join(legacy) == "Ð\x9fÑ\x80Ð¸Ð²ÐµÑ\x82"


def test_invalid_byte_names_its_stream_offset() -> None:
    decoder = Utf8StreamDecoder()
    decoder.feed(b"hello ")
    decoder.feed(b"\xd0")  # a good lead byte, held back
    with pytest.raises(MalformedReplyError, match=r"byte offset 6 of the stream") as info:
        decoder.feed(b"A")  # but not followed by a continuation byte
    assert isinstance(info.value, RemoteProtocolError)
    assert isinstance(info.value.__cause__, UnicodeDecodeError)
    with pytest.raises(MalformedReplyError, match="already failed"):
        decoder.feed(b"more")


def test_invalid_start_byte_later_in_a_piece() -> None:
    decoder = Utf8StreamDecoder()
    decoder.feed(b"abc")
    with pytest.raises(MalformedReplyError, match=r"invalid start byte at byte offset 5"):
        decoder.feed(b"de\xfffg")


def test_truncated_character_at_eof_keeps_the_text() -> None:
    decoder = Utf8StreamDecoder()
    assert decoder.feed("ok ж".encode() + b"\xe2\x82") == "ok ж"  # first two bytes of "€"
    with pytest.raises(TruncatedStreamError, match=r"2 byte\(s\).*byte offset 5") as info:
        decoder.finish()
    assert info.value.partial == "ok ж"


def test_empty_stream() -> None:
    decoder = Utf8StreamDecoder()
    assert decoder.feed(b"") == ""
    assert decoder.finish() == ""
    assert decoder.text == ""


def test_legacy_valid_utf8_is_left_alone_even_with_backslashes() -> None:
    assert legacy_aivvm_decode_piece(b"a\\nb") == "a\\nb"
    assert legacy_aivvm_decode_piece("жук".encode()) == "жук"


def test_legacy_fallback_interprets_escapes() -> None:
    # Not UTF-8 because of the trailing 0xFF, so unicode-escape runs and "\n" becomes a newline.
    assert legacy_aivvm_decode_piece(b"a\\nb\xff") == "a\nb\xff"
    assert legacy_aivvm_decode_piece(b"\\u0416\xd0") == "Ж\xd0"
    # Unknown escapes survive verbatim (the codec only warns about them).
    assert legacy_aivvm_decode_piece(b"\\q\xd0") == "\\q\xd0"


@pytest.mark.parametrize(
    "piece", [b"\\x4\xd0", b"\xd0 trailing \\", b"\\u12\xff", b"\\N{nope}\xd0"]
)
def test_legacy_malformed_escape_crashes(piece: bytes) -> None:
    with pytest.raises(MalformedReplyError, match="legacy Aivvm decoding crashed") as info:
        legacy_aivvm_decode_piece(piece)
    assert isinstance(info.value.__cause__, UnicodeDecodeError)


@pytest.mark.parametrize("prefix", [b"\xed\xa0", b"\xed\xbf"])
def test_a_prefix_no_continuation_could_complete_is_malformed_not_truncated(prefix: bytes) -> None:
    # Python's incremental codec holds these back like an incomplete character, but no byte
    # could complete them (they would encode surrogates), exactly as one-shot decoding reports.
    # Found by Hypothesis as b"\xed\xa0".
    decoder = Utf8StreamDecoder()
    assert decoder.feed(b"ok" + prefix) == "ok"
    with pytest.raises(MalformedReplyError, match="invalid continuation byte at byte offset 2"):
        decoder.finish()
