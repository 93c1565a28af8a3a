"""Archive buffering and flush policy: delivered batches wait here until
``ARCHIVE_FLUSH_RECORDS`` records or ``ARCHIVE_FLUSH_SECONDS`` have accumulated (or the
partitions are revoked, or the worker stops), so a quiet producer does not turn into one
tiny S3 object per event; their offsets wait with them (committed only once archived).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from kafka import TopicPartition

from metadata_worker import metrics
from metadata_worker.delivery import Batch
from metadata_worker.dlq import Record
from metadata_worker.sinks.s3 import ArchiveRange, S3Archive


def merged(*offsets: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
    """Next offsets per partition from several batches or ranges: the furthest of each."""
    out: dict[TopicPartition, int] = {}
    for each in offsets:
        for tp, off in each.items():
            out[tp] = max(out.get(tp, 0), off)
    return out


class PendingArchive:
    """Delivered batches waiting to be archived together; their offsets wait with them."""

    def __init__(
        self,
        archive: S3Archive,
        max_records: int,
        max_age_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._archive = archive
        self._max_records = max_records
        self._max_age_s = max_age_s
        self._clock = clock
        self.batches: list[Batch] = []
        self._records = 0  # records held, kept as batches come and go
        self._since = 0.0
        self._counted = True  # this buffer's size is ARCHIVE_PENDING (a taken range's is not)

    def __len__(self) -> int:
        return self._records

    def add(self, batch: Batch) -> None:
        """Hold a delivered batch until the next flush."""
        if not self.batches:
            self._since = self._clock()
        self.batches.append(batch)
        self._records += len(batch.records)
        self._count()

    def _count(self) -> None:
        if self._counted:
            metrics.ARCHIVE_PENDING.set(self._records)

    def take(self) -> PendingArchive:
        """What is held, as a range of its own to flush (on another thread); this buffer
        starts empty again, for the batches delivered meanwhile."""
        held = PendingArchive(self._archive, self._max_records, self._max_age_s, self._clock)
        held.batches, held._records, held._since = self.batches, self._records, self._since
        held._counted = False
        self.batches, self._records = [], 0
        self._count()
        return held

    def put_back(self, held: PendingArchive) -> None:
        """A taken range that could not be flushed goes back in front of what came after it."""
        if held.batches:
            self._since = held._since if not self.batches else min(held._since, self._since)
        self.batches = held.batches + self.batches
        self._records += held._records
        self._count()

    def due(self) -> bool:
        """Enough records, or the oldest waited long enough."""
        if not self.batches:
            return False
        return len(self) >= self._max_records or self._clock() - self._since >= self._max_age_s

    def next_offsets(self) -> dict[TopicPartition, int]:
        """What may be committed once the flush succeeded."""
        return merged(*(batch.next_offsets() for batch in self.batches))

    def event_ids(self) -> list[str]:
        """Ids of the events the flush archives."""
        return [doc["_id"] for b in self.batches for _, doc in b.good]

    def clear(self) -> None:
        """Forget the batches (after a flush, or when their partitions were revoked)."""
        self.batches = []
        self._records = 0
        self._count()

    def flush(self) -> list[str]:
        """Write one object per kind and partition for everything held; ``SinkUnavailable`` to retry."""
        started = time.perf_counter()
        ranges: dict[tuple[str, int], list[Record]] = defaultdict(list)
        good_by_tp: dict[tuple[str, int], list[tuple[Record, dict[str, Any]]]] = defaultdict(list)
        for batch in self.batches:
            for record in batch.records:
                ranges[(record.topic, record.partition)].append(record)
            for record, doc in batch.good:
                good_by_tp[(record.topic, record.partition)].append((record, doc))
        archive = self._archive
        keys: list[str] = []
        for (topic, partition), records in sorted(ranges.items()):
            first = min(records, key=lambda r: r.offset)
            last = max(r.offset for r in records)
            good = good_by_tp.get((topic, partition), [])
            rng = ArchiveRange(topic, partition, first.offset, last, first.timestamp)
            written = archive.write_range(
                rng,
                raw_lines=[r.value for r, _ in good if r.value is not None],
                enriched_docs=[d for _, d in good],
            )
            for key in written:
                metrics.ARCHIVE_OBJECTS.labels(kind=key.removeprefix(archive.prefix).split("/", 1)[0]).inc()
            keys.extend(written)
        metrics.ARCHIVE_SECONDS.observe(time.perf_counter() - started)
        return keys
