"""Console URLs and commands built from task ARNs."""

from __future__ import annotations

import pytest

from ops.links import TaskArn, log_group_console_url, stop_command, task_console_url


def test_task_arn_parts() -> None:
    arn = TaskArn.parse("arn:aws:ecs:us-east-2:111:task/my-cluster/abc")
    assert (arn.partition, arn.region, arn.account, arn.cluster, arn.task_id) == (
        "aws",
        "us-east-2",
        "111",
        "my-cluster",
        "abc",
    )


def test_old_task_arn_without_cluster_uses_the_given_cluster() -> None:
    arn = TaskArn.parse("arn:aws:ecs:us-east-2:111:task/abc")
    url = task_console_url(arn, "arn:aws:ecs:us-east-2:111:cluster/prod")
    assert "/clusters/prod/tasks/abc/" in url


def test_china_partition_console() -> None:
    arn = TaskArn.parse("arn:aws-cn:ecs:cn-north-1:111:task/c/abc")
    assert log_group_console_url(arn, "/a/b").startswith(
        "https://cn-north-1.console.amazonaws.cn/cloudwatch/home?region=cn-north-1"
    )


@pytest.mark.parametrize("bad", ["", "arn:aws:s3:::bucket", "arn:aws:ecs:r:1:cluster/x"])
def test_not_a_task_arn(bad: str) -> None:
    with pytest.raises(ValueError, match="not an ECS task ARN"):
        TaskArn.parse(bad)


def test_stop_command_quotes_values() -> None:
    cmd = stop_command("arn:aws:ecs:r:1:task/c/id", "my cluster", "r")
    assert "--cluster 'my cluster'" in cmd
