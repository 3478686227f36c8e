"""Pulumi mocks that record every resource a program registers, for assertions on inputs.

Under ``pulumi.runtime.set_mocks`` no engine or cloud is contacted: each resource's outputs are
its inputs plus a fake id/arn/name, and data-source calls answer from ``CALLS``. Tests then look
up children by type token and name and assert on exactly what would have been sent to AWS.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pulumi

ACCOUNT = "123456789012"
REGION = "us-east-1"
QUOTA_VCPU = 4000.0  # default answer for the Fargate vCPU quotas (L-3032A538, L-36FBB829)


@dataclass
class Recorded:
    """One registered resource: its type token, logical name and resolved inputs."""

    type_: str
    name: str
    inputs: dict[str, Any]
    options: pulumi.runtime.MockResourceArgs | None = None


def _fake_arn(type_: str, name: str) -> str:
    service = type_.split(":")[1].split("/")[0] if ":" in type_ else "mock"
    return f"arn:aws:{service}:{REGION}:{ACCOUNT}:{name}"


@dataclass
class RecordingMocks(pulumi.runtime.Mocks):
    """Records resources; answers invokes from overridable handlers."""

    resources: list[Recorded] = field(default_factory=list)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    call_handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = field(
        default_factory=dict
    )

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        inputs = dict(args.inputs)
        self.resources.append(Recorded(args.typ, args.name, inputs, args))
        outputs = dict(inputs)
        outputs.setdefault("arn", _fake_arn(args.typ, args.name))
        outputs.setdefault("name", inputs.get("name", f"{args.name}"))
        outputs.setdefault("id", f"{args.name}-id")
        if args.typ == "aws:lb/loadBalancer:LoadBalancer":
            outputs.setdefault("dnsName", f"{args.name}.elb.amazonaws.com")
            outputs.setdefault("arnSuffix", f"app/{args.name}/0123456789")
            outputs.setdefault("zoneId", "Z35SXDOTRQ7X7K")
        if args.typ == "aws:lb/targetGroup:TargetGroup":
            outputs.setdefault("arnSuffix", f"targetgroup/{args.name}/0123456789")
        if args.typ == "aws:ec2/securityGroup:SecurityGroup":
            outputs.setdefault("id", f"sg-{abs(hash(args.name)) % 10**8:08d}")
        if args.typ == "aws:efs/fileSystem:FileSystem":
            outputs.setdefault("id", "fs-0123456789abcdef0")
        if args.typ == "aws:s3/bucketV2:BucketV2" or args.typ == "aws:s3/bucket:Bucket":
            outputs.setdefault("bucket", inputs.get("bucket", f"{args.name}-bucket"))
        if args.typ == "aws:ecs/taskDefinition:TaskDefinition":
            outputs["arn"] = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{args.name}:1"
            outputs.setdefault("family", inputs.get("family", args.name))
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, list]:
        inputs = dict(args.args)
        self.calls.append((args.token, inputs))
        handler = self.call_handlers.get(args.token)
        if handler is not None:
            return handler(inputs), []
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {
                "accountId": ACCOUNT,
                "arn": f"arn:aws:iam::{ACCOUNT}:user/t",
                "userId": "AID",
                "id": ACCOUNT,
            }, []
        if args.token in ("aws:index/getRegion:getRegion",):
            return {
                "name": REGION,
                "region": REGION,
                "id": REGION,
                "description": "US East (N. Virginia)",
                "endpoint": "ec2.us-east-1",
            }, []
        if args.token == "aws:index/getPartition:getPartition":
            return {
                "partition": "aws",
                "dnsSuffix": "amazonaws.com",
                "id": "aws",
                "reverseDnsPrefix": "com.amazonaws",
            }, []
        if args.token == "aws:ssm/getParameter:getParameter":
            value = (
                json.dumps({"image_id": "ami-0123456789abcdef0"})
                if inputs.get("name", "").endswith("recommended")
                else "ami-0123456789abcdef0"
            )
            return {
                "name": inputs.get("name"),
                "value": value,
                "insecureValue": value,
                "type": "String",
                "arn": "arn:ssm",
                "id": inputs.get("name"),
                "version": 1,
                "withDecryption": True,
            }, []
        if args.token == "aws:servicequotas/getServiceQuota:getServiceQuota":
            # A roomy Fargate vCPU quota, so the stack's quota guard passes unless a test
            # answers a smaller one through call_handlers.
            code = inputs.get("quotaCode", "")
            return {
                "serviceCode": inputs.get("serviceCode"),
                "quotaCode": code,
                "id": code,
                "quotaName": code,
                "value": QUOTA_VCPU,
                "defaultValue": QUOTA_VCPU,
                "adjustable": True,
                "globalQuota": False,
                "region": REGION,
                "serviceName": "AWS Fargate",
                "usageMetrics": [],
                "arn": f"arn:aws:servicequotas:{REGION}:{ACCOUNT}:fargate/{code}",
            }, []
        if args.token == "aws:iam/getPolicyDocument:getPolicyDocument":
            return {"json": json.dumps(inputs), "id": "doc"}, []
        return {}, []

    # -- query helpers -------------------------------------------------------------------
    def of_type(self, type_: str) -> list[Recorded]:
        return [r for r in self.resources if r.type_ == type_]

    def one(self, type_: str, name: str | None = None) -> Recorded:
        found = [r for r in self.of_type(type_) if name is None or r.name == name]
        if len(found) != 1:
            names = [r.name for r in self.of_type(type_)]
            raise AssertionError(f"expected one {type_} named {name!r}; have {names}")
        return found[0]


MOCKS = RecordingMocks()


def install() -> RecordingMocks:
    """Install the process-wide mocks (idempotent) and clear what was recorded."""
    pulumi.runtime.set_mocks(MOCKS, project="onnx-ecs-serving", stack="test", preview=False)
    MOCKS.resources.clear()
    MOCKS.calls.clear()
    MOCKS.call_handlers.clear()
    return MOCKS


def run(program: Callable[[], Any]) -> RecordingMocks:
    """Run ``program`` under the mocks and wait until every resource has been registered.

    Returns the mocks so tests can assert on ``resources``. Exceptions raised by the program
    (validation errors) propagate to the caller.
    """
    mocks = install()

    @pulumi.runtime.test
    def _wrapped() -> Any:
        return program()

    _wrapped()
    return mocks
