"""Where model versions come from: an S3 prefix or a local folder, both in Triton's layout.

Layout under the source root: ``<model>/<version>/...`` (numeric version folders holding
``model.onnx`` and any other files, sub-folders included) plus optional files directly in
``<model>/`` (e.g. ``config.pbtxt``). Names starting with "." are ignored, as the service does.

A source lists what it has (``scan``), copies one file (``fetch``) and says which digests the
copy must match according to the source's own metadata (``expected``). Published SHA-256
manifests are handled one level up, the same for both sources.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import BotoCoreError, ClientError

from service.sync.checksum import SUPPORTED, file_digests
from service.sync.errors import SourceError, UsageError

ProgressFn = Callable[[int], None]
_CHUNK = 1024 * 1024
_KMS = {"aws:kms", "aws:kms:dsse"}
_S3_CHECKSUMS = (
    ("ChecksumSHA256", "sha256"),
    ("ChecksumSHA1", "sha1"),
    ("ChecksumCRC64NVME", "crc64nvme"),
    ("ChecksumCRC32C", "crc32c"),
    ("ChecksumCRC32", "crc32"),
)
# The classic transfer manager everywhere: the CRT one (picked on some instance types) would
# behave differently from what is tested.
_TRANSFER = TransferConfig(preferred_transfer_client="classic")


@dataclass(frozen=True)
class SourceFile:
    """One file of the source: its path relative to its version (or model) folder."""

    rel: str
    size: int
    ref: str  # S3 key or absolute local path
    etag: str | None = None


@dataclass
class SourceVersion:
    """One numeric version folder of a model."""

    model: str
    version: int
    files: dict[str, SourceFile] = field(default_factory=dict)


@dataclass
class SourceModel:
    """One model folder: its versions and its model-level files (e.g. config.pbtxt)."""

    name: str
    versions: dict[int, SourceVersion] = field(default_factory=dict)
    extras: dict[str, SourceFile] = field(default_factory=dict)


class Source(Protocol):
    """What the publisher needs from a source."""

    url: str

    def scan(self) -> list[SourceModel]:
        """Every model folder with at least one numeric version."""
        ...

    def fetch(self, item: SourceFile, dest: Path, progress: ProgressFn) -> dict[str, str]:
        """Copy ``item`` to ``dest``; return digests of the bytes *read from the source*."""
        ...

    def expected(self, item: SourceFile) -> dict[str, str]:
        """Digests the copy must match per the source's metadata ({} when it has none)."""
        ...


def _hidden(name: str) -> bool:
    return name.startswith(".")


def _add(
    models: dict[str, SourceModel], parts: list[str], item_of: Callable[[str], SourceFile]
) -> None:
    """Place one file, given as path parts below the root, into the scanned tree."""
    if len(parts) < 2 or any(_hidden(p) for p in parts):
        return
    model = models.setdefault(parts[0], SourceModel(parts[0]))
    if len(parts) == 2:
        model.extras[parts[1]] = item_of(parts[1])
    elif parts[1].isdigit():
        version = int(parts[1])
        sv = model.versions.setdefault(version, SourceVersion(parts[0], version))
        rel = "/".join(parts[2:])
        sv.files[rel] = item_of(rel)


def _prune(models: dict[str, SourceModel]) -> list[SourceModel]:
    """Drop folders that hold no version: they are not models."""
    return [m for _, m in sorted(models.items()) if m.versions]


