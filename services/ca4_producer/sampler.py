"""Sampling loop for long jobs: a snapshot every ``interval_s`` for ``duration_s``, sent in batches.

The loop is bounded twice, by the duration and by ``max_snapshots``, and it never bursts to
catch up: when a snapshot takes longer than the interval, the next one simply starts at
once. Each snapshot's collection time is kept (and is in the event's
``workload.ca4_collector.collect_ms``), so ``SampleStats`` reports what sampling cost.

``BatchSender`` keeps the network cost low during a long job: events are buffered and posted
as one request per ``batch_size`` events or per ``max_delay_s``, whichever comes first, and
whatever is left is sent on ``flush()`` / ``close()``.
"""

from __future__ import annotations

import logging
import math
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ca4_events.schema import GpuMetadataEvent
from ca4_producer.client import (
    MAX_BATCH_EVENTS,
    Ca4Client,
    Ca4ClientError,
    Ca4Unavailable,
    Delivery,
    Prepared,
    chunks,
    prepare,
)
from ca4_producer.collector import Collector, Snapshot

log = logging.getLogger(__name__)

DEFAULT_MAX_SNAPSHOTS = 100_000


@dataclass
class SampleStats:
    """What a sampling run did and what it cost."""

    snapshots: int = 0
    event_ids: list[str] = field(default_factory=list)
    collect_ms: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0

    def record(self, snap: Snapshot) -> None:
        """Count one snapshot: its id and what it cost."""
        self.snapshots += 1
        self.event_ids.append(str(snap.event.event_id))
        self.collect_ms.append(snap.collect_ms)

    def summary(self) -> dict[str, Any]:
        """Counts and collection-time percentiles (milliseconds), for a log line or a notebook."""
        times = sorted(self.collect_ms)
        if not times:
            return {"snapshots": 0, "elapsed_s": round(self.elapsed_s, 3)}
        return {
            "snapshots": self.snapshots,
            "elapsed_s": round(self.elapsed_s, 3),
            "collect_ms_p50": round(statistics.median(times), 3),
            "collect_ms_p95": round(times[min(len(times) - 1, math.ceil(0.95 * len(times)) - 1)], 3),
            "collect_ms_max": round(times[-1], 3),
            "collect_ms_mean": round(statistics.fmean(times), 3),
        }


