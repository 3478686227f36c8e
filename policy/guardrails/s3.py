"""S3 buckets: public access blocked (mandatory) and default encryption declared (advisory).

In pulumi-aws v7 both are separate resources that point at the bucket, so these are stack-level
checks that pair each bucket with the resources referring to it.

Why encryption is advisory: since January 2023 S3 encrypts every new object with SSE-S3 by
default and that cannot be turned off, so a bucket without a
``BucketServerSideEncryptionConfiguration`` is still encrypted at rest. Declaring it is still
worth a warning: it makes the choice visible in code and is where SSE-KMS or bucket keys go.
A public bucket, by contrast, is a data leak, hence mandatory.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .model import EMPTY, StackResource, as_list, is_unknown, refers_to

BUCKET_TYPES = frozenset({"aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2"})
PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
ACCOUNT_PUBLIC_ACCESS_BLOCK = "aws:s3/accountPublicAccessBlock:AccountPublicAccessBlock"
SSE_TYPES = frozenset(
    {
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2",
    }
)
BLOCK_FLAGS = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
_FIX_BLOCK = (
    "Add aws.s3.BucketPublicAccessBlock(bucket=<bucket>.id, block_public_acls=True, "
    "block_public_policy=True, ignore_public_acls=True, restrict_public_buckets=True)."
)


def _all_flags_on(props: Mapping[str, Any]) -> tuple[bool, list[str]]:
    """(every flag true or unknown, names of flags that are not)."""
    off = [f for f in BLOCK_FLAGS if not (is_unknown(props.get(f)) or props.get(f) is True)]
    return (not off, off)


def s3_public_access_blocked(
    resources: Sequence[StackResource], config: Mapping[str, Any] = EMPTY
) -> list[tuple[StackResource, str]]:
    """Every bucket has a public access block with all four flags on (or the account has)."""
    account_blocks = [r for r in resources if r.type_ == ACCOUNT_PUBLIC_ACCESS_BLOCK]
    if any(_all_flags_on(r.props)[0] for r in account_blocks):
        return []
    blocks = [r for r in resources if r.type_ == PUBLIC_ACCESS_BLOCK]
    findings: list[tuple[StackResource, str]] = []
    for bucket in (r for r in resources if r.type_ in BUCKET_TYPES):
        mine = [b for b in blocks if refers_to(b, bucket, "bucket")]
        if not mine:
            findings.append((bucket, f"bucket has no public access block. {_FIX_BLOCK}"))
            continue
        for block in mine:
            ok, off = _all_flags_on(block.props)
            if not ok:
                findings.append(
                    (
                        bucket,
                        f"public access block {block.name!r} leaves {', '.join(off)} off. "
                        f"{_FIX_BLOCK}",
                    )
                )
    return findings


def _inline_sse(bucket: StackResource) -> bool:
    """Older bucket shapes carried the rule inline (``serverSideEncryptionConfiguration``)."""
    value = bucket.props.get("serverSideEncryptionConfiguration")
    return is_unknown(value) or bool(as_list(value))


def s3_encryption_declared(
    resources: Sequence[StackResource], config: Mapping[str, Any] = EMPTY
) -> list[tuple[StackResource, str]]:
    """Every bucket declares its default encryption (see the module docstring for why advisory)."""
    configs = [r for r in resources if r.type_ in SSE_TYPES]
    findings: list[tuple[StackResource, str]] = []
    for bucket in (r for r in resources if r.type_ in BUCKET_TYPES):
        if _inline_sse(bucket) or any(refers_to(c, bucket, "bucket") for c in configs):
            continue
        findings.append(
            (
                bucket,
                "bucket declares no default encryption (S3 still applies SSE-S3). Add "
                "aws.s3.BucketServerSideEncryptionConfiguration(bucket=<bucket>.id, rules=[{"
                "'apply_server_side_encryption_by_default': {'sse_algorithm': 'aws:kms'}, "
                "'bucket_key_enabled': True}]) or 'AES256'.",
            )
        )
    return findings
