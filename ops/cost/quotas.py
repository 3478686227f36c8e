"""The preview's vCPU quota check from the command line, with boto3 (``--check-quotas``).

Same demands and verdicts as the Pulumi program (components/quota_guard.py); read with the
Service Quotas API in the stack's region. A quota never raised from its default has no applied
value in some accounts (``NoSuchResourceException``): then the AWS default applies, as the
data source the preview uses does.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from components.quota_guard import QUOTAS, Capacity, GuardResult, QuotaReadError, evaluate
from components.stack_config import StackConfig


def read_quota(client: Any, capacity: Capacity) -> float:
    """The applied quota value, else the AWS default; clear errors for the usual failures."""
    info = QUOTAS[capacity]
    where = f"'{info.name}' ({info.service_code}/{info.code})"
    try:
        answer = client.get_service_quota(ServiceCode=info.service_code, QuotaCode=info.code)
    except ClientError as err:
        code = err.response.get("Error", {}).get("Code", "")
        if code != "NoSuchResourceException":
            raise _explain(err, where) from err
        try:
            answer = client.get_aws_default_service_quota(
                ServiceCode=info.service_code, QuotaCode=info.code
            )
        except ClientError as default_err:
            raise _explain(default_err, where) from default_err
    return float(answer["Quota"]["Value"])


def _explain(err: ClientError, where: str) -> QuotaReadError:
    code = err.response.get("Error", {}).get("Code", "")
    if code in ("AccessDeniedException", "AccessDenied"):
        return QuotaReadError(
            f"reading the quota {where} was denied: the caller needs "
            "servicequotas:GetServiceQuota and servicequotas:GetAWSDefaultServiceQuota (or set "
            "quotaGuardSkip: true in the stack file)"
        )
    message = err.response.get("Error", {}).get("Message", "")
    return QuotaReadError(f"reading the quota {where} failed: {code}: {message}")


def check_stack_quotas(cfg: StackConfig, name: str, client: Any) -> list[GuardResult]:
    """Fargate and GPU verdicts for the stack, as the preview computes them."""
    results = []
    for demands in (cfg.fargate_demands(name), cfg.gpu_demands(name)):
        needed = {Capacity(d.capacity) for d in demands if d.total_vcpu > 0}
        quotas = {c: read_quota(client, c) for c in Capacity if c in needed}
        results.append(evaluate(demands, quotas))
    return results
