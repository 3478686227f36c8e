"""``DemoModelSource``: a stack's own private model bucket, seeded with the bundled demo model.

A stack without ``modelSyncSource`` (dev by default) still needs models before its first
deployment, and its users should publish their own models the way prod does: into an S3 prefix
the model sync reads. So the stack gets its own bucket (private, encrypted, TLS only, owner-
enforced) and ``pulumi up`` uploads the demo model (``service/demo_model.py``, generated here from
its fixed seed, never committed) to ``models/recommender/1/model.onnx``. The sync task then
publishes it like any other source.

The bucket name is ``<stack name>-models-<account>-<region>`` (shortened with a hash past S3's 63
characters), as CDK names its bootstrap buckets: unique per account and region, and known at
preview so the sync task's IAM policy can name it.

The object carries its SHA-256 as an S3 checksum, which the publisher verifies after copying;
``sha256`` (also known at preview) makes the deploy-time publish run again when the demo model
changes.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache

import pulumi
import pulumi_aws as aws

from components.private_bucket import private_bucket

PREFIX = "models"
_MAX_BUCKET = 63


@cache
def demo_model_bytes() -> bytes:
    """The demo model, built deterministically (same seed, same bytes)."""
    from service.demo_model import build_model

    return build_model().SerializeToString()


def demo_model_key() -> str:
    from service.demo_model import MODEL_NAME

    return f"{PREFIX}/{MODEL_NAME}/1/model.onnx"


def bucket_name(name: str, account: str, region: str) -> str:
    """``<name>-models-<account>-<region>``: lowercase, valid, at most 63 characters."""
    base = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-") or "onnx"
    suffix = f"-models-{account}-{region}"
    if len(base) + len(suffix) > _MAX_BUCKET:
        digest = hashlib.sha256(base.encode()).hexdigest()[:8]
        base = f"{base[: _MAX_BUCKET - len(suffix) - 9].rstrip('-')}-{digest}"
    return f"{base}{suffix}"


@dataclass
class DemoModelSourceArgs:
    """Where the bucket lives (plain values: the name must be known at preview)."""

    account: str
    region: str
    tags: Mapping[str, str] = field(default_factory=dict)


class DemoModelSource(pulumi.ComponentResource):
    """The bucket and the demo model object (module docstring)."""

    bucket_name: str
    url: str  # s3://<bucket>/models: the model sync source
    sha256: str  # hex digest of the demo model
    bucket_arn: pulumi.Output[str]
    object_version: pulumi.Output[str]  # the uploaded object's ETag

    def __init__(
        self, name: str, args: DemoModelSourceArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("onnx-ecs:index:DemoModelSource", name, None, opts)
        tags = dict(args.tags)
        self.bucket_name = bucket_name(name, args.account, args.region)
        private = private_bucket(
            name,
            parent=self,
            bucket_resource_name=f"{name}-bucket",
            bucket_name=self.bucket_name,
            tags=tags,
        )
        data = demo_model_bytes()
        self.sha256 = hashlib.sha256(data).hexdigest()
        model = aws.s3.BucketObjectv2(
            f"{name}-demo-model",
            bucket=private.bucket.id,
            key=demo_model_key(),
            content_base64=base64.b64encode(data).decode("ascii"),
            content_type="application/octet-stream",
            checksum_algorithm="SHA256",
            source_hash=self.sha256,
            # no tags: S3 bills and allocates cost per bucket (tagged above), and an object
            # takes at most 10 tags, fewer than a stack may carry
            # uploaded once the bucket encrypts by default and refuses public access
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[private.encryption, private.public_access]
            ),
        )
        self.url = f"s3://{self.bucket_name}/{PREFIX}"
        self.bucket_arn = private.bucket.arn
        self.object_version = model.etag
        self.register_outputs(
            {"bucket_name": self.bucket_name, "url": self.url, "sha256": self.sha256}
        )
