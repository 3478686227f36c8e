"""Where to look next: console URLs and CLI commands built from a task ARN."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from urllib.parse import quote

_CONSOLE = {
    "aws": "console.aws.amazon.com",
    "aws-cn": "console.amazonaws.cn",
    "aws-us-gov": "console.amazonaws-us-gov.com",
}


@dataclass(frozen=True)
class TaskArn:
    """The parts of ``arn:<partition>:ecs:<region>:<account>:task/<cluster>/<id>``."""

    partition: str
    region: str
    account: str
    cluster: str
    task_id: str

    @classmethod
    def parse(cls, arn: str) -> TaskArn:
        """Split a task ARN; raises ValueError for anything else."""
        parts = arn.split(":", 5)
        if len(parts) != 6 or parts[2] != "ecs" or not parts[5].startswith("task/"):
            raise ValueError(f"not an ECS task ARN: {arn!r}")
        resource = parts[5].split("/")
        cluster = resource[1] if len(resource) == 3 else ""  # old ARNs lack the cluster
        return cls(parts[1], parts[3], parts[4], cluster, resource[-1])

    def host(self) -> str:
        """The console's base URL for the ARN's partition and region."""
        return f"https://{self.region}.{_CONSOLE.get(self.partition, _CONSOLE['aws'])}"


def task_console_url(arn: TaskArn, cluster: str) -> str:
    """The ECS console page of the task (its Logs tab shows awslogs output)."""
    name = arn.cluster or cluster.rsplit("/", 1)[-1]
    return (
        f"{arn.host()}/ecs/v2/clusters/{quote(name, safe='')}/tasks/{arn.task_id}"
        f"/configuration?region={arn.region}"
    )


def log_group_console_url(arn: TaskArn, log_group: str) -> str:
    """The CloudWatch console page of a log group (the console double-escapes the name)."""
    escaped = quote(log_group, safe="").replace("%", "$25")
    return f"{arn.host()}/cloudwatch/home?region={arn.region}#logsV2:log-groups/log-group/{escaped}"


def logs_tail_command(arn: TaskArn, log_group: str) -> str:
    """A CLI command for this task's log lines (FireLens adds the task ARN to every record)."""
    pattern = f'"{arn.task_id}"'
    return (
        f"aws logs tail {shlex.quote(log_group)} --region {arn.region} --since 1h "
        f"--filter-pattern {shlex.quote(pattern)}"
    )


def stop_command(arn: str, cluster: str, region: str) -> str:
    """The command that stops the task."""
    return (
        f"aws ecs stop-task --region {region} --cluster {shlex.quote(cluster)} "
        f"--task {shlex.quote(arn)} --reason 'stopped by operator after run-task timeout'"
    )
