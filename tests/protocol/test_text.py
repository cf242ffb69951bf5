"""Splitting long texts and files into OAEP-sized parts (SOCP §2 project decision)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from socp.protocol.limits import OAEP_MAX_PLAINTEXT
from socp.protocol.text import chunk_bytes, split_utf8


def _check_parts(text: str, parts: list[bytes], limit: int = OAEP_MAX_PLAINTEXT) -> None:
    assert parts, "even an empty text is one (empty) part"
    for part in parts:
        assert len(part) <= limit
        part.decode("utf-8")  # each part alone is valid UTF-8: no character was cut
    assert b"".join(parts).decode("utf-8") == text
    # Parts are as full as possible: only the last may be short by more than a character.
    for part in parts[:-1]:
        assert len(part) > limit - 4


TEXTS = {
    "empty": "",
    "one-ascii": "a",
    "ascii-446": "a" * 446,
    "ascii-447": "a" * 447,
    "ascii-892": "a" * 892,
    "ascii-long": "The quick brown fox. " * 200,
    "e-acute": "é" * 1000,                  # 2 bytes each: 446 is a boundary
    "e-acute-offset": "x" + "é" * 1000,     # boundary falls inside a character
    "cjk": "中" * 500,                      # 3 bytes: 446 is not a multiple of 3
    "cjk-offset": "ab" + "中" * 500,
    "emoji": "🙂" * 300,                    # 4 bytes
    "emoji-offsets": "a🙂bb🙂ccc🙂" * 100,
    "mixed": ("héllo 中文 🙂 " * 80),
    "zwj-sequence": "👩‍👩‍👧‍👦" * 60,      # code points split, bytes of each never cut
}


@pytest.mark.parametrize("name", sorted(TEXTS))
def test_split_utf8_named_texts(name: str) -> None:
    text = TEXTS[name]
    _check_parts(text, split_utf8(text))


@pytest.mark.parametrize("length", [445, 446, 447, 891, 892, 893])
@pytest.mark.parametrize("char", ["a", "é", "中", "🙂"])
def test_split_utf8_boundary_lengths_in_bytes(length: int, char: str) -> None:
    width = len(char.encode())
    text = "a" * (length % width) + char * (length // width)
    assert len(text.encode()) == length
    parts = split_utf8(text)
    _check_parts(text, parts)
    if length <= OAEP_MAX_PLAINTEXT:
        assert len(parts) == 1


def test_split_utf8_exactly_446_ascii_is_one_part() -> None:
    assert split_utf8("a" * 446) == [b"a" * 446]
    assert split_utf8("a" * 447) == [b"a" * 446, b"a"]


def test_split_utf8_refuses_a_limit_smaller_than_a_character() -> None:
    with pytest.raises(ValueError):
        split_utf8("abc", limit=3)


@given(text=st.text(), limit=st.integers(min_value=4, max_value=600))
def test_split_utf8_property(text: str, limit: int) -> None:
    _check_parts(text, split_utf8(text, limit), limit)


@given(data=st.binary(max_size=3000))
def test_chunk_bytes_property(data: bytes) -> None:
    chunks = chunk_bytes(data)
    assert b"".join(chunks) == data
    assert all(len(chunk) <= OAEP_MAX_PLAINTEXT for chunk in chunks)
    assert all(len(chunk) == OAEP_MAX_PLAINTEXT for chunk in chunks[:-1])