class LocalSource:
    """A folder on a local or mounted file system."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = str(root)

    def scan(self) -> list[SourceModel]:
        """Walk the folder (hidden names skipped)."""
        if not self.root.is_dir():
            raise SourceError(f"source folder {self.root} does not exist or is not a folder")
        models: dict[str, SourceModel] = {}
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = [d for d in dirnames if not _hidden(d)]
            for name in filenames:
                path = Path(dirpath, name)
                parts = list(path.relative_to(self.root).parts)
                _add(models, parts, lambda rel, p=path: SourceFile(rel, p.stat().st_size, str(p)))
        return _prune(models)

    def fetch(self, item: SourceFile, dest: Path, progress: ProgressFn) -> dict[str, str]:
        """Copy in chunks, hashing what is read, so a file changed mid-copy is caught."""
        sha = hashlib.sha256()
        try:
            with open(item.ref, "rb") as src, dest.open("wb") as out:
                while chunk := src.read(_CHUNK):
                    sha.update(chunk)
                    out.write(chunk)
                    progress(len(chunk))
        except FileNotFoundError as exc:
            raise SourceError(f"source file vanished during the copy: {item.ref}") from exc
        return {"sha256": sha.hexdigest()}

    def expected(self, item: SourceFile) -> dict[str, str]:
        """SHA-256 of the source file; fetch also hashes what it reads, to catch a change."""
        try:
            return file_digests(Path(item.ref))
        except FileNotFoundError as exc:
            raise SourceError(f"source file vanished during the sync: {item.ref}") from exc


class S3Source:
    """An S3 prefix, read with boto3 (managed, multipart-aware downloads)."""

    def __init__(self, bucket: str, prefix: str, client: Any | None = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self._client = client if client is not None else boto3.client("s3")

    def _key_prefix(self) -> str:
        return f"{self.prefix}/" if self.prefix else ""

    def _objects(self) -> Iterator[dict[str, Any]]:
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self._key_prefix()
        )
        for page in pages:
            yield from page.get("Contents", [])

    def scan(self) -> list[SourceModel]:
        """List every key under the prefix (paginated)."""
        models: dict[str, SourceModel] = {}
        base = self._key_prefix()
        try:
            for obj in self._objects():
                key: str = obj["Key"]
                if key.endswith("/"):
                    continue  # a console-made "folder" marker
                parts = key[len(base) :].split("/")
                _add(
                    models,
                    parts,
                    lambda rel, o=obj: SourceFile(
                        rel, int(o["Size"]), o["Key"], o.get("ETag", "").strip('"') or None
                    ),
                )
        except (ClientError, BotoCoreError) as exc:
            msg = _explain(exc, f"listing {self.url}", self.bucket, self.prefix)
            raise SourceError(msg) from exc
        return _prune(models)

    def fetch(self, item: SourceFile, dest: Path, progress: ProgressFn) -> dict[str, str]:
        """Managed download (ranged, parallel for big files); checked afterwards by digest."""
        try:
            self._client.download_file(
                self.bucket, item.ref, str(dest), Callback=progress, Config=_TRANSFER
            )
        except (ClientError, BotoCoreError) as exc:
            url = f"s3://{self.bucket}/{item.ref}"
            msg = _explain(exc, f"downloading {url}", self.bucket, self.prefix)
            raise SourceError(msg) from exc
        return {}

    def expected(self, item: SourceFile) -> dict[str, str]:
        """MD5 from a single-part ETag, plus every full-object checksum S3 keeps for it."""
        try:
            head = self._client.head_object(
                Bucket=self.bucket, Key=item.ref, ChecksumMode="ENABLED"
            )
        except (ClientError, BotoCoreError) as exc:
            url = f"s3://{self.bucket}/{item.ref}"
            msg = _explain(exc, f"reading metadata of {url}", self.bucket, self.prefix)
            raise SourceError(msg) from exc
        digests: dict[str, str] = {}
        full_object = head.get("ChecksumType", "FULL_OBJECT") == "FULL_OBJECT"
        for header, algorithm in _S3_CHECKSUMS:
            value = head.get(header) or ""
            # composite checksums of multipart uploads ("...-N") are not of the whole file
            if value and "-" not in value and full_object and algorithm in SUPPORTED:
                with contextlib.suppress(binascii.Error, ValueError):
                    digests[algorithm] = base64.b64decode(value, validate=True).hex()
        etag = (head.get("ETag") or item.etag or "").strip('"')
        encrypted = head.get("ServerSideEncryption") in _KMS or head.get("SSECustomerAlgorithm")
        if etag and "-" not in etag and not encrypted and len(etag) == 32:
            digests["md5"] = etag.lower()
        return digests


def _explain(exc: Exception, action: str, bucket: str, prefix: str) -> str:
    """An operator-facing message for an S3 failure, with the permission it likely needs."""
    code = exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""
    if code in {"AccessDenied", "403", "Forbidden", "AllAccessDisabled"}:
        scope = f"arn:aws:s3:::{bucket}/{prefix + '/' if prefix else ''}*"
        return (
            f"access denied {action}: the task role needs s3:ListBucket on arn:aws:s3:::{bucket} "
            f"and s3:GetObject on {scope} (plus kms:Decrypt if the bucket uses SSE-KMS)"
        )
    if code == "NoSuchBucket":
        return f"{action}: bucket {bucket!r} does not exist"
    if code in {"NoSuchKey", "404", "NotFound"}:
        return f"{action}: object not found (deleted while syncing?)"
    return f"{action} failed: {exc}"


def open_source(url: str, s3_client: Any | None = None) -> Source:
    """A Source for ``s3://bucket[/prefix]`` or a local folder path (``file://`` accepted)."""
    if not url:
        raise UsageError("no source: pass --source s3://bucket/prefix or a folder, or SYNC_SOURCE")
    parsed = urlparse(url)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise UsageError(f"bad source URL {url!r}: expected s3://bucket/prefix")
        return S3Source(parsed.netloc, parsed.path, client=s3_client)
    if parsed.scheme == "file":
        return LocalSource(Path(parsed.path))
    if parsed.scheme and len(parsed.scheme) > 1:  # not a Windows drive letter
        raise UsageError(f"bad source URL {url!r}: only s3://bucket/prefix or a local folder")
    return LocalSource(Path(url))
