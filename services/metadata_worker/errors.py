"""One base exception for the worker; the loop retries or dead-letters on its ``retriable`` flag."""

from __future__ import annotations


class WorkerError(Exception):
    """Something went wrong while handling a batch."""

    retriable: bool = False

    def __init__(self, message: str, *, retriable: bool | None = None) -> None:
        super().__init__(message)
        if retriable is not None:
            self.retriable = retriable


class SinkUnavailable(WorkerError):
    """The database, S3 or the DLQ broker did not take the write; retry the whole batch."""

    retriable = True


class PoisonRecord(WorkerError):
    """A record that can never be stored (not JSON, not a valid event): it goes to the DLQ."""

    retriable = False

    def __init__(self, message: str, error_type: str) -> None:
        super().__init__(message, retriable=False)
        self.error_type = error_type
