"""Scheduled one-off ECS tasks: the ``ScheduledRunTask`` component (``run_task``), its state
machine's IAM (``iam``), failure event rules (``events``) and preview-time checks
(``validation``)."""

from components.scheduled.run_task import ScheduledRunTask, ScheduledRunTaskArgs

__all__ = ["ScheduledRunTask", "ScheduledRunTaskArgs"]
