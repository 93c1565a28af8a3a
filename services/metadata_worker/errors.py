"""The worker's exceptions. The loop tells them apart by type: a ``SinkUnavailable`` batch is
retried whole, a ``PoisonRecord`` goes to the dead-letter topic."""

from __future__ import annotations


class WorkerError(Exception):
    """Something went wrong while handling a batch."""


class SinkUnavailable(WorkerError):
    """The database, S3 or the DLQ broker did not take the write; retry the whole batch."""


class PoisonRecord(WorkerError):
    """A record that can never be stored (not JSON, not a valid event): it goes to the DLQ."""

    def __init__(self, message: str, error_type: str) -> None:
        super().__init__(message)
        self.error_type = error_type
