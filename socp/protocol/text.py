"""Splitting long plaintexts into OAEP-sized parts (§2 project decision)."""

from __future__ import annotations

from .limits import OAEP_MAX_PLAINTEXT


def split_utf8(text: str, limit: int = OAEP_MAX_PLAINTEXT) -> list[bytes]:
    """UTF-8 parts of at most `limit` bytes, never cutting a character in two."""
    if limit < 4:
        raise ValueError("limit must fit any UTF-8 character")
    data = text.encode("utf-8")
    parts: list[bytes] = []
    start = 0
    while start < len(data):
        end = min(start + limit, len(data))
        # Step back over UTF-8 continuation bytes (10xxxxxx) to a character start.
        while end < len(data) and data[end] & 0xC0 == 0x80:
            end -= 1
        parts.append(data[start:end])
        start = end
    return parts or [b""]


def chunk_bytes(data: bytes, limit: int = OAEP_MAX_PLAINTEXT) -> list[bytes]:
    """File chunks: at most `limit` plaintext bytes each (interop table)."""
    return [data[i : i + limit] for i in range(0, len(data), limit)] or [b""]
