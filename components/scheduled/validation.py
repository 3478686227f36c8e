"""Preview-time checks for ScheduledRunTask inputs.

EventBridge Scheduler, Step Functions and ECS reject bad values only at deploy time, after other
resources were already created; these checks fail ``pulumi preview`` instead, with a message
that names the bad value and what is accepted.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import pulumi

# ---------------------------------------------------------------------------------------------
# Schedule expressions (EventBridge Scheduler: at(...), rate(...), cron(...))
# ---------------------------------------------------------------------------------------------

_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_AT = re.compile(r"^at\((.+)\)$")
_CRON = re.compile(r"^cron\((.+)\)$")

_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")


@dataclass(frozen=True)
class _CronField:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    extra: str = ""  # allowed special tokens besides numbers, ranges, lists, steps and *


# Fields of an EventBridge cron: minutes hours day-of-month month day-of-week year.
_CRON_FIELDS = (
    _CronField("minutes", 0, 59),
    _CronField("hours", 0, 23),
    _CronField("day-of-month", 1, 31, extra="?LW"),
    _CronField("month", 1, 12, names=_MONTHS),
    _CronField("day-of-week", 1, 7, names=_DAYS, extra="?L#"),
    _CronField("year", 1970, 2199),
)

CRON_HELP = (
    "cron(minutes hours day-of-month month day-of-week year), six fields, one of day-of-month "
    "and day-of-week must be '?', e.g. cron(0 3 * * ? *) for 03:00 every day"
)
SCHEDULE_HELP = (
    "use rate(<n> minute|minutes|hour|hours|day|days), cron(...) with six fields, or "
    "at(yyyy-mm-ddThh:mm:ss)"
)


def _value(field: _CronField, token: str, expression: str) -> int:
    upper = token.upper()
    if field.names and upper in field.names:
        return field.names.index(upper) + 1  # JAN = 1, SUN = 1
    if not token.isdigit():
        raise ValueError(
            f"schedule {expression!r}: {field.name} value {token!r} is not a number"
            + (f" or one of {', '.join(field.names)}" if field.names else "")
        )
    number = int(token)
    if not field.low <= number <= field.high:
        raise ValueError(
            f"schedule {expression!r}: {field.name} value {number} is out of range "
            f"{field.low}-{field.high}"
        )
    return number


def _check_cron_field(field: _CronField, text: str, expression: str) -> None:
    if text in ("*", "?"):
        if text == "?" and "?" not in field.extra:
            raise ValueError(
                f"schedule {expression!r}: '?' is only allowed in day-of-month or day-of-week"
            )
        return
    for part in text.split(","):
        if field.name == "day-of-month" and re.fullmatch(r"L|LW|\d{1,2}W", part):
            if part.endswith("W") and part != "LW":
                _value(field, part[:-1], expression)
            continue
        if field.name == "day-of-week" and re.fullmatch(r"\w{1,3}L|L", part):
            if part != "L":
                _value(field, part[:-1], expression)
            continue
        if field.name == "day-of-week" and "#" in part:
            day, _, nth = part.partition("#")
            _value(field, day, expression)
            if nth not in {"1", "2", "3", "4", "5"}:
                raise ValueError(f"schedule {expression!r}: day-of-week '#{nth}' must be #1..#5")
            continue
        base, slash, step = part.partition("/")
        if slash and (not step.isdigit() or int(step) < 1):
            raise ValueError(f"schedule {expression!r}: {field.name} step {step!r} must be >= 1")
        if base == "*":
            continue
        start, dash, end = base.partition("-")
        _value(field, start, expression)
        if dash:
            _value(field, end, expression)


def validate_schedule_expression(expression: str) -> str:
    """Return ``expression`` if EventBridge Scheduler would accept it, else raise ValueError."""
    if not isinstance(expression, str) or not expression.strip():
        raise ValueError(f"schedule expression {expression!r} is empty; {SCHEDULE_HELP}")
    if expression != expression.strip():
        raise ValueError(f"schedule expression {expression!r} has surrounding spaces")
    if expression.startswith("rate("):
        match = _RATE.match(expression)
        if not match:
            raise ValueError(f"schedule {expression!r} is not a valid rate; {SCHEDULE_HELP}")
        value, unit = int(match.group(1)), match.group(2)
        if value < 1:
            raise ValueError(f"schedule {expression!r}: the rate must be at least 1")
        singular = unit.rstrip("s")
        if (value == 1) != (unit == singular):
            fix = f"rate({value} {singular if value == 1 else singular + 's'})"
            raise ValueError(f"schedule {expression!r}: write {fix}")
        return expression
    if expression.startswith("at("):
        match = _AT.match(expression)
        stamp = match.group(1) if match else ""
        try:
            datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S")
        except ValueError:
            raise ValueError(
                f"schedule {expression!r}: one-time schedules are at(yyyy-mm-ddThh:mm:ss), "
                "e.g. at(2030-01-31T03:00:00), evaluated in schedule_timezone"
            ) from None
        return expression
    if expression.startswith("cron("):
        match = _CRON.match(expression)
        fields = match.group(1).split() if match else []
        if len(fields) != len(_CRON_FIELDS):
            raise ValueError(f"schedule {expression!r} has {len(fields)} fields; {CRON_HELP}")
        for field, text in zip(_CRON_FIELDS, fields, strict=True):
            _check_cron_field(field, text, expression)
        dom, dow = fields[2], fields[4]
        if (dom == "?") == (dow == "?"):
            raise ValueError(
                f"schedule {expression!r}: exactly one of day-of-month ({dom!r}) and "
                f"day-of-week ({dow!r}) must be '?'; {CRON_HELP}"
            )
        return expression
    raise ValueError(f"schedule expression {expression!r} is not recognised; {SCHEDULE_HELP}")


def validate_timezone(name: str) -> str:
    """Return ``name`` if it is an IANA time zone (as EventBridge Scheduler expects)."""
    if not isinstance(name, str) or name not in zoneinfo.available_timezones():
        hint = " (IANA names look like 'Europe/Paris' or 'Asia/Tokyo'; use 'UTC' for UTC)"
        raise ValueError(f"schedule_timezone {name!r} is not a known IANA time zone{hint}")
    return name


# ---------------------------------------------------------------------------------------------
# Retry, timeout, capacity, names, ARNs
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """Step Functions ``Retry`` for the RunTask state: wait interval, x backoff each time.

    Defaults follow seed 003 (3 s, 3 attempts, backoff 5: waits 3 s, 15 s, 75 s). Timeouts are
    not retried unless ``retry_on_timeout``: a job that hung for ``timeout_seconds`` will most
    likely hang again, and its retries could overlap the next scheduled run.
    """

    interval_seconds: int = 3
    max_attempts: int = 3
    backoff_rate: float = 5.0
    retry_on_timeout: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.interval_seconds, bool) or not isinstance(self.interval_seconds, int):
            raise ValueError(f"retry interval_seconds {self.interval_seconds!r} must be an integer")
        if not 1 <= self.interval_seconds <= 99_999_999:
            raise ValueError(
                f"retry interval_seconds {self.interval_seconds} must be between 1 and 99999999"
            )
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int):
            raise ValueError(f"retry max_attempts {self.max_attempts!r} must be an integer")
        if not 0 <= self.max_attempts <= 99:
            raise ValueError(
                f"retry max_attempts {self.max_attempts} must be between 0 and 99 (0 = no retry)"
            )
        if not isinstance(self.backoff_rate, int | float) or not self.backoff_rate >= 1.0:
            raise ValueError(f"retry backoff_rate {self.backoff_rate!r} must be a number >= 1.0")


def validate_timeout(seconds: int) -> int:
    """Task-state TimeoutSeconds: a positive integer (Step Functions caps it at 99999999)."""
    if isinstance(seconds, bool) or not isinstance(seconds, int) or not 1 <= seconds <= 99_999_999:
        raise ValueError(f"timeout_seconds {seconds!r} must be an integer between 1 and 99999999")
    return seconds


FARGATE_CAPACITIES = ("FARGATE", "FARGATE_SPOT")
_PROVIDER_NAME = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
_RESERVED_PREFIXES = ("aws", "ecs", "fargate")


def validate_capacity(capacity: str) -> str:
    """FARGATE, FARGATE_SPOT, or the name of an EC2 capacity provider (the GPU cluster's)."""
    if capacity in FARGATE_CAPACITIES:
        return capacity
    accepted = "'FARGATE', 'FARGATE_SPOT' or the name of an EC2 capacity provider of the cluster"
    if not isinstance(capacity, str) or not _PROVIDER_NAME.match(capacity):
        raise ValueError(f"capacity {capacity!r} is not valid; use {accepted}")
    if capacity.upper() in ("EC2", "EXTERNAL"):
        raise ValueError(
            f"capacity {capacity!r} is a launch type, not a capacity provider; use {accepted}"
        )
    if capacity.lower().startswith(_RESERVED_PREFIXES):
        raise ValueError(
            f"capacity {capacity!r} is not valid: capacity provider names cannot start with "
            f"'aws', 'ecs' or 'fargate' (did you mean 'FARGATE' or 'FARGATE_SPOT'?); "
            f"use {accepted}"
        )
    return capacity


_CONTAINER_NAME = re.compile(r"^[A-Za-z0-9_-]{1,255}$")


def validate_container_name(name: str) -> str:
    """ECS container names: letters, digits, '_' and '-'. Also keeps the name safe to embed in
    the state machine's JSONPath filter and States.Format literals."""
    if not isinstance(name, str) or not _CONTAINER_NAME.match(name):
        raise ValueError(
            f"container_name {name!r} is not valid; use 1-255 letters, digits, '_' or '-'"
        )
    return name


_TASK_DEF_ARN = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):ecs:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):"
    r"task-definition/(?P<family>[A-Za-z0-9_-]{1,255})(?::(?P<revision>[1-9]\d*))?$"
)
_CLUSTER_ARN = re.compile(
    r"^arn:aws[a-z-]*:ecs:[a-z0-9-]+:\d{12}:cluster/(?P<name>[A-Za-z0-9_-]{1,255})$"
)
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")


