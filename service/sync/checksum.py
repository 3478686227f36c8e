"""Checksums: hashing files, reading published SHA-256 manifests, comparing digests.

S3's ETag is the MD5 of the object only for single-part uploads without SSE-KMS/SSE-C. S3 also
keeps full-object checksums (CRC64NVME by default since 2025, or the one the uploader chose),
which are used when present. For everything else the publisher relies on a SHA-256 published
next to the file (``<file>.sha256`` or ``SHA256SUMS`` in the version folder, as written by
``sha256sum``).
"""

from __future__ import annotations

import hashlib
import re
import zlib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Protocol

from service.sync.errors import VerificationError

SUMS_FILE = "SHA256SUMS"
SIDECAR_SUFFIX = ".sha256"
_CHUNK = 1024 * 1024
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


class Hasher(Protocol):
    """The part of hashlib's interface the publisher uses."""

    def update(self, data: bytes, /) -> None: ...
    def hexdigest(self) -> str: ...


class _Crc:
    """A CRC in hashlib's shape, hex-encoded big-endian like S3's base64 checksums."""

    def __init__(self, step: Callable[[bytes, int], int], width: int) -> None:
        self._step = step
        self._width = width
        self._value = 0

    def update(self, data: bytes, /) -> None:
        self._value = self._step(data, self._value)

    def hexdigest(self) -> str:
        return self._value.to_bytes(self._width, "big").hex()


def _crc_factories() -> dict[str, Callable[[], Hasher]]:
    """CRC32 always; CRC32C and CRC64NVME (S3's default) when awscrt is installed."""
    factories: dict[str, Callable[[], Hasher]] = {"crc32": lambda: _Crc(zlib.crc32, 4)}
    try:
        from awscrt import checksums
    except ImportError:
        return factories
    factories["crc32c"] = lambda: _Crc(checksums.crc32c, 4)
    factories["crc64nvme"] = lambda: _Crc(checksums.crc64nvme, 8)
    return factories


_CRC = _crc_factories()
SUPPORTED = frozenset({"md5", "sha1", "sha256", *_CRC})


def new_hasher(name: str) -> Hasher:
    """A hasher for a hashlib name or one of the CRCs S3 reports."""
    factory = _CRC.get(name)
    return factory() if factory else hashlib.new(name)


def file_digests(path: Path, algorithms: Iterable[str] = ("sha256",)) -> dict[str, str]:
    """Hex digests of ``path`` for each algorithm, in one read of the file."""
    hashers = {name: new_hasher(name) for name in algorithms}
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            for h in hashers.values():
                h.update(chunk)
    return {name: h.hexdigest() for name, h in hashers.items()}


def is_manifest(rel: str) -> bool:
    """Whether a version-folder file is a checksum manifest rather than model content."""
    return rel == SUMS_FILE or rel.endswith(SIDECAR_SUFFIX)


def parse_sums(text: str, origin: str) -> dict[str, str]:
    """Parse ``sha256sum`` output: ``<hex>  <name>`` (or ``<hex> *<name>``) per line."""
    sums: dict[str, str] = {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or not _HEX64.match(parts[0]):
            raise VerificationError(f"{origin}:{lineno}: not a '<sha256>  <file>' line: {raw!r}")
        name = parts[1].lstrip("*").removeprefix("./")
        sums[name] = parts[0].lower()
    return sums


def parse_sidecar(text: str, origin: str) -> str:
    """The digest in a ``<file>.sha256`` sidecar (its first word; the file name is optional)."""
    words = text.split()
    if not words or not _HEX64.match(words[0]):
        raise VerificationError(f"{origin}: expected a 64-hex-digit SHA-256, got {text[:80]!r}")
    return words[0].lower()


def published_sha256(manifests: Mapping[str, str], origin: str) -> dict[str, str]:
    """Expected SHA-256 per file from the texts of a version's manifest files.

    ``manifests`` maps each manifest's relative path to its text. A sidecar and SHA256SUMS that
    disagree about a file are an error: one of them is stale.
    """
    expected: dict[str, str] = {}
    for rel, text in sorted(manifests.items()):
        if rel == SUMS_FILE:
            entries = parse_sums(text, f"{origin}/{rel}")
        else:
            entries = {rel.removesuffix(SIDECAR_SUFFIX): parse_sidecar(text, f"{origin}/{rel}")}
        for name, digest in entries.items():
            if expected.get(name, digest) != digest:
                raise VerificationError(
                    f"{origin}: {SUMS_FILE} and {name}{SIDECAR_SUFFIX} disagree about {name}"
                )
            expected[name] = digest
    return expected


def verify(path: Path, expected: Mapping[str, str], label: str) -> None:
    """Raise VerificationError unless every expected digest matches the file at ``path``."""
    if not expected:
        raise VerificationError(f"{label}: no checksum to verify against")
    actual = file_digests(path, expected.keys())
    for algorithm, want in expected.items():
        if actual[algorithm] != want.lower():
            raise VerificationError(
                f"checksum mismatch for {label}: {algorithm} expected {want}, "
                f"got {actual[algorithm]}"
            )
