"""The poll -> deliver -> archive -> commit loop, and the rebalance listener.

At-least-once delivery, exactly-once storage: offsets are committed only after a batch is
durable everywhere it must go (the database and the DLQ for poison records, then the
archive when enabled). A crash before the commit replays the batch; ``_id = event_id``
turns the replay into duplicate-key no-ops and the archive keys are deterministic.

The database is written batch by batch (what users query stays fresh,
``delivery.py``); the archive in larger ranges (``pending_archive.py``), and offsets are
committed only up to what is archived. A range is written to S3 on a thread of its own while
the loop goes on storing the next batches (a flush of a few objects takes hundreds of
milliseconds, which every event arriving meanwhile used to wait for); one flush at a time, in
order, and its offsets are committed by the loop once it is done.

While a sink is down the batch is retried with the worker's ``Backoff``, nothing is
committed, readiness is false, and the consumer's partitions are paused (polling them
keeps the group membership alive without fetching more).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from kafka import ConsumerRebalanceListener, TopicPartition
from kafka.errors import CommitFailedError, KafkaError
from kafka.structs import OffsetAndMetadata

from metadata_worker import metrics
from metadata_worker.backoff import Backoff
from metadata_worker.delivery import Batch, BatchProcessor, BatchReport
from metadata_worker.dlq import Record
from metadata_worker.errors import SinkUnavailable
from metadata_worker.health import Health
from metadata_worker.pending_archive import PendingArchive, merged
from metadata_worker.sinks.mongo import MongoSink

log = logging.getLogger(__name__)
T = TypeVar("T")


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
        backoff: Backoff | None = None,
    ) -> None:
        self._consumer = consumer
        self._processor = processor
        self._db = db
        self.health = health
        self._pending = pending
        self._batch_max = batch_max
        self._poll_timeout_ms = poll_timeout_ms
        self._backoff = backoff or Backoff()
        self._last_ping = 0.0
        # stored (and archived) offsets whose commit the broker did not take (it was
        # unreachable): retried while idle, merged into the next commit, dropped when the
        # partitions leave us (their next owner replays from the last commit)
        self._uncommitted: dict[TopicPartition, int] = {}
        # the archive range being written on the flush thread, and its outcome
        self._flushing: tuple[PendingArchive, Future[list[str]]] | None = None
        self._flusher = ThreadPoolExecutor(1, thread_name_prefix="archive-flush")

    def run(self, stop: threading.Event) -> None:
        """Poll, deliver, archive, commit; on ``stop`` finish the batch, flush, commit and return."""
        self.health.set_ready(self._db.ping(), "database unreachable")
        while not stop.is_set():
            records = self._poll(stop)
            if records is None:
                break  # stopped while Kafka could not be reached
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
        if self._uncommitted:
            self._commit({})  # one last try for a commit the broker missed
        self._flusher.shutdown(wait=True)
        log.info("worker loop stopped")

    def _poll(self, stop: threading.Event) -> list[Record] | None:
        """The next records (maybe none); None if ``stop`` is set while Kafka cannot be reached.

        A poll raises when no broker answers (all of them down, or the group's coordinator
        gone with its broker). The worker stays up: not ready, polling again with its backoff
        (still alive for the liveness probe), and it resumes from its position, or from the
        committed offsets if the group moved on meanwhile. Restarting would not bring Kafka back.
        """
        failed = False

        def unreachable(exc: BaseException, delay: float) -> None:
            nonlocal failed
            failed = True
            metrics.RETRIES.labels(sink="kafka").inc()
            self.health.set_ready(False, f"kafka unreachable: {exc}")
            log.warning("kafka poll failed, retrying", extra={"error": str(exc), "retry_in_s": delay})

        polled = self._backoff.retry(
            lambda: self._consumer.poll(timeout_ms=self._poll_timeout_ms, max_records=self._batch_max),
            (KafkaError,),
            stop,
            unreachable,
            self.health.beat,
        )
        if polled is None:
            return None
        self.health.beat()
        if failed:
            self.health.set_ready(self._db.ping(), "database unreachable")
        return [r for recs in polled.values() for r in recs]

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
            if self._uncommitted:
                self._commit({})  # nothing new arrives to carry it: retry the missed commit
        self._update_lag()

    def _flush_if_due(self, stop: threading.Event) -> None:
        """Commit a finished flush; start the next when what is held is due (one at a time:
        while one is still being written, the loop waits for it, so what is held stays bounded)."""
        pending = self._pending
        if pending is None:
            return
        self._reap(stop, wait=False)
        if not pending.due():
            return
        if self._flushing is not None:
            self._reap(stop, wait=True)
            if self._flushing is not None:
                return  # stopping while it was retried; _final_flush has it
        held = pending.take()
        self._flushing = (held, self._flusher.submit(held.flush))

    def _reap(self, stop: threading.Event, *, wait: bool) -> None:
        """The flush in flight, once done (or ``wait`` for it): commit what it archived. A failed
        one is retried here on the loop, as before: backoff, not ready, partitions paused."""
        if self._flushing is None:
            return
        held, future = self._flushing
        if not wait and not future.done():
            return
        try:
            keys = future.result()
        except SinkUnavailable as exc:
            metrics.RETRIES.labels(sink="archive").inc()
            self.health.set_ready(False, str(exc))
            log.warning("archive flush failed, retrying", extra={"sink": "archive", "error": str(exc)})
            retried = self._until_durable("archive", held.flush, stop)
            if retried is None:
                return  # stopping; _final_flush gets one more chance
            keys = retried
        self._flushing = None
        self._archived(held, keys)

    def _take_back_flushing(self) -> PendingArchive | None:
        """Wait for the flush in flight and settle it: its range if it was archived, else None
        after putting its batches back in front of what is held (to be flushed again)."""
        if self._flushing is None or self._pending is None:
            return None
        (held, future), self._flushing = self._flushing, None
        try:
            keys = future.result()
        except SinkUnavailable as exc:
            log.warning("archive flush failed; flushing it again with the rest", extra={"error": str(exc)})
            self._pending.put_back(held)
            return None
        log.info("archived", extra={"archive_keys": keys, "event_ids": held.event_ids()})
        return held

    def _archived(self, pending: PendingArchive, keys: list[str]) -> None:
        log.info("archived", extra={"archive_keys": keys, "event_ids": pending.event_ids()})
        self._commit(pending.next_offsets())
        pending.clear()

    def _final_flush(self) -> None:
        """After SIGTERM: the flush in flight, then what is held, a few quick tries, then commit."""
        archived = self._take_back_flushing()
        if archived is not None:
            self._commit(archived.next_offsets())
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
                    time.sleep(min(self._backoff.initial_s * attempt, 1.0))
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
        flushed = self._take_back_flushing()
        archived: dict[TopicPartition, int] = flushed.next_offsets() if flushed is not None else {}
        if pending is not None and pending.batches:
            try:
                keys = pending.flush()
            except SinkUnavailable as exc:
                log.warning(
                    "archive flush at rebalance failed; the next owner replays", extra={"error": str(exc)}
                )
            else:
                log.info("archived", extra={"archive_keys": keys, "event_ids": pending.event_ids()})
                archived = merged(archived, pending.next_offsets())
            pending.clear()
        self._commit(archived, wait=False)  # with any commit the broker missed

    def on_partitions_lost(self) -> None:
        """The group evicted us (a missed session, a broker restart): the partitions are no
        longer ours and a commit would be refused. Drop what is held; whoever is assigned
        the partitions (this worker again, after it rejoins) replays it from the last commit."""
        self._uncommitted.clear()
        self._flushing = None  # its objects may still land (deterministic keys); never committed
        pending = self._pending
        if pending is not None and pending.batches:
            log.warning("partitions lost; the held batches will be replayed", extra={"records": len(pending)})
            pending.clear()

    def _until_durable(self, sink: str, action: Callable[[], T], stop: threading.Event) -> T | None:
        """Run ``action`` until it succeeds; None if ``stop`` is set meanwhile.

        While retrying: nothing is committed, readiness is false, and the partitions are
        paused (a poll on paused partitions fetches nothing but keeps us in the group).
        """
        paused = False

        def not_yet(exc: BaseException, delay: float) -> None:
            nonlocal paused
            metrics.RETRIES.labels(sink=sink).inc()
            self.health.set_ready(False, str(exc))
            log.warning(
                "not durable yet, retrying", extra={"sink": sink, "error": str(exc), "retry_in_s": delay}
            )
            if not paused:
                self._consumer.pause(*self._consumer.assignment())
                paused = True

        def keep_membership() -> None:
            with contextlib.suppress(KafkaError):  # Kafka down too: the batch's retry goes on
                self._consumer.poll(timeout_ms=0)
            self.health.beat()

        try:
            result = self._backoff.retry(action, (SinkUnavailable,), stop, not_yet, keep_membership)
        finally:
            if paused:
                self._consumer.resume(*self._consumer.paused())
        if result is not None:
            self.health.set_ready(True)
        return result

    def _commit(self, next_offsets: dict[TopicPartition, int], *, wait: bool = True) -> None:
        """Commit the offsets after the last stored (and archived) record of each partition.

        A commit the broker missed earlier goes with it (offsets only grow, so the newer
        offset of a partition wins). If the broker cannot be reached, the offsets are kept
        and retried while idle: nothing else would commit them once the stream stops, and the
        group's lag would never reach zero. A refusal by the group (``CommitFailedError``:
        the partitions moved) is final; their next owner replays from the last commit.

        ``wait=False`` sends the commit without waiting for the answer (for the rebalance
        listener, which may not block); one attempt, its outcome logged when it comes.
        """
        wanted = {**self._uncommitted, **next_offsets}
        self._uncommitted = {}
        if not wanted:
            return  # nothing to commit (e.g. the held batches were dropped at a rebalance)
        offsets = {tp: OffsetAndMetadata(off, "", -1) for tp, off in wanted.items()}
        if not wait:
            self._consumer.commit_async(
                offsets, callback=lambda _offsets, result: self._committed(wanted, result, lag=False)
            )
            return
        try:
            self._consumer.commit(offsets, timeout_ms=10_000)
        except CommitFailedError as exc:
            self._committed(wanted, exc)
            return
        except KafkaError as exc:
            self._uncommitted = wanted
            metrics.COMMIT_FAILURES.inc()
            log.warning("offset commit failed; retrying while idle", extra={"error": repr(exc)})
            return
        self._committed(wanted, None)

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

    def on_partitions_revoked(self, _revoked: Any) -> None:
        """Before the group takes partitions away."""
        self._worker.on_partitions_revoked()

    def on_partitions_lost(self, lost: Any) -> None:
        """After the group took them (kafka-python's default would treat it as a revocation)."""
        self._worker.on_partitions_lost()

    def on_partitions_assigned(self, assigned: Any) -> None:
        """Nothing to do: we resume from the committed offsets."""
