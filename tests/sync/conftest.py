"""Shared helpers for the publisher tests: tiny real ONNX models, a moto S3 bucket, a runner."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from onnx import TensorProto, helper
from rich.console import Console

from service.sync.cli import main

BUCKET = "model-artifacts"
PREFIX = "prod/models"


def onnx_model(bias: float) -> bytes:
    """A real, loadable ONNX model (y = x + bias); the bias makes each version's bytes unique."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])
    b = helper.make_tensor("b", TensorProto.FLOAT, [2], [bias, bias])
    graph = helper.make_graph([helper.make_node("Add", ["x", "b"], ["y"])], "g", [x], [y], [b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Run:
    code: int
    out: str


def run_sync(*args: str, s3: Any | None = None) -> Run:
    """Run the CLI in-process with a text log captured from a wide, non-terminal console."""
    console = Console(file=io.StringIO(), width=400, force_terminal=False)
    code = main([*args, "--log-format", "text"], s3_client=s3, console=console)
    out = console.file.getvalue()  # type: ignore[attr-defined]
    return Run(code, out)


def visible(dest: Path) -> dict[str, list[int]]:
    """What the service would see: visible model folders and their numeric versions."""
    return {
        m.name: sorted(int(v.name) for v in m.iterdir() if v.name.isdigit())
        for m in sorted(dest.iterdir())
        if m.is_dir() and not m.name.startswith(".")
    }


def hidden_leftovers(dest: Path) -> list[str]:
    """Staging or deletion folders anywhere in the repository (there should be none)."""
    return sorted(
        str(p.relative_to(dest)) for p in dest.rglob(".*") if p.name.startswith((".tmp-", ".del-"))
    )


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("SYNC_SOURCE", "MODEL_DIR", "SYNC_KEEP", "SYNC_LOG_FORMAT", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    with mock_aws():
        yield


@pytest.fixture
def s3(aws: None) -> Any:
    client = boto3.client("s3", region_name="eu-west-1")
    client.create_bucket(
        Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    return client


def put(s3: Any, rel: str, body: bytes) -> None:
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}/{rel}", Body=body)


def put_multipart(s3: Any, rel: str, body: bytes) -> str:
    """Upload as a one-part multipart upload: the ETag then ends in "-1" and is not an MD5."""
    key = f"{PREFIX}/{rel}"
    upload = s3.create_multipart_upload(Bucket=BUCKET, Key=key)
    part = s3.upload_part(
        Bucket=BUCKET, Key=key, UploadId=upload["UploadId"], PartNumber=1, Body=body
    )
    done = s3.complete_multipart_upload(
        Bucket=BUCKET,
        Key=key,
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]},
    )
    return done["ETag"]


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    path = tmp_path / "models"
    path.mkdir()
    return path


SOURCE = f"s3://{BUCKET}/{PREFIX}"