@dataclass(frozen=True)
class TaskDefinitionRef:
    """A task definition ARN split into what IAM and the event patterns need."""

    arn: str
    family_arn: str  # without revision
    family: str
    revision: int | None

    @property
    def iam_resources(self) -> list[str]:
        """Exactly the revision given, or every revision of the family when none was given
        (RunTask then starts the latest ACTIVE one)."""
        if self.revision is not None:
            return [self.arn]
        return [self.family_arn, f"{self.family_arn}:*"]


def parse_task_definition_arn(arn: str) -> TaskDefinitionRef:
    """Split ``arn:...:task-definition/<family>[:<revision>]``; raise ValueError otherwise."""
    match = _TASK_DEF_ARN.match(arn) if isinstance(arn, str) else None
    if not match:
        raise ValueError(
            f"task_definition_arn {arn!r} is not a task definition ARN; expected "
            "arn:aws:ecs:<region>:<account>:task-definition/<family>[:<revision>]"
        )
    family = match.group("family")
    family_arn = arn.rsplit(":", 1)[0] if match.group("revision") else arn
    revision = int(match.group("revision")) if match.group("revision") else None
    return TaskDefinitionRef(arn=arn, family_arn=family_arn, family=family, revision=revision)


def cluster_name_from_arn(arn: str) -> str:
    """``arn:...:cluster/<name>`` -> ``<name>``; raise ValueError otherwise."""
    match = _CLUSTER_ARN.match(arn) if isinstance(arn, str) else None
    if not match:
        raise ValueError(
            f"cluster_arn {arn!r} is not an ECS cluster ARN; expected "
            "arn:aws:ecs:<region>:<account>:cluster/<name>"
        )
    return match.group("name")


