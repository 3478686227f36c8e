"""Scheduled one-off ECS tasks: the ``ScheduledRunTask`` component (``run_task``), its state
machine's IAM (``iam``), failure event rules (``events``), alarms (``alarms``) and preview-time
checks (``validation``).

``ScheduledRunTask`` is imported lazily: ``components.state_machine`` imports
``components.scheduled.validation``, and ``run_task`` imports ``components.state_machine``, so an
eager import here made ``from components import state_machine`` fail on a circular import.
"""

from typing import Any

__all__ = ["ScheduledRunTask", "ScheduledRunTaskArgs"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from components.scheduled import run_task

        return getattr(run_task, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
