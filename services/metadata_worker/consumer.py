"""The consume -> transform -> store -> commit loop.

At-least-once delivery, exactly-once storage: offsets are committed only after a batch is
durable everywhere it must go (the database and the DLQ for poison records, then the
archive when enabled). A crash before the commit replays the batch; ``_id = event_id``
turns the replay into duplicate-key no-ops and the archive keys are deterministic.

The database is written batch by batch (what users query stays fresh). The archive is
written in larger ranges: delivered batches wait in ``PendingArchive`` until
``ARCHIVE_FLUSH_RECORDS`` records or ``ARCHIVE_FLUSH_SECONDS`` have accumulated (or the
partitions are revoked, or the worker stops), so a quiet producer does not turn into
one tiny S3 object per event; offsets are committed only up to what is archived.

While a sink is down the batch is retried with exponential backoff, nothing is
committed, readiness is false, and the consumer's partitions are paused (polling them
keeps the group membership alive without fetching more).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from kafka import ConsumerRebalanceListener, TopicPartition
from kafka.errors import CommitFailedError, KafkaError
from kafka.structs import OffsetAndMetadata
from pydantic import ValidationError

from ca4_events.schema import GpuMetadataEvent
from ca4_events.validation import field_errors, summarize
from metadata_worker import metrics
from metadata_worker.dlq import DeadLetterPublisher, Record
from metadata_worker.errors import PoisonRecord, SinkUnavailable
from metadata_worker.fleet import FleetGauges
from metadata_worker.sinks.mongo import MongoSink
from metadata_worker.sinks.s3 import ArchiveRange, S3Archive
from metadata_worker.transform import KafkaCoords, enrich, latest_per_device

log = logging.getLogger(__name__)
T = TypeVar("T")


def decode(record: Record) -> GpuMetadataEvent:
    """Record value -> validated event; anything else is a ``PoisonRecord``."""
    if record.value is None:
        raise PoisonRecord("record has no value (tombstone)", "EmptyValue")
    try:
        data = json.loads(record.value)
    except (ValueError, RecursionError) as exc:
        raise PoisonRecord(f"value is not UTF-8 JSON: {exc}", "DecodeError") from exc
    try:
        event = GpuMetadataEvent.model_validate(data)
    except ValidationError as exc:
        raise PoisonRecord(f"not a valid event: {summarize(field_errors(exc))}", "ValidationError") from exc
    if event.event_id is None:
        raise PoisonRecord("event_id is missing (only the Processor API may publish)", "ValidationError")
    return event


def _coords(record: Record) -> KafkaCoords:
    key = record.key.decode("utf-8", "replace") if record.key is not None else None
    return KafkaCoords(record.topic, record.partition, record.offset, record.timestamp, key)


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
                doc = enrich(event, _coords(record), processed_at)
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

    def __len__(self) -> int:
        return self._records

    def add(self, batch: Batch) -> None:
        """Hold a delivered batch until the next flush."""
        if not self.batches:
            self._since = self._clock()
        self.batches.append(batch)
        self._records += len(batch.records)
        metrics.ARCHIVE_PENDING.set(self._records)

    def due(self) -> bool:
        """Enough records, or the oldest waited long enough."""
        if not self.batches:
            return False
        return len(self) >= self._max_records or self._clock() - self._since >= self._max_age_s

    def next_offsets(self) -> dict[TopicPartition, int]:
        """What may be committed once the flush succeeded."""
        out: dict[TopicPartition, int] = {}
        for batch in self.batches:
            for tp, off in batch.next_offsets().items():
                out[tp] = max(out.get(tp, 0), off)
        return out

    def event_ids(self) -> list[str]:
        """Ids of the events the flush archives."""
        return [doc["_id"] for b in self.batches for _, doc in b.good]

    def clear(self) -> None:
        """Forget the batches (after a flush, or when their partitions were revoked)."""
        self.batches = []
        self._records = 0
        metrics.ARCHIVE_PENDING.set(0)

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


class Health:
    """Liveness heartbeat and readiness, read by the HTTP probe server."""

    STALE_AFTER_S = 60.0

    def __init__(self) -> None:
        self._beat = time.monotonic()
        self._ready = False
        self.reason = "starting"

    def beat(self) -> None:
        """The loop is alive."""
        self._beat = time.monotonic()

    @property
    def alive(self) -> bool:
        """The loop turned recently."""
        return time.monotonic() - self._beat < self.STALE_AFTER_S

    @property
    def ready(self) -> bool:
        """The worker can store events."""
        return self._ready

    def set_ready(self, ready: bool, reason: str = "") -> None:
        """Record readiness (and why not)."""
        if ready != self._ready:
            log.info("readiness changed", extra={"ready": ready, "reason": None if ready else reason})
        self._ready = ready
        self.reason = "" if ready else reason
        metrics.READY.set(1 if ready else 0)


class Worker:
    """Runs the loop on a kafka-python consumer until ``stop`` is set."""

    IDLE_PING_S = 5.0
    STOP_FLUSH_ATTEMPTS = 3  # after SIGTERM, how often to try the last archive flush

    def __init__(
        self,
        consumer: Any,
        processor: BatchProcessor,
        db: MongoSink,
        health: Health,
        *,
        pending: PendingArchive | None = None,
        batch_max: int = 500,
        poll_timeout_ms: int = 500,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 15.0,
    ) -> None:
        self._consumer = consumer
        self._processor = processor
        self._db = db
        self.health = health
        self._pending = pending
        self._batch_max = batch_max
        self._poll_timeout_ms = poll_timeout_ms
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._last_ping = 0.0

    def run(self, stop: threading.Event) -> None:
        """Poll, deliver, archive, commit; on ``stop`` finish the batch, flush, commit and return."""
        self.health.set_ready(self._db.ping(), "database unreachable")
        while not stop.is_set():
            polled = self._consumer.poll(timeout_ms=self._poll_timeout_ms, max_records=self._batch_max)
            self.health.beat()
            records: list[Record] = [r for recs in polled.values() for r in recs]
            if not records:
                self._idle_check()
                self._flush_if_due(stop)
                continue
            metrics.BATCH_SIZE.observe(len(records))
            batch = self._processor.prepare(records)
            report = self._until_durable("db", functools.partial(self._processor.deliver, batch), stop)
            if report is None:
                log.warning(
                    "stopping with an undelivered batch; it will be redelivered",
                    extra={"records": len(records)},
                )
                break  # the batches already in the database may still be archived and committed
            self._log_delivered(batch, report)
            if self._pending is None:
                self._commit(batch.next_offsets())
            else:
                self._pending.add(batch)
                self._flush_if_due(stop)
        self._final_flush()
        log.info("worker loop stopped")

    def _log_delivered(self, batch: Batch, report: BatchReport) -> None:
        log.info(
            "batch delivered",
            extra={
                "records": len(batch.records),
                "stored": report.stored,
                "duplicates": report.duplicates,
                "dead_lettered": report.dead_lettered,
                "event_ids": [doc["_id"] for _, doc in batch.good],
            },
        )

    def _idle_check(self) -> None:
        now = time.monotonic()
        if now - self._last_ping >= self.IDLE_PING_S:
            self._last_ping = now
            self.health.set_ready(self._db.ping(), "database unreachable")
        self._update_lag()

    def _flush_if_due(self, stop: threading.Event) -> None:
        pending = self._pending
        if pending is None or not pending.due():
            return
        keys = self._until_durable("archive", pending.flush, stop)
        if keys is None:
            return  # stopping; _final_flush gets one more chance
        self._archived(pending, keys)

    def _archived(self, pending: PendingArchive, keys: list[str]) -> None:
        log.info("archived", extra={"archive_keys": keys, "event_ids": pending.event_ids()})
        self._commit(pending.next_offsets())
        pending.clear()

    def _final_flush(self) -> None:
        """After SIGTERM: archive what is held, a few quick tries, then commit."""
        pending = self._pending
        if pending is None or not pending.batches:
            return
        for attempt in range(1, self.STOP_FLUSH_ATTEMPTS + 1):
            try:
                self._archived(pending, pending.flush())
                return
            except SinkUnavailable as exc:
                log.warning("final archive flush failed", extra={"attempt": attempt, "error": str(exc)})
                if attempt < self.STOP_FLUSH_ATTEMPTS:
                    time.sleep(min(self._retry_initial_s * attempt, 1.0))
        log.warning(
            "stopping without archiving the last batches; they will be replayed",
            extra={"records": len(pending)},
        )

    def on_partitions_revoked(self) -> None:
        """Rebalance: archive what is held for the partitions we are losing, then commit it.

        This runs on kafka-python's IO thread, inside the group's join, where a blocking
        consumer call is refused (RuntimeError: it would wait on the loop it runs on), so
        the commit is sent with ``commit_async``; the broker still takes it from this
        generation while the group prepares the rebalance. One attempt only: if the flush
        or the commit fails, the next owner replays from the last commit and the
        deterministic keys make its archive objects replace ours.
        """
        pending = self._pending
        if pending is None or not pending.batches:
            return
        try:
            keys = pending.flush()
        except SinkUnavailable as exc:
            log.warning(
                "archive flush at rebalance failed; the next owner replays", extra={"error": str(exc)}
            )
            pending.clear()
            return
        log.info("archived", extra={"archive_keys": keys, "event_ids": pending.event_ids()})
        self._commit(pending.next_offsets(), wait=False)
        pending.clear()

    def on_partitions_lost(self) -> None:
        """The group evicted us (a missed session, a broker restart): the partitions are no
        longer ours and a commit would be refused. Drop what is held; whoever is assigned
        the partitions (this worker again, after it rejoins) replays it from the last commit."""
        pending = self._pending
        if pending is not None and pending.batches:
            log.warning("partitions lost; the held batches will be replayed", extra={"records": len(pending)})
            pending.clear()

    def _until_durable(self, sink: str, action: Callable[[], T], stop: threading.Event) -> T | None:
        """Run ``action`` until it succeeds; None if ``stop`` is set meanwhile.

        While retrying: nothing is committed, readiness is false, and the partitions are
        paused (a poll on paused partitions fetches nothing but keeps us in the group).
        """
        delay = self._retry_initial_s
        paused = False
        try:
            while True:
                try:
                    result = action()
                except SinkUnavailable as exc:
                    metrics.RETRIES.labels(sink=sink).inc()
                    self.health.set_ready(False, str(exc))
                    log.warning(
                        "not durable yet, retrying",
                        extra={"sink": sink, "error": str(exc), "retry_in_s": delay},
                    )
                    if not paused:
                        self._consumer.pause(*self._consumer.assignment())
                        paused = True
                    if stop.wait(delay):
                        return None
                    self._consumer.poll(timeout_ms=0)
                    self.health.beat()
                    delay = min(delay * 2, self._retry_max_s)
                    continue
                self.health.set_ready(True)
                return result
        finally:
            if paused:
                self._consumer.resume(*self._consumer.paused())

    def _commit(self, next_offsets: dict[TopicPartition, int], *, wait: bool = True) -> None:
        """Commit the offsets after the last stored (and archived) record of each partition.

        ``wait=False`` sends the commit without waiting for the answer (for the rebalance
        listener, which may not block); its outcome is logged when it comes.
        """
        if not next_offsets:
            return  # nothing to commit (e.g. the held batches were dropped at a rebalance)
        offsets = {tp: OffsetAndMetadata(off, "", -1) for tp, off in next_offsets.items()}
        if not wait:
            self._consumer.commit_async(
                offsets, callback=lambda _offsets, result: self._committed(next_offsets, result, lag=False)
            )
            return
        try:
            self._consumer.commit(offsets, timeout_ms=10_000)
        except (CommitFailedError, KafkaError) as exc:
            self._committed(next_offsets, exc)
            return
        self._committed(next_offsets, None)

    def _committed(self, next_offsets: dict[TopicPartition, int], result: Any, *, lag: bool = True) -> None:
        """Log and count a commit's outcome: ``result`` is the broker's answer or the exception.

        An asynchronous commit's callback may run on kafka-python's IO thread, where the
        lag's position lookups could block: it skips them (the next commit updates the lag).
        """
        if isinstance(result, BaseException):
            # partitions moved to another worker meanwhile: it replays them, idempotently
            metrics.COMMIT_FAILURES.inc()
            log.warning("offset commit refused; the records will be replayed", extra={"error": repr(result)})
            return
        metrics.BATCHES.inc()
        metrics.LAST_COMMIT_TIMESTAMP.set(time.time())
        log.info(
            "committed",
            extra={"offsets": {f"{tp.topic}/{tp.partition}": off for tp, off in next_offsets.items()}},
        )
        if lag:
            self._update_lag()

    def _update_lag(self) -> None:
        try:
            for tp in self._consumer.assignment():
                high = self._consumer.highwater(tp)
                if high is None:
                    continue
                lag = max(0, high - self._consumer.position(tp, timeout_ms=1000))
                metrics.CONSUMER_LAG.labels(partition=str(tp.partition)).set(lag)
        except KafkaError:
            pass  # lag is best effort


class RebalanceListener(ConsumerRebalanceListener):  # type: ignore[misc]  # kafka-python is untyped
    """Hands revocations to the worker so held archive ranges are flushed and committed first."""

    def __init__(self, worker: Worker) -> None:
        self._worker = worker

    def on_partitions_revoked(self, revoked: Any) -> None:
        """Before the group takes partitions away."""
        self._worker.on_partitions_revoked()

    def on_partitions_lost(self, lost: Any) -> None:
        """After the group took them (kafka-python's default would treat it as a revocation)."""
        self._worker.on_partitions_lost()

    def on_partitions_assigned(self, assigned: Any) -> None:
        """Nothing to do: we resume from the committed offsets."""