def validate_role_arn(field_name: str, arn: str) -> str:
    if not isinstance(arn, str) or not _ROLE_ARN.match(arn):
        raise ValueError(
            f"{field_name} {arn!r} is not an IAM role ARN; "
            "expected arn:aws:iam::<account>:role/<name>"
        )
    return arn


def when_known(value: pulumi.Input[str], check: Callable[[str], object]) -> None:
    """Run ``check(value)`` now when ``value`` is a plain string; Outputs are checked when they
    resolve (by the apply that consumes them), which still fails the preview."""
    if isinstance(value, str):
        check(value)


def validate_ids(field_name: str, ids: pulumi.Input[Sequence[pulumi.Input[str]]]) -> None:
    """A known list of subnet / security group ids must not be empty."""
    if isinstance(ids, str):
        raise ValueError(f"{field_name} must be a list of ids, not the string {ids!r}")
    if isinstance(ids, Sequence) and len(ids) == 0:
        raise ValueError(
            f"{field_name} is empty; give at least one (private subnets / task security group)"
        )


def plain_text(text: str) -> str:
    """Replace characters that would need escaping in a States.Format template or an
    EventBridge input template (quotes, braces, angle brackets, backslashes) with '-'."""
    return re.sub(r"[^A-Za-z0-9 _.:/@+=-]", "-", text)
