"""Failures of the model publisher, each with the process exit code it maps to.

Distinct exit codes let the ECS task's stopped state (and the alert on it) say *why* a sync
failed without reading logs: a permissions problem needs a different fix than a corrupt upload.
"""

from __future__ import annotations


class SyncError(Exception):
    """Base class: an expected failure with a message meant for the operator."""

    exit_code = 1


class UsageError(SyncError):
    """Bad command line or environment (e.g. an unsupported source URL)."""

    exit_code = 2


class SourceError(SyncError):
    """The source cannot be read: missing bucket/folder, access denied, network, nothing found."""

    exit_code = 3


class VerificationError(SyncError):
    """A copied file failed its checksum, could not be verified, or is not a loadable model."""

    exit_code = 4


class LockedError(SyncError):
    """Another publisher holds the repository lock."""

    exit_code = 5


class DestinationError(SyncError):
    """The model repository cannot be written (missing mount, read-only, disk full)."""

    exit_code = 6
