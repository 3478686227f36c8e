"""Compressed request bodies (``Content-Encoding: gzip`` / ``deflate``), decoded with a bound.

``tritonclient``'s ``request_compression_algorithm`` sends them, and Triton accepts them. The
decompressed size is what the body limit (MAX_REQUEST_BYTES) applies to: decompression stops
as soon as the output would pass it (413), so a small "zip bomb" never expands in memory.
``deflate`` is read as zlib-wrapped (RFC 9110, and what ``tritonclient`` sends) or raw.
Any other coding is refused with 415, naming the accepted ones.
"""

from __future__ import annotations

import zlib

from service.errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType

ACCEPTED = ("gzip", "deflate", "identity")
_CHUNK = 1 << 20
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


def parse_encoding(value: str | None) -> str | None:
    """The coding to undo (None: the body is not compressed), or 415 for one we do not take."""
    if value is None:
        return None
    codings = [c.strip().lower() for c in value.split(",") if c.strip()]
    codings = [c for c in codings if c != "identity"]
    if not codings:
        return None
    if len(codings) > 1 or codings[0] not in _WBITS:
        raise UnsupportedMediaType(
            f"Content-Encoding {value!r} is not supported; accepted: {', '.join(ACCEPTED)}"
        )
    return codings[0]


def decompress(body: bytes, coding: str, limit: int) -> bytes:
    """Undo ``coding``; 413 as soon as the output would exceed ``limit`` bytes."""
    try:
        return _inflate(body, _WBITS[coding], limit)
    except zlib.error as first:
        if coding != "deflate":
            raise InvalidInput(f"body is not valid {coding} data: {first}") from None
    try:  # raw deflate, as some clients send it
        return _inflate(body, -zlib.MAX_WBITS, limit)
    except zlib.error as exc:
        raise InvalidInput(f"body is not valid deflate data: {exc}") from None


def _inflate(body: bytes, wbits: int, limit: int) -> bytes:
    inflater = zlib.decompressobj(wbits)
    parts: list[bytes] = []
    size = 0
    data = body
    while True:
        chunk = inflater.decompress(data, _CHUNK)
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(
                f"decompressed request body exceeds the limit of {limit} bytes (MAX_REQUEST_BYTES)"
            )
        parts.append(chunk)
        data = inflater.unconsumed_tail
        if not data and (len(chunk) < _CHUNK or inflater.eof):  # else output may be pending
            break
    tail = inflater.flush()
    if size + len(tail) > limit:
        raise PayloadTooLarge(
            f"decompressed request body exceeds the limit of {limit} bytes (MAX_REQUEST_BYTES)"
        )
    if not inflater.eof:
        raise zlib.error("truncated stream")
    if inflater.unused_data:
        raise zlib.error("trailing bytes after the compressed stream")
    parts.append(tail)
    return b"".join(parts)
