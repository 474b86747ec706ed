"""Properties of the reply text decoders over any text and any way of cutting its bytes.

Expectations come from Python's own one-shot codecs on the whole input (``bytes.decode``), or,
for the legacy Aivvm decoding of backslash-free text, from the fact that unicode-escape maps every
byte without a backslash to the code point of the same number, which is exactly Latin-1.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from providers.errors import MalformedReplyError, TruncatedStreamError
from providers.wire.text import Utf8StreamDecoder, legacy_aivvm_decode_piece


def _cut(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    bounds = sorted(cuts)
    return [data[a:b] for a, b in zip([0, *bounds], [*bounds, len(data)], strict=True)]


def _cuts(data: bytes) -> st.SearchStrategy[list[int]]:
    return st.lists(st.integers(0, len(data)), max_size=10)


def _decode_all(pieces: Sequence[bytes]) -> str:
    decoder = Utf8StreamDecoder()
    text = "".join(decoder.feed(piece) for piece in pieces)
    return text + decoder.finish()


def _on_char_boundary(text: str, offset: int) -> bool:
    # A byte offset is between characters iff the byte there is not a UTF-8 continuation byte.
    data = text.encode()
    return offset == len(data) or data[offset] & 0xC0 != 0x80


@given(text=st.text(), data=st.data())
def test_utf8_decoder_is_exact_for_any_cut(text: str, data: st.DataObject) -> None:
    encoded = text.encode()
    pieces = _cut(encoded, data.draw(_cuts(encoded)))
    assert _decode_all(pieces) == text


@given(text=st.text(min_size=1), data=st.data())
def test_utf8_decoder_returns_text_as_soon_as_complete(text: str, data: st.DataObject) -> None:
    encoded = text.encode()
    cuts = sorted(data.draw(_cuts(encoded)))
    decoder = Utf8StreamDecoder()
    got = ""
    for start, end in zip([0, *cuts], [*cuts, len(encoded)], strict=True):
        got += decoder.feed(encoded[start:end])
        # Everything up to the last complete character before `end` is out, nothing more.
        complete = encoded[:end].decode("utf-8", "ignore")
        assert got == complete


def _one_shot_failure(raw: bytes) -> UnicodeDecodeError | None:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc
    return None


@given(raw=st.binary(max_size=40), data=st.data())
def test_utf8_decoder_agrees_with_one_shot_decoding(raw: bytes, data: st.DataObject) -> None:
    pieces = _cut(raw, data.draw(_cuts(raw)))
    failure = _one_shot_failure(raw)
    if failure is None:
        assert _decode_all(pieces) == raw.decode("utf-8")
    elif failure.reason == "unexpected end of data":
        with pytest.raises(TruncatedStreamError) as truncated:
            _decode_all(pieces)
        assert truncated.value.partial == raw[: failure.start].decode("utf-8")
        assert f"byte offset {failure.start} " in str(truncated.value)
    else:
        with pytest.raises(MalformedReplyError) as malformed:
            _decode_all(pieces)
        assert not isinstance(malformed.value, TruncatedStreamError)
        assert f"byte offset {failure.start} " in str(malformed.value)


@given(data=st.data())
def test_utf8_decoder_reports_truncation(data: st.DataObject) -> None:
    multibyte = st.characters(min_codepoint=0x80, codec="utf-8")
    text = data.draw(st.text()) + data.draw(multibyte) + data.draw(st.text())
    encoded = text.encode()
    inside = [i for i in range(1, len(encoded)) if not _on_char_boundary(text, i)]
    end = data.draw(st.sampled_from(inside))
    pieces = _cut(encoded[:end], data.draw(_cuts(encoded[:end])))
    with pytest.raises(TruncatedStreamError) as info:
        _decode_all(pieces)
    # The characters wholly before the cut, nothing of the cut one.
    assert info.value.partial == encoded[:end].decode("utf-8", "ignore")


_NO_BACKSLASH = st.text(st.characters(codec="utf-8", exclude_characters="\\"))


def _latin1_or_utf8(piece: bytes) -> str:
    try:
        return piece.decode("utf-8")
    except UnicodeDecodeError:
        return piece.decode("latin-1")


@given(text=_NO_BACKSLASH, data=st.data())
def test_legacy_aivvm_decoding_of_backslash_free_text(text: str, data: st.DataObject) -> None:
    encoded = text.encode()
    cuts = data.draw(_cuts(encoded))
    pieces = _cut(encoded, cuts)
    decoded = [legacy_aivvm_decode_piece(piece) for piece in pieces]
    assert decoded == [_latin1_or_utf8(piece) for piece in pieces]
    if all(_on_char_boundary(text, cut) for cut in cuts):
        assert "".join(decoded) == text
    else:
        # A cut inside a character makes the piece after it start with a continuation byte: that
        # piece turns into mojibake, one character per byte, so the text grows and differs.
        assert "".join(decoded) != text
        assert len("".join(decoded)) > len(text)


@given(data=st.data())
def test_legacy_aivvm_differs_from_correct_decoder_on_split_characters(data: st.DataObject) -> None:
    # The harness's headline: the same split stream, decoded both ways.
    text = data.draw(
        st.text(
            st.characters(min_codepoint=0x80, codec="utf-8", exclude_characters="\\"), min_size=1
        )
    )
    encoded = text.encode()
    inside = [i for i in range(1, len(encoded)) if not _on_char_boundary(text, i)]
    cut = data.draw(st.sampled_from(inside))
    pieces = [encoded[:cut], encoded[cut:]]
    assert _decode_all(pieces) == text
    assert "".join(legacy_aivvm_decode_piece(piece) for piece in pieces) != text
