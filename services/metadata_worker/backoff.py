"""One retry policy for the worker: exponential backoff until success or stop.

Used for the dependencies at start (database, Kafka) and for every batch that is not
durable yet (database, DLQ, archive); both are driven by ``WORKER_RETRY_INITIAL_SECONDS``
and ``WORKER_RETRY_MAX_SECONDS``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    """Wait ``initial_s`` after the first failure, doubling up to ``max_s``."""

    initial_s: float = 0.5
    max_s: float = 15.0

    def retry(
        self,
        action: Callable[[], T],
        errors: tuple[type[BaseException], ...],
        stop: threading.Event,
        on_error: Callable[[BaseException, float], None],
        after_wait: Callable[[], None] = lambda: None,
    ) -> T | None:
        """Call ``action`` until it returns; None if ``stop`` is set while waiting.

        ``action`` is always tried once, even when ``stop`` is already set (a batch in hand
        is finished). On one of ``errors``, ``on_error(exc, delay)`` runs, then the wait,
        then ``after_wait`` (e.g. a heartbeat, or a poll that keeps the group membership).
        """
        delay = self.initial_s
        while True:
            try:
                return action()
            except errors as exc:
                on_error(exc, delay)
            if stop.wait(delay):
                return None
            after_wait()
            delay = min(delay * 2, self.max_s)
