"""Batch delivery: decode and transform a poll's records once, then write them to the
database and their poison records to the DLQ (retried whole by the loop until durable).

Exactly-once storage: ``_id = event_id``, so a replayed batch is duplicate-key no-ops.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kafka import TopicPartition

from metadata_worker import metrics
from metadata_worker.decoding import coords, decode
from metadata_worker.dlq import DeadLetterPublisher, Record
from metadata_worker.errors import PoisonRecord
from metadata_worker.fleet import FleetGauges
from metadata_worker.sinks.mongo import MongoSink
from metadata_worker.transform import enrich, latest_per_device

log = logging.getLogger(__name__)


@dataclass
class Batch:
    """One poll's records, decoded and transformed once; delivery may be retried."""

    records: list[Record]
    good: list[tuple[Record, dict[str, Any]]] = field(default_factory=list)
    poison: list[tuple[Record, str, str]] = field(default_factory=list)
    stored: bool = False
    dead_lettered: bool = False

    def next_offsets(self) -> dict[TopicPartition, int]:
        """Offset to commit per partition: one past the last record of the batch."""
        out: dict[TopicPartition, int] = {}
        for r in self.records:
            tp = TopicPartition(r.topic, r.partition)
            out[tp] = max(out.get(tp, 0), r.offset + 1)
        return out


@dataclass(frozen=True)
class BatchReport:
    """What delivering one batch did."""

    stored: int
    duplicates: int
    dead_lettered: int


class BatchProcessor:
    """Transforms records and writes them to every sink; no Kafka consumer in here."""

    def __init__(
        self,
        db: MongoSink,
        dlq: DeadLetterPublisher,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        fleet: FleetGauges | None = None,
    ) -> None:
        self._db = db
        self._dlq = dlq
        self._clock = clock
        self._fleet = fleet

    def prepare(self, records: Sequence[Record]) -> Batch:
        """Decode and enrich; poison records are set aside for the DLQ."""
        batch = Batch(records=list(records))
        processed_at = self._clock()
        for record in records:
            try:
                event = decode(record)
                doc = enrich(event, coords(record), processed_at)
            except PoisonRecord as exc:
                batch.poison.append((record, str(exc), exc.error_type))
                continue
            except Exception as exc:  # a rule that breaks on one record must not stop the stream
                log.exception(
                    "transform failed",
                    extra={"offset": record.offset, "partition": record.partition},
                )
                batch.poison.append((record, f"transform failed: {exc!r}", "TransformError"))
                continue
            batch.good.append((record, doc))
        return batch

    def deliver(self, batch: Batch) -> BatchReport:
        """Write the batch to the database and its poison records to the DLQ.

        Raises ``SinkUnavailable`` to be retried; a step done in an earlier attempt of the
        same batch is skipped (the database insert would be a no-op anyway).
        """
        stored = duplicates = 0
        if not batch.stored:
            started = time.perf_counter()
            result = self._db.insert_events([doc for _, doc in batch.good])
            refused = result.refused
            if refused:
                for idx in sorted(refused, reverse=True):
                    record, _ = batch.good.pop(idx)
                    batch.poison.append(
                        (
                            record,
                            f"database refused the document: {refused[idx]}",
                            "DatabaseRefused",
                        )
                    )
            devices = latest_per_device([doc for _, doc in batch.good])
            self._db.upsert_devices(devices)
            metrics.DB_WRITE_SECONDS.observe(time.perf_counter() - started)
            if self._fleet is not None:
                self._fleet.update(devices)
            stored, duplicates = result.inserted, result.duplicates
            now = time.time()
            for record, _ in batch.good:
                metrics.END_TO_END_SECONDS.observe(max(0.0, now - record.timestamp / 1000))
            batch.stored = True
        if not batch.dead_lettered:
            self._dlq.publish(batch.poison)
            for _, _, error_type in batch.poison:
                metrics.EVENTS_DLQ.labels(error_type=error_type).inc()
            batch.dead_lettered = True
        metrics.EVENTS_STORED.inc(stored)
        metrics.EVENTS_DUPLICATE.inc(duplicates)
        return BatchReport(stored, duplicates, len(batch.poison))