def sample(
    collector: Collector,
    *,
    interval_s: float,
    duration_s: float,
    sink: Callable[[GpuMetadataEvent], object],
    workload: Mapping[str, Any] | None = None,
    max_snapshots: int = DEFAULT_MAX_SNAPSHOTS,
    on_snapshot: Callable[[int, Snapshot], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> SampleStats:
    """Take snapshots at ``interval_s`` for ``duration_s`` (the first at once) and hand each to ``sink``.

    ``duration_s=0`` takes exactly one snapshot. Each event's workload gets ``sample`` (its
    position in the run) besides what ``workload`` holds.
    """
    if interval_s <= 0:
        raise ValueError("interval_s must be positive")
    if duration_s < 0:
        raise ValueError("duration_s must not be negative")
    stats = SampleStats()
    start = clock()
    # the epsilon keeps 0.45 / 0.05 (= 8.999... in floating point) at 9 intervals
    planned = min(max_snapshots, math.floor(duration_s / interval_s + 1e-9) + 1)
    for i in range(planned):
        due = start + i * interval_s
        now = clock()
        if i > 0 and now - start > duration_s:
            break  # slow snapshots used up the duration: stop rather than overrun it
        if due > now:
            sleep(due - now)
        snap = collector.snapshot(workload={**(workload or {}), "sample": i})
        sink(snap.event)  # the collector fixed its id
        stats.record(snap)
        if on_snapshot is not None:
            on_snapshot(i, snap)
    stats.elapsed_s = clock() - start
    return stats


class BatchSender:
    """Buffers events and posts them in batches; use as a sampling ``sink``.

    A batch leaves the buffer only once the API answered for it. While the API is
    unreachable (``Ca4Unavailable`` after the client's retries) the events stay buffered, the
    sampling loop goes on, and the next attempt waits ``max_delay_s``. The buffer holds at
    most ``max_buffered`` events: beyond that the oldest are given up, and like whatever is
    still unsent at ``close()`` they are reported in ``refused`` with their ids, never
    dropped silently.
    """

    def __init__(
        self,
        client: Ca4Client,
        *,
        batch_size: int = 50,
        max_delay_s: float = 30.0,
        max_buffered: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._batch_size = max(1, min(batch_size, MAX_BATCH_EVENTS))
        self._max_delay_s = max_delay_s
        self._max_buffered = max(self._batch_size, max_buffered)
        self._clock = clock
        self._buffer: list[Prepared] = []
        self._oldest: float | None = None
        self._hold_until = 0.0  # after a failed flush: no new attempt before this time
        self.deliveries: list[Delivery] = []

    def add(self, event: GpuMetadataEvent) -> Delivery | None:
        """Buffer one event (its id is fixed now); post the buffer when it is full or old enough."""
        now = self._clock()
        if self._oldest is None:
            self._oldest = now
        self._buffer.extend(prepare([event]))
        if len(self._buffer) > self._max_buffered:
            overflow = len(self._buffer) - self._max_buffered
            self._give_up(
                overflow, f"buffer full ({self._max_buffered} events) while the API was unreachable"
            )
        due = len(self._buffer) >= self._batch_size or now - self._oldest >= self._max_delay_s
        if due and now >= self._hold_until:
            return self.flush()
        return None

    def __call__(self, event: GpuMetadataEvent) -> Delivery | None:
        """Same as ``add``, so the sender itself can be a sink."""
        return self.add(event)

    def flush(self) -> Delivery | None:
        """Post what is buffered, a batch at a time; the last delivery (None when nothing went out)."""
        delivery = None
        for batch in list(chunks(self._buffer, self._batch_size)):
            try:
                delivery = self._client.send(batch)
            except Ca4Unavailable as exc:
                self._hold_until = self._clock() + self._max_delay_s
                log.warning(
                    "%d events kept for a later attempt, the API is unreachable: %s", len(self._buffer), exc
                )
                return delivery
            del self._buffer[: len(batch)]
            if delivery.refused:
                log.warning(
                    "%d of %d events refused: %s", len(delivery.refused), len(batch), delivery.refused
                )
            self.deliveries.append(delivery)
        self._oldest = None
        return delivery

    def _give_up(self, count: int, why: str) -> None:
        gone, self._buffer = self._buffer[:count], self._buffer[count:]
        log.error("%d events not delivered: %s", count, why)
        self.deliveries.append(
            Delivery(
                status=503,
                event_ids=[p.event_id for p in gone],
                attempts=0,
                refused=[
                    {"index": i, "event_id": p.event_id, "status": 503, "detail": f"not delivered: {why}"}
                    for i, p in enumerate(gone)
                ],
            )
        )

    @property
    def pending(self) -> int:
        """Events buffered and not yet answered for."""
        return len(self._buffer)

    @property
    def accepted_ids(self) -> list[str]:
        """Every id the API acknowledged so far."""
        return [i for d in self.deliveries for i in d.accepted_ids]

    @property
    def refused(self) -> list[dict[str, Any]]:
        """Every item the API refused (or that could not be delivered) so far."""
        return [item for d in self.deliveries for item in d.refused]

    def close(self) -> None:
        """Send what is left; what still cannot be sent is reported in ``refused``, not raised."""
        self._hold_until = 0.0
        why = "the API was still unreachable at close"
        try:
            self.flush()
        except Ca4ClientError as exc:  # e.g. 401: retrying cannot help, and close must not raise
            why = str(exc).splitlines()[0]
        if self._buffer:
            self._give_up(len(self._buffer), why)

    def __enter__(self) -> BatchSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
