"""The publisher against a moto S3 bucket: copy, verify, load, reveal, retain."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import Stubber

from service.sync.checksum import SUPPORTED
from service.sync.repo import repository_lock
from tests.sync.conftest import (
    BUCKET,
    PREFIX,
    SOURCE,
    hidden_leftovers,
    onnx_model,
    put,
    put_multipart,
    run_sync,
    sha256,
    visible,
)

CONFIG = b'name: "bert"\nplatform: "onnxruntime_onnx"\n'


def seed_two_models(s3: Any) -> None:
    for v in (1, 2, 3):
        put(s3, f"resnet/{v}/model.onnx", onnx_model(v))
    put(s3, "resnet/3/labels.txt", b"cat\ndog\n")
    put(s3, "resnet/3/extra/vocab.json", b"{}")
    for v in (1, 2):
        put(s3, f"bert/{v}/model.onnx", onnx_model(10 + v))
    put(s3, "bert/config.pbtxt", CONFIG)


def test_happy_path_publishes_two_models_with_all_files(s3: Any, dest: Path) -> None:
    seed_two_models(s3)

    result = run_sync("--source", SOURCE, "--dest", str(dest), s3=s3)

    assert result.code == 0, result.out
    assert visible(dest) == {"bert": [1, 2], "resnet": [1, 2, 3]}
    assert (dest / "resnet/2/model.onnx").read_bytes() == onnx_model(2)
    assert (dest / "bert/1/model.onnx").read_bytes() == onnx_model(11)
    assert (dest / "resnet/3/labels.txt").read_bytes() == b"cat\ndog\n"
    assert (dest / "resnet/3/extra/vocab.json").read_bytes() == b"{}"
    assert (dest / "bert/config.pbtxt").read_bytes() == CONFIG
    assert hidden_leftovers(dest) == []
    # readable by the service's uid, whatever the publisher's umask
    assert (dest / "resnet/3").stat().st_mode & 0o777 == 0o755
    assert (dest / "resnet/3/model.onnx").stat().st_mode & 0o777 == 0o644
    assert "published new model resnet (versions 1, 2, 3)" in result.out


def test_second_run_with_nothing_new_does_nothing(
    s3: Any, dest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_two_models(s3)
    assert run_sync("--source", SOURCE, "--dest", str(dest), s3=s3).code == 0
    inodes = {p: p.stat().st_ino for p in dest.rglob("*")}

    def no_download(*args: object, **kwargs: object) -> None:
        raise AssertionError("an up-to-date run must not download anything")

    monkeypatch.setattr(s3, "download_file", no_download)
    again = run_sync("--source", SOURCE, "--dest", str(dest), s3=s3)

    assert again.code == 0, again.out
    assert "up to date: 2 models, nothing to copy" in again.out
    assert {p: p.stat().st_ino for p in dest.rglob("*")} == inodes


def test_new_version_is_added_and_oldest_retired(s3: Any, dest: Path) -> None:
    seed_two_models(s3)
    assert run_sync("--source", SOURCE, "--dest", str(dest), s3=s3).code == 0
    kept = (dest / "resnet/3").stat().st_ino
    put(s3, "resnet/4/model.onnx", onnx_model(4))

    result = run_sync("--source", SOURCE, "--dest", str(dest), "--keep", "3", s3=s3)

    assert result.code == 0, result.out
    assert visible(dest) == {"bert": [1, 2], "resnet": [2, 3, 4]}
    assert (dest / "resnet/3").stat().st_ino == kept  # existing versions are never rewritten
    assert "removed old version resnet/1" in result.out
    assert hidden_leftovers(dest) == []


def test_only_the_newest_versions_are_copied(s3: Any, dest: Path) -> None:
    for v in (1, 2, 3, 4, 5):
        put(s3, f"resnet/{v}/model.onnx", onnx_model(v))

    result = run_sync("--source", SOURCE, "--dest", str(dest), "--keep", "2", s3=s3)

    assert result.code == 0, result.out
    assert visible(dest) == {"resnet": [4, 5]}


def test_changed_config_file_is_replaced(s3: Any, dest: Path) -> None:
    seed_two_models(s3)
    assert run_sync("--source", SOURCE, "--dest", str(dest), s3=s3).code == 0
    put(s3, "bert/config.pbtxt", CONFIG + b"max_batch_size: 8\n")

    result = run_sync("--source", SOURCE, "--dest", str(dest), s3=s3)

    assert result.code == 0, result.out
    assert (dest / "bert/config.pbtxt").read_bytes().endswith(b"max_batch_size: 8\n")
    assert "updated bert/config.pbtxt" in result.out
    assert visible(dest) == {"bert": [1, 2], "resnet": [1, 2, 3]}


@pytest.mark.parametrize("manifest", ["SHA256SUMS", "model.onnx.sha256"])
def test_tampered_published_checksum_leaves_nothing_visible(
    s3: Any, dest: Path, manifest: str
) -> None:
    put(s3, "resnet/1/model.onnx", onnx_model(1))
    assert run_sync("--source", SOURCE, "--dest", str(dest), s3=s3).code == 0
    served = (dest / "resnet/1").stat().st_ino
    put(s3, "resnet/2/model.onnx", onnx_model(2))
    wrong = sha256(b"something else")
    put(s3, f"resnet/2/{manifest}", f"{wrong}  model.onnx\n".encode())

    result = run_sync("--source", SOURCE, "--dest", str(dest), s3=s3)

    assert result.code == 4, result.out
    assert "checksum mismatch for resnet/2/model.onnx" in result.out
    assert visible(dest) == {"resnet": [1]}
    assert (dest / "resnet/1").stat().st_ino == served
    assert hidden_leftovers(dest) == []


CORRUPTION_CASES: list[tuple[dict[str, str], str]] = [
    ({}, "md5"),  # single-part upload, no S3 checksum: the ETag is the MD5
    ({"ChecksumAlgorithm": "CRC32"}, "crc32"),
    ({"ChecksumAlgorithm": "SHA256"}, "sha256"),
    ({"ChecksumAlgorithm": "SHA256", "SSEKMSKeyId": "kms"}, "sha256"),  # ETag not an MD5
]
if "crc64nvme" in SUPPORTED:  # S3's default checksum; needs awscrt (boto3[crt]) to compute
    CORRUPTION_CASES.append(({"ChecksumAlgorithm": "CRC64NVME"}, "crc64nvme"))


@pytest.mark.parametrize(("upload", "caught_by"), CORRUPTION_CASES)
def test_bytes_corrupted_in_transit_are_rejected(
    s3: Any,
    dest: Path,
    monkeypatch: pytest.MonkeyPatch,
    upload: dict[str, str],
    caught_by: str,
) -> None:
    import boto3
    from botocore.config import Config

    uploader = boto3.client(
        "s3", region_name="eu-west-1", config=Config(request_checksum_calculation="when_required")
    )
    if "SSEKMSKeyId" in upload:
        key = boto3.client("kms", region_name="eu-west-1").create_key()["KeyMetadata"]["KeyId"]
        upload = {**upload, "SSEKMSKeyId": key, "ServerSideEncryption": "aws:kms"}
    uploader.put_object(
        Bucket=BUCKET, Key=f"{PREFIX}/resnet/1/model.onnx", Body=onnx_model(1), **upload
    )
    real_download = s3.download_file

    def flip_one_byte(bucket: str, key: str, filename: str, **kwargs: Any) -> None:
        real_download(bucket, key, filename, **kwargs)
        data = bytearray(Path(filename).read_bytes())
        data[-1] ^= 0xFF
        Path(filename).write_bytes(bytes(data))

    monkeypatch.setattr(s3, "download_file", flip_one_byte)
    result = run_sync("--source", SOURCE, "--dest", str(dest), s3=s3)

    assert result.code == 4, result.out
    assert f"checksum mismatch for resnet/1/model.onnx: {caught_by} expected" in result.out
    assert visible(dest) == {}
    assert hidden_leftovers(dest) == []


def test_multipart_upload_needs_a_published_sha256(s3: Any, dest: Path) -> None:
    body = onnx_model(1)
    etag = put_multipart(s3, "resnet/1/model.onnx", body)
    assert etag.strip('"').endswith("-1")

    refused = run_sync("--source", SOURCE, "--dest", str(dest), s3=s3)
    assert refused.code == 4, refused.out
    assert "cannot verify resnet/1/model.onnx" in refused.out
    assert visible(dest) == {}

    put(s3, "resnet/1/SHA256SUMS", f"{sha256(body)}  model.onnx\n".encode())
    accepted = run_sync("--source", SOURCE, "--dest", str(dest), s3=s3)
    assert accepted.code == 0, accepted.out
    assert (dest / "resnet/1/model.onnx").read_bytes() == body


def test_invalid_onnx_is_rejected(s3: Any, dest: Path) -> None:
    put(s3, "resnet/1/model.onnx", onnx_model(1))
    assert run_sync("--source", SOURCE, "--dest", str(dest), s3=s3).code == 0
    put(s3, "resnet/2/model.onnx", b"this is not a protobuf")

    result = run_sync("--source", SOURCE, "--dest", str(dest), s3=s3)

    assert result.code == 4, result.out
    assert "resnet/2: model.onnx is not a loadable ONNX model" in result.out
    assert visible(dest) == {"resnet": [1]}
    assert hidden_leftovers(dest) == []


def test_version_without_model_file_is_rejected(s3: Any, dest: Path) -> None:
    put(s3, "resnet/1/model.onnx", onnx_model(1))
    put(s3, "resnet/2/weights.bin", b"\0" * 16)

    result = run_sync("--source", SOURCE, "--dest", str(dest), s3=s3)

    assert result.code == 4, result.out
    assert "no model.onnx" in result.out
    assert visible(dest) == {"resnet": [1]}  # version 2 is broken, version 1 is fine


def test_one_bad_model_does_not_block_the_others(s3: Any, dest: Path) -> None:
    put(s3, "good/1/model.onnx", onnx_model(1))
    put(s3, "bad/1/model.onnx", b"garbage")

    result = run_sync("--source", SOURCE, "--dest", str(dest), s3=s3)

    assert result.code == 4, result.out
    assert visible(dest) == {"good": [1]}
    assert hidden_leftovers(dest) == []


def test_new_model_appears_with_its_good_versions_only(s3: Any, dest: Path) -> None:
    for v in (1, 2):
        put(s3, f"resnet/{v}/model.onnx", onnx_model(v))
    put(s3, "resnet/3/model.onnx", onnx_model(3))
    put(s3, "resnet/3/SHA256SUMS", f"{sha256(b'stale')}  model.onnx\n".encode())

    result = run_sync("--source", SOURCE, "--dest", str(dest), s3=s3)

    assert result.code == 4, result.out
    assert visible(dest) == {"resnet": [1, 2]}
    assert hidden_leftovers(dest) == []


def test_new_model_with_a_bad_config_file_stays_hidden(
    s3: Any, dest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    put(s3, "bert/1/model.onnx", onnx_model(1))
    put(s3, "bert/config.pbtxt", CONFIG)
    real_download = s3.download_file

    def truncate_config(bucket: str, key: str, filename: str, **kwargs: Any) -> None:
        real_download(bucket, key, filename, **kwargs)
        if key.endswith("config.pbtxt"):
            Path(filename).write_bytes(CONFIG[:-1])

    monkeypatch.setattr(s3, "download_file", truncate_config)
    result = run_sync("--source", SOURCE, "--dest", str(dest), s3=s3)

    assert result.code == 4, result.out
    assert "size mismatch for bert/config.pbtxt" in result.out
    assert visible(dest) == {}
    assert hidden_leftovers(dest) == []


@pytest.mark.parametrize("interruption", [RuntimeError("connection reset"), KeyboardInterrupt()])
def test_interrupted_copy_leaves_no_partial_version(
    s3: Any, dest: Path, monkeypatch: pytest.MonkeyPatch, interruption: BaseException
) -> None:
    put(s3, "resnet/1/model.onnx", onnx_model(1))
    assert run_sync("--source", SOURCE, "--dest", str(dest), s3=s3).code == 0
    before = {p: p.stat().st_ino for p in dest.rglob("*")}
    put(s3, "resnet/2/model.onnx", onnx_model(2))
    put(s3, "resnet/2/weights.bin", b"\1" * 4096)

    def dies_half_way(bucket: str, key: str, filename: str, **kwargs: Any) -> None:
        Path(filename).write_bytes(b"\1" * 100)  # half a file on disk, then the line drops
        raise interruption

    monkeypatch.setattr(s3, "download_file", dies_half_way)
    if isinstance(interruption, Exception):
        result = run_sync("--source", SOURCE, "--dest", str(dest), s3=s3)
        assert result.code == 1
        assert "connection reset" in result.out
    else:
        with pytest.raises(KeyboardInterrupt):
            run_sync("--source", SOURCE, "--dest", str(dest), s3=s3)

    assert visible(dest) == {"resnet": [1]}
    assert hidden_leftovers(dest) == []
    assert {p: p.stat().st_ino for p in dest.rglob("*") if p in before} == before


def test_leftovers_of_a_crashed_run_are_cleaned_up(s3: Any, dest: Path) -> None:
    put(s3, "resnet/1/model.onnx", onnx_model(1))
    assert run_sync("--source", SOURCE, "--dest", str(dest), s3=s3).code == 0
    (dest / "resnet/.tmp-2-dead").mkdir()
    (dest / "resnet/.tmp-2-dead/model.onnx").write_bytes(b"partial")
    (dest / ".tmp-model-other-dead").mkdir()
    (dest / "resnet/.del-0-dead").mkdir()

    result = run_sync("--source", SOURCE, "--dest", str(dest), s3=s3)

    assert result.code == 0, result.out
    assert hidden_leftovers(dest) == []
    assert "removed leftover" in result.out
    assert visible(dest) == {"resnet": [1]}


def test_retention_never_deletes_the_served_version(s3: Any, dest: Path) -> None:
    # The repository already serves version 9, which the source does not have.
    for v in (1, 2, 3, 9):
        (dest / "resnet" / str(v)).mkdir(parents=True)
        (dest / "resnet" / str(v) / "model.onnx").write_bytes(onnx_model(v))
    for v in (4, 5):
        put(s3, f"resnet/{v}/model.onnx", onnx_model(v))

    result = run_sync("--source", SOURCE, "--dest", str(dest), "--keep", "2", s3=s3)

    assert result.code == 0, result.out
    assert visible(dest) == {"resnet": [5, 9]}


def test_dry_run_changes_nothing(s3: Any, dest: Path) -> None:
    seed_two_models(s3)
    (dest / "resnet/.tmp-9-dead").mkdir(parents=True)

    result = run_sync("--source", SOURCE, "--dest", str(dest), "--dry-run", s3=s3)

    assert result.code == 0, result.out
    assert "resnet: would copy versions 1, 2, 3" in result.out
    assert "would remove leftover" in result.out
    assert visible(dest) == {"resnet": []}
    assert hidden_leftovers(dest) == ["resnet/.tmp-9-dead"]


def test_a_second_publisher_is_refused_while_one_runs(s3: Any, dest: Path) -> None:
    seed_two_models(s3)
    with repository_lock(dest):
        result = run_sync("--source", SOURCE, "--dest", str(dest), s3=s3)
    assert result.code == 5, result.out
    assert "another sync holds" in result.out
    assert visible(dest) == {}


def test_access_denied_exits_with_a_clear_message(aws: None, dest: Path) -> None:
    import boto3

    client = boto3.client("s3", region_name="eu-west-1")
    with Stubber(client) as stub:
        stub.add_client_error(
            "list_objects_v2",
            service_error_code="AccessDenied",
            service_message="Access Denied",
            http_status_code=403,
        )
        result = run_sync("--source", SOURCE, "--dest", str(dest), s3=client)
    assert result.code == 3, result.out
    assert f"access denied listing {SOURCE}" in result.out
    assert f"s3:ListBucket on arn:aws:s3:::{BUCKET}" in result.out


def test_missing_bucket_and_empty_prefix_fail(s3: Any, dest: Path) -> None:
    missing = run_sync("--source", "s3://no-such-bucket/x", "--dest", str(dest), s3=s3)
    assert missing.code == 3, missing.out
    assert "bucket 'no-such-bucket' does not exist" in missing.out

    empty = run_sync("--source", f"s3://{BUCKET}/nothing-here", "--dest", str(dest), s3=s3)
    assert empty.code == 3, empty.out
    assert "no model versions found" in empty.out


@pytest.mark.parametrize("url", ["gs://bucket/models", "s3:///models", ""])
def test_bad_source_url_is_a_usage_error(aws: None, dest: Path, url: str) -> None:
    result = run_sync("--source", url, "--dest", str(dest))
    assert result.code == 2, result.out


def test_missing_destination_is_reported(s3: Any, tmp_path: Path) -> None:
    put(s3, "resnet/1/model.onnx", onnx_model(1))
    result = run_sync("--source", SOURCE, "--dest", str(tmp_path / "not-mounted"), s3=s3)
    assert result.code == 6, result.out
    assert "is the file system mounted" in result.out


def test_settings_come_from_the_environment(
    s3: Any, dest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for v in (1, 2, 3):
        put(s3, f"resnet/{v}/model.onnx", onnx_model(v))
    monkeypatch.setenv("SYNC_SOURCE", SOURCE)
    monkeypatch.setenv("MODEL_DIR", str(dest))
    monkeypatch.setenv("SYNC_KEEP", "1")

    result = run_sync(s3=s3)

    assert result.code == 0, result.out
    assert visible(dest) == {"resnet": [3]}


def test_json_logs_for_the_log_router(
    s3: Any, dest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import io

    from rich.console import Console

    from service.sync.cli import main

    put(s3, "resnet/1/model.onnx", b"garbage")
    console = Console(file=io.StringIO(), force_terminal=False)
    code = main(
        ["--source", SOURCE, "--dest", str(dest), "--log-format", "json"],
        s3_client=s3,
        console=console,
    )

    assert code == 4
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    errors = [r for r in records if r["level"] == "ERROR"]
    assert errors and all(r["logger"] == "service.sync" for r in records)
    assert errors[-1]["exit_code"] == 4


def test_keys_outside_the_layout_are_ignored(s3: Any, dest: Path) -> None:
    put(s3, "resnet/1/model.onnx", onnx_model(1))
    put(s3, "resnet/latest/model.onnx", onnx_model(2))  # not a numeric version
    put(s3, "resnet/.hidden/1/model.onnx", onnx_model(3))
    put(s3, "README.md", b"top-level file, not a model")
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}/resnet/2/", Body=b"")  # console folder marker

    result = run_sync("--source", SOURCE, "--dest", str(dest), s3=s3)

    assert result.code == 0, result.out
    assert visible(dest) == {"resnet": [1]}
