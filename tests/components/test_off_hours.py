"""Off-hours schedules (components/off_hours.py): expressions, validation, and the resources.

AWS requirements encoded here:
- Application Auto Scaling API Reference, PutScheduledAction
  (https://docs.aws.amazon.com/autoscaling/application/APIReference/API_PutScheduledAction.html):
  ``Schedule`` takes ``cron(Minutes Hours Day_of_Month Month Day_of_Week Year)``, evaluated in
  ``Timezone`` (an IANA name); ``ScalableTargetAction`` sets MinCapacity/MaxCapacity. For ECS
  the scalable dimension is ``ecs:service:DesiredCount``.
- EC2 Auto Scaling User Guide, "Scheduled scaling"
  (https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-scheduled-scaling.html):
  ``Recurrence`` is Unix cron (``Minute Hour Day_of_Month Month Day_of_Week``, Sunday = 0) in
  ``TimeZone``; the Pulumi/Terraform schedule resource takes -1 for "do not change" MinSize,
  MaxSize or DesiredCapacity (its default is 0, which would empty the group).
- Amazon ECS Developer Guide, "Amazon ECS cluster auto scaling" (cluster-auto-scaling.html):
  with managed scaling, ECS sets the group's desired capacity; so the GPU schedule changes only
  MinSize and leaves desired capacity to ECS.
- What callers see (docs/cost.md): Elastic Load Balancing, "Troubleshoot your Application Load
  Balancers", "HTTP 503: Service unavailable" - "The target groups for the load balancer have
  no registered targets" (load-balancer-troubleshooting.html; AWS re:Post "alb-troubleshoot-503-
  errors"): with the service at zero tasks the ALB answers 503 itself.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pytest

from components.ecs_service import Autoscaling
from components.off_hours import OffHours, group_off_hours, service_off_hours
from tests.pulumi_mocks import RecordingMocks, run

DEV = OffHours(start="07:00", stop="20:30", days="MON-FRI", timezone="America/New_York")


def test_expressions_for_both_services() -> None:
    assert DEV.app_autoscaling_expression("stop") == "cron(30 20 ? * MON,TUE,WED,THU,FRI *)"
    assert DEV.app_autoscaling_expression("start") == "cron(0 7 ? * MON,TUE,WED,THU,FRI *)"
    assert DEV.unix_cron("stop") == "30 20 * * 1,2,3,4,5"
    assert DEV.unix_cron("start") == "0 7 * * 1,2,3,4,5"
    assert OffHours(days="SUN,SAT").unix_cron("start") == "0 7 * * 0,6"


def test_running_share_of_the_week() -> None:
    assert DEV.weekly_running_hours() == pytest.approx(5 * 13.5)
    assert OffHours(start="00:00", stop="23:59", days="SUN-SAT").running_share == pytest.approx(
        (23 + 59 / 60) / 24
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"start": "7:00"}, "HH:MM"),
        ({"stop": "24:00"}, "HH:MM"),
        ({"start": "20:00", "stop": "07:00"}, "after stop"),
        ({"start": "08:00", "stop": "08:00"}, "nothing would run"),
        ({"days": "FRI-MON"}, "ranges run forward"),
        ({"days": "Weekdays"}, "SUN..SAT"),
        ({"timezone": "Mars/Olympus"}, "Mars/Olympus"),
    ],
)
def test_bad_schedules_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        OffHours(**kwargs).validate()


def test_autoscaling_validates_its_off_hours() -> None:
    with pytest.raises(ValueError, match="HH:MM"):
        Autoscaling(min_count=1, max_count=2, off_hours=OffHours(stop="8pm")).validate(1)


def _program() -> None:
    import pulumi_aws as aws

    target = aws.appautoscaling.Target(
        "svc-scaling",
        service_namespace="ecs",
        scalable_dimension="ecs:service:DesiredCount",
        resource_id="service/c/s",
        min_capacity=1,
        max_capacity=3,
    )
    opts = pulumi.ResourceOptions()
    service_off_hours("svc", DEV, target, 1, 3, opts)
    group_off_hours("gpu", DEV, "gpu-asg", 2, opts)


def test_scheduled_actions_scale_to_zero_and_back() -> None:
    mocks: RecordingMocks = run(_program)
    actions = {
        r.name: r.inputs
        for r in mocks.of_type("aws:appautoscaling/scheduledAction:ScheduledAction")
    }
    stop, start = actions["svc-off-hours-stop"], actions["svc-off-hours-start"]
    assert stop["scalableTargetAction"] == {"minCapacity": 0, "maxCapacity": 0}
    assert start["scalableTargetAction"] == {"minCapacity": 1, "maxCapacity": 3}
    for action in (stop, start):
        assert action["timezone"] == "America/New_York"
        assert action["scalableDimension"] == "ecs:service:DesiredCount"
        assert action["resourceId"] == "service/c/s"
    schedules = {r.name: r.inputs for r in mocks.of_type("aws:autoscaling/schedule:Schedule")}
    gstop, gstart = schedules["gpu-off-hours-stop"], schedules["gpu-off-hours-start"]
    assert (gstop["minSize"], gstop["maxSize"], gstop["desiredCapacity"]) == (0, -1, -1)
    assert (gstart["minSize"], gstart["maxSize"], gstart["desiredCapacity"]) == (2, -1, -1)
    assert gstop["recurrence"] == "30 20 * * 1,2,3,4,5"
    assert gstart["timeZone"] == "America/New_York"
