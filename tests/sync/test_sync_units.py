"""Small pieces of the publisher: checksum manifests, S3 digests, retention, progress."""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import zlib
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from service.sync.checksum import SUPPORTED, file_digests, parse_sums, published_sha256, verify
from service.sync.errors import VerificationError
from service.sync.repo import retention_victims
from service.sync.sources import S3Source, SourceFile
from service.sync.ui import Reporter

HEX = "ab" * 32


def test_sha256sums_accepts_sha256sum_output() -> None:
    text = f"{HEX}  model.onnx\n{'cd' * 32} *weights/w.bin\n\n# comment\n"
    assert parse_sums(text, "x") == {"model.onnx": HEX, "weights/w.bin": "cd" * 32}


def test_sha256sums_rejects_garbage() -> None:
    with pytest.raises(VerificationError, match="x/SHA256SUMS:1"):
        parse_sums("not-a-hash model.onnx\n", "x/SHA256SUMS")


def test_sidecar_and_sums_must_agree() -> None:
    manifests = {"SHA256SUMS": f"{HEX}  model.onnx\n", "model.onnx.sha256": "cd" * 32}
    with pytest.raises(VerificationError, match="disagree"):
        published_sha256(manifests, "s3://b/m/1")


@pytest.mark.parametrize("algorithm", sorted(SUPPORTED))
def test_every_supported_digest_matches_itself_and_not_a_change(
    tmp_path: Path, algorithm: str
) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"model bytes" * 1000)
    good = file_digests(path, [algorithm])
    verify(path, good, "f")
    path.write_bytes(b"model bytez" * 1000)
    with pytest.raises(VerificationError, match=f"f: {algorithm} expected"):
        verify(path, good, "f")


def test_crc32_matches_s3s_encoding(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"data")
    assert file_digests(path, ["crc32"]) == {"crc32": CRC32.hex()}


def test_verify_detects_a_flipped_byte(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"hello")
    verify(path, {"md5": hashlib.md5(b"hello").hexdigest()}, "f")
    with pytest.raises(VerificationError, match="checksum mismatch for f: md5"):
        verify(path, {"md5": hashlib.md5(b"hellO").hexdigest()}, "f")
    with pytest.raises(VerificationError, match="no checksum"):
        verify(path, {}, "f")


class FakeS3:
    """Only head_object, answering with the given metadata."""

    def __init__(self, head: dict[str, Any]) -> None:
        self.head = head

    def head_object(self, **kwargs: Any) -> dict[str, Any]:
        assert kwargs["ChecksumMode"] == "ENABLED"
        return self.head


SHA = hashlib.sha256(b"data").digest()
MD5 = hashlib.md5(b"data").hexdigest()
CRC32 = zlib.crc32(b"data").to_bytes(4, "big")


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        ({"ETag": f'"{MD5}"'}, {"md5": MD5}),
        ({"ETag": f'"{MD5}-3"'}, {}),  # multipart: the ETag is not an MD5
        ({"ETag": f'"{MD5}"', "ServerSideEncryption": "aws:kms"}, {}),  # KMS: nor here
        (
            {"ETag": f'"{MD5}-3"', "ChecksumSHA256": base64.b64encode(SHA).decode()},
            {"sha256": SHA.hex()},
        ),
        (
            {
                "ETag": f'"{MD5}-3"',
                "ChecksumSHA256": base64.b64encode(SHA).decode() + "-3",
                "ChecksumType": "COMPOSITE",
            },
            {},
        ),
        (
            {
                "ETag": f'"{MD5}-3"',
                "ChecksumCRC32": base64.b64encode(CRC32).decode(),
                "ChecksumType": "FULL_OBJECT",
            },
            {"crc32": CRC32.hex()},
        ),
    ],
)
def test_s3_digests_are_used_only_when_meaningful(
    head: dict[str, Any], expected: dict[str, str]
) -> None:
    source = S3Source("b", "p", client=FakeS3(head))
    assert source.expected(SourceFile("model.onnx", 4, "p/m/1/model.onnx")) == expected


@pytest.mark.parametrize(
    ("present", "keep", "published", "victims"),
    [
        ([1, 2, 3, 4, 5], 3, [5], [2, 1]),
        ([1, 2, 3, 4, 5], 0, [5], []),  # 0 keeps everything
        ([1, 2, 3, 9], 1, [3], [2, 1]),  # 3 was just published: kept although keep=1
        ([7], 1, [], []),  # the served version is never deleted
        ([4, 5, 6], 1, [], [5, 4]),
        ([], 3, [], []),
    ],
)
def test_retention(present: list[int], keep: int, published: list[int], victims: list[int]) -> None:
    assert retention_victims(present, keep, published) == victims
    if present:
        assert max(present) not in retention_victims(present, keep, published)


def test_progress_counts_bytes_on_a_terminal() -> None:
    console = Console(file=io.StringIO(), force_terminal=True, width=100)
    with Reporter(console, logging.getLogger("test.sync")) as reporter:
        with reporter.transfer("resnet/1/model.onnx", 10) as advance:
            advance(4)
            advance(6)
        with reporter.transfer("resnet/1/labels.txt", 3) as advance:
            advance(3)
    assert reporter.bytes_copied == 13
    assert "resnet/1/model.onnx" in console.file.getvalue()  # type: ignore[attr-defined]
