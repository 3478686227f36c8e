"""Off-hours: scale the service (and the GPU group) to zero on a schedule, and back.

A dev stack is used in working hours; nights and weekends are ~70 % of the week. Two kinds of
scheduled actions, both time-zone aware:

- **Application Auto Scaling** scheduled actions on the service's scalable target
  (``ecs:service:DesiredCount``): at ``stop`` min = max = 0, so the service drains to no tasks;
  at ``start`` min/max go back to the stack's values, and target tracking takes over again.
  Expression format ``cron(minutes hours day-of-month month day-of-week year)``.
- **EC2 Auto Scaling** scheduled actions on the GPU group: at ``stop`` its *minimum* goes to 0 so
  the capacity provider's managed scaling can remove the now idle instances (managed
  termination protection releases an instance once it runs no tasks); at ``start`` the minimum
  comes back, which launches the instances ahead of the tasks. Only ``MinSize`` changes (max and
  desired are ``-1``, "unchanged"): ECS owns the desired capacity, and the ECS guide asks not
  to manage it with other scaling policies. Recurrence is Unix cron (five fields).

What callers see meanwhile: the load balancer stays (it is billed by the hour either way) and
has no healthy target, so every request gets **HTTP 503** from the ALB itself (not JSON from the
service) until the first task passes its health checks after ``start`` (a few minutes on
Fargate; add the instance boot and image pull on GPU). Alarms on healthy host count will see
zero hosts at night. A ``pulumi up`` during off-hours does not wake the service: the stack
ignores drift of the scalable target's min/max and the group's min size (changes to
minCount/maxCount/gpuMinSize reach the next ``start`` action, which Pulumi updates at once).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.scheduled.validation import validate_timezone

_TIME = re.compile(r"^(?P<hour>[01]\d|2[0-3]):(?P<minute>[0-5]\d)$")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")  # Unix cron numbers 0..6


def _parse_time(label: str, value: str) -> tuple[int, int]:
    match = _TIME.match(value or "")
    if match is None:
        raise ValueError(f"off-hours {label} {value!r}: use 24-hour HH:MM, e.g. '07:00'")
    return int(match["hour"]), int(match["minute"])


def _parse_days(value: str) -> list[int]:
    """``MON-FRI``, ``MON,WED,FRI`` or ``SUN-SAT`` -> Unix day numbers (SUN = 0)."""
    accepted = "use day names SUN..SAT as a range (MON-FRI) or a list (MON,TUE,THU)"
    days: list[int] = []
    for part in (value or "").upper().split(","):
        first, _, last = part.strip().partition("-")
        if first not in _DAYS or (last and last not in _DAYS):
            raise ValueError(f"off-hours days {value!r}: {accepted}")
        start = _DAYS.index(first)
        end = _DAYS.index(last) if last else start
        if end < start:
            raise ValueError(f"off-hours days {value!r}: ranges run forward; {accepted}")
        days.extend(range(start, end + 1))
    return sorted(set(days))


@dataclass(frozen=True)
class OffHours:
    """The service runs from ``start`` to ``stop`` on ``days`` (local time in ``timezone``)
    and scales to zero otherwise. Fri 20:00 -> Mon 07:00 is the weekend with MON-FRI."""

    start: str = "07:00"
    stop: str = "20:00"
    days: str = "MON-FRI"
    timezone: str = "UTC"

    def validate(self) -> None:
        start, stop = _parse_time("start", self.start), _parse_time("stop", self.stop)
        if start == stop:
            raise ValueError(f"off-hours start and stop are both {self.start}: nothing would run")
        if start > stop:
            raise ValueError(
                f"off-hours start {self.start} is after stop {self.stop}: the running window "
                "must lie within one day (start < stop)"
            )
        _parse_days(self.days)
        validate_timezone(self.timezone)

    @property
    def _day_list(self) -> str:
        return ",".join(_DAYS[d] for d in _parse_days(self.days))

    @property
    def _day_numbers(self) -> str:
        return ",".join(str(d) for d in _parse_days(self.days))

    def app_autoscaling_expression(self, which: str) -> str:
        """``cron(m h ? * DAYS *)`` for Application Auto Scaling (which: start or stop)."""
        hour, minute = _parse_time(which, getattr(self, which))
        return f"cron({minute} {hour} ? * {self._day_list} *)"

    def unix_cron(self, which: str) -> str:
        """``m h * * days`` for an EC2 Auto Scaling scheduled action's recurrence."""
        hour, minute = _parse_time(which, getattr(self, which))
        return f"{minute} {hour} * * {self._day_numbers}"

    def describe(self) -> str:
        """The running window as people read it: ``07:00-20:00 MON-FRI (America/New_York)``."""
        return f"{self.start}-{self.stop} {self.days} ({self.timezone})"

    def weekly_running_hours(self) -> float:
        """Hours per week the service runs (for the cost estimate)."""
        start, stop = _parse_time("start", self.start), _parse_time("stop", self.stop)
        daily = (stop[0] * 60 + stop[1] - start[0] * 60 - start[1]) / 60
        return daily * len(_parse_days(self.days))

    @property
    def running_share(self) -> float:
        """Share of the week the service runs (0..1)."""
        return self.weekly_running_hours() / (7 * 24)


def service_off_hours(
    name: str,
    off_hours: OffHours,
    target: aws.appautoscaling.Target,
    min_count: int,
    max_count: int,
    opts: pulumi.ResourceOptions,
) -> list[aws.appautoscaling.ScheduledAction]:
    """Scale the service's scalable target to 0/0 at ``stop`` and back to min/max at
    ``start``."""
    actions = []
    for which, low, high in (("stop", 0, 0), ("start", min_count, max_count)):
        actions.append(
            aws.appautoscaling.ScheduledAction(
                f"{name}-off-hours-{which}",
                service_namespace=target.service_namespace,
                resource_id=target.resource_id,
                scalable_dimension=target.scalable_dimension,
                schedule=off_hours.app_autoscaling_expression(which),
                timezone=off_hours.timezone,
                scalable_target_action=aws.appautoscaling.ScheduledActionScalableTargetActionArgs(
                    min_capacity=low, max_capacity=high
                ),
                opts=opts,
            )
        )
    return actions


def group_off_hours(
    name: str,
    off_hours: OffHours,
    group_name: pulumi.Input[str],
    min_size: int,
    opts: pulumi.ResourceOptions,
) -> list[aws.autoscaling.Schedule]:
    """Lower the GPU group's minimum to 0 at ``stop`` and restore it at ``start``; max and
    desired capacity stay as they are (-1)."""
    actions = []
    for which, low in (("stop", 0), ("start", min_size)):
        actions.append(
            aws.autoscaling.Schedule(
                f"{name}-off-hours-{which}",
                scheduled_action_name=f"{name}-off-hours-{which}",
                autoscaling_group_name=group_name,
                recurrence=off_hours.unix_cron(which),
                time_zone=off_hours.timezone,
                min_size=low,
                max_size=-1,
                desired_capacity=-1,
                opts=opts,
            )
        )
    return actions
