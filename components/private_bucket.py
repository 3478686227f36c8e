"""One private S3 bucket: encrypted by default, public access blocked, owner-enforced, TLS only.

The stack's buckets (the log router's archive, the dev stack's demo model source) are the same
five resources: the bucket, its default encryption (SSE-S3, or SSE-KMS with a bucket key), a
public access block with all four settings on, ``BucketOwnerEnforced`` object ownership (ACLs
off), and a bucket policy denying any request not sent over TLS (``aws:SecureTransport``). The
policy waits for the public access block: S3 refuses policy changes while that is being applied.

Children are named ``<prefix>-sse``, ``<prefix>-public-access``, ``<prefix>-ownership`` and
``<prefix>-policy``, under the given parent, so a caller keeps the names (URNs) its resources
already have in deployed stacks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.iam import Statement, policy_json


@dataclass(frozen=True)
class PrivateBucket:
    """The bucket and the children a caller may need to wait for (e.g. before uploading)."""

    bucket: aws.s3.Bucket
    encryption: aws.s3.BucketServerSideEncryptionConfiguration
    public_access: aws.s3.BucketPublicAccessBlock


def deny_insecure_transport(bucket_arn: pulumi.Output[str]) -> pulumi.Output[Statement]:
    """The statement refusing every request to the bucket and its objects sent without TLS."""
    return bucket_arn.apply(
        lambda arn: {
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [arn, f"{arn}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }
    )


def private_bucket(
    prefix: str,
    *,
    parent: pulumi.Resource,
    bucket_resource_name: str | None = None,
    bucket_name: pulumi.Input[str] | None = None,
    tags: Mapping[str, str] | None = None,
    force_destroy: bool | None = None,
    kms_key_arn: pulumi.Input[str] | None = None,
    bucket_key_enabled: bool | None = None,
) -> PrivateBucket:
    """The bucket (resource name ``bucket_resource_name``, default ``prefix``) and its guards.

    ``kms_key_arn``: SSE-KMS with that key instead of SSE-S3 (AES256); ``bucket_key_enabled``
    is passed as given (None leaves it unset).
    """
    child = pulumi.ResourceOptions(parent=parent)
    bucket = aws.s3.Bucket(
        bucket_resource_name or prefix,
        bucket=bucket_name,
        force_destroy=force_destroy,
        tags=tags,
        opts=child,
    )
    sse = aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs
    by_default = (
        sse(sse_algorithm="aws:kms", kms_master_key_id=kms_key_arn)
        if kms_key_arn is not None
        else sse(sse_algorithm="AES256")
    )
    encryption = aws.s3.BucketServerSideEncryptionConfiguration(
        f"{prefix}-sse",
        bucket=bucket.id,
        rules=[
            aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                apply_server_side_encryption_by_default=by_default,
                bucket_key_enabled=bucket_key_enabled,
            )
        ],
        opts=child,
    )
    public_access = aws.s3.BucketPublicAccessBlock(
        f"{prefix}-public-access",
        bucket=bucket.id,
        block_public_acls=True,
        block_public_policy=True,
        ignore_public_acls=True,
        restrict_public_buckets=True,
        opts=child,
    )
    aws.s3.BucketOwnershipControls(
        f"{prefix}-ownership",
        bucket=bucket.id,
        rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
        opts=child,
    )
    aws.s3.BucketPolicy(
        f"{prefix}-policy",
        bucket=bucket.id,
        policy=policy_json([deny_insecure_transport(bucket.arn)]),
        # S3 refuses policy changes while the public-access block is being applied.
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[public_access]),
    )
    return PrivateBucket(bucket, encryption, public_access)
