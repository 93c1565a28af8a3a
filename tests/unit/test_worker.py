"""Worker logic with fakes: decode, dead-letter, idempotent store, archive, commit only when durable."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import logging
import threading
import uuid
from typing import Any

import mongomock
import pytest
from kafka import TopicPartition
from kafka.errors import CommitFailedError, KafkaConnectionError, KafkaTimeoutError

from ca4_events.schema import GpuMetadataEvent
from metadata_worker.backoff import Backoff
from metadata_worker.decoding import decode
from metadata_worker.delivery import BatchProcessor, BatchReport
from metadata_worker.dlq import DeadLetterPublisher
from metadata_worker.errors import PoisonRecord, SinkUnavailable
from metadata_worker.health import Health
from metadata_worker.loop import RebalanceListener, Worker
from metadata_worker.pending_archive import PendingArchive
from metadata_worker.sinks.mongo import MongoSink
from metadata_worker.sinks.s3 import S3Archive
from tests.unit.fakes import FakeConsumer, FakeProducer, FakeRecord, FakeS3

NOW = dt.datetime(2026, 11, 28, 3, 0, tzinfo=dt.UTC)
TS = int(NOW.timestamp() * 1000)


def record(offset: int, value: bytes | None, partition: int = 0, key: bytes = b"sess-1") -> FakeRecord:
    return FakeRecord("gpu-metadata", partition, offset, TS + offset, key, value)


def event_bytes(event: GpuMetadataEvent, event_id: str | None = None) -> bytes:
    e = event.model_copy(update={"event_id": uuid.UUID(event_id) if event_id else uuid.uuid4()})
    return e.model_dump_json(exclude_none=True).encode()


class Rig:
    """A BatchProcessor and a PendingArchive over fakes."""

    def __init__(self, flush_records: int = 1, flush_seconds: float = 3600.0) -> None:
        self.db = mongomock.MongoClient(tz_aware=True)["ca4"]
        self.sink = MongoSink(self.db)
        self.producer = FakeProducer()
        self.s3 = FakeS3()
        self.processor = BatchProcessor(self.sink, DeadLetterPublisher(self.producer), clock=lambda: NOW)
        self.now = 0.0
        self.pending = PendingArchive(
            S3Archive(self.s3, "bucket"), flush_records, flush_seconds, clock=lambda: self.now
        )

    def deliver_and_archive(self, records: list[FakeRecord]) -> BatchReport:
        """One batch through the database, then straight into the archive."""
        batch = self.processor.prepare(records)
        report = self.processor.deliver(batch)
        self.pending.add(batch)
        self.pending.flush()
        self.pending.clear()
        return report


@pytest.fixture
def rig() -> Rig:
    return Rig()


def test_decode_accepts_a_published_event(load_event: GpuMetadataEvent) -> None:
    assert decode(record(0, event_bytes(load_event))).accelerators[0].name == "NVIDIA H200"


@pytest.mark.parametrize(
    ("value", "error_type"),
    [
        (None, "EmptyValue"),
        (b"\xff\xfe", "DecodeError"),
        (b"[" * 50_000, "DecodeError"),
        (b'{"collected_at": 1}', "ValidationError"),
        (
            b'{"collected_at": "2026-11-28T00:00:00Z", "source": {"provider": "colab", "host": "h"}}',
            "ValidationError",
        ),
    ],
    ids=["tombstone", "binary", "deep", "invalid", "no-event-id"],
)
def test_decode_turns_bad_records_into_poison(value: bytes | None, error_type: str) -> None:
    with pytest.raises(PoisonRecord) as exc:
        decode(record(0, value))
    assert exc.value.error_type == error_type


def test_a_batch_is_stored_devices_updated_and_archived(
    rig: Rig, h200_events: list[GpuMetadataEvent]
) -> None:
    records = [record(i, event_bytes(e)) for i, e in enumerate(h200_events)]
    report = rig.deliver_and_archive(records)
    assert (report.stored, report.duplicates, report.dead_lettered) == (6, 0, 0)
    assert rig.db.gpu_metadata.count_documents({}) == 6
    (device,) = list(rig.db.gpu_devices.find())
    assert device["last"]["utilization_gpu_pct"] == 100
    keys = sorted(rig.s3.objects)
    assert [k.split("/")[0] for k in keys] == ["enriched", "raw"]
    assert keys[1].endswith("gpu-metadata-p0-o00000000000000000000-00000000000000000005.jsonl.gz")
    lines = gzip.decompress(rig.s3.objects[keys[1]]["Body"]).splitlines()
    assert lines == [r.value for r in records], "raw objects hold the record values unchanged"


def test_a_replayed_batch_is_a_no_op_with_the_same_archive_keys(
    rig: Rig, h200_events: list[GpuMetadataEvent]
) -> None:
    records = [record(i, event_bytes(e)) for i, e in enumerate(h200_events)]
    rig.deliver_and_archive(records)
    before = dict(rig.s3.objects)
    report = rig.deliver_and_archive(records)
    assert (report.stored, report.duplicates) == (0, 6)
    assert rig.db.gpu_metadata.count_documents({}) == 6
    assert rig.s3.objects.keys() == before.keys(), "re-archiving overwrites, it never adds"
    assert rig.s3.objects == before, "and writes the same bytes (gzip mtime=0)"


def test_a_longer_replay_replaces_the_shorter_archive_object(
    rig: Rig, h200_events: list[GpuMetadataEvent]
) -> None:
    records = [record(i, event_bytes(e)) for i, e in enumerate(h200_events)]
    rig.deliver_and_archive(records[:3])  # archived, then "crashed" before the commit
    rig.deliver_and_archive(records)  # the replay polled more records from the same offset
    raw = sorted(k for k in rig.s3.objects if k.startswith("raw/"))
    assert len(raw) == 1 and raw[0].endswith("-o00000000000000000000-00000000000000000005.jsonl.gz"), raw


def test_poison_goes_to_the_dlq_with_its_coordinates(rig: Rig, load_event: GpuMetadataEvent) -> None:
    records = [
        record(0, event_bytes(load_event)),
        record(1, b"nope", key=b"k"),
        record(2, event_bytes(load_event)),
    ]
    report = rig.processor.deliver(rig.processor.prepare(records))
    assert (report.stored, report.dead_lettered) == (2, 1)
    (dead,) = rig.producer.sent
    assert dead["topic"] == "gpu-metadata.dlq" and dead["key"] == b"k" and dead["value"] == b"nope"
    assert (
        dead["headers"]["ca4-source-offset"] == b"1" and dead["headers"]["ca4-error-type"] == b"DecodeError"
    )


def test_a_sink_failure_is_retried_without_resending_finished_steps(
    rig: Rig, load_event: GpuMetadataEvent
) -> None:
    batch = rig.processor.prepare([record(0, event_bytes(load_event)), record(1, b"bad")])
    rig.producer.down = True
    with pytest.raises(SinkUnavailable, match="did not acknowledge"):
        rig.processor.deliver(batch)
    assert batch.stored and not batch.dead_lettered, "the database step is done, the DLQ step is not"
    rig.producer.down = False
    rig.processor.deliver(batch)
    assert len(rig.producer.sent) == 1, "the poison record is dead-lettered once"
    assert rig.db.gpu_metadata.count_documents({}) == 1


def test_the_dlq_must_acknowledge(rig: Rig) -> None:
    rig.producer.down = True
    with pytest.raises(SinkUnavailable, match="did not acknowledge"):
        rig.processor.deliver(rig.processor.prepare([record(0, b"bad")]))


def test_device_state_never_moves_backwards(rig: Rig, h200_events: list[GpuMetadataEvent]) -> None:
    newest, older = h200_events[-1], h200_events[0]
    rig.processor.deliver(rig.processor.prepare([record(0, event_bytes(newest))]))
    rig.processor.deliver(rig.processor.prepare([record(1, event_bytes(older))]))
    (device,) = list(rig.db.gpu_devices.find())
    assert device["last"]["utilization_gpu_pct"] == 100, "an older snapshot must not overwrite a newer state"
    assert device["first_seen_at"] <= device["last_seen_at"]


def _worker(rig: Rig, consumer: FakeConsumer) -> Worker:
    return Worker(consumer, rig.processor, rig.sink, Health(), backoff=Backoff(0.001, 0.002))


def test_offsets_are_committed_after_the_write_one_past_the_last(
    rig: Rig, h200_events: list[GpuMetadataEvent]
) -> None:
    batch = [record(i, event_bytes(e), partition=i % 2) for i, e in enumerate(h200_events)]
    consumer = FakeConsumer([batch])
    stop = threading.Event()
    worker = _worker(rig, consumer)
    rig.sink.insert_events = _stop_after(rig.sink.insert_events, stop)  # type: ignore[method-assign]
    worker.run(stop)
    assert consumer.commits == [{TopicPartition("gpu-metadata", 0): 5, TopicPartition("gpu-metadata", 1): 6}]
    assert worker.health.ready, f"the worker is not ready after a durable batch: {worker.health.reason!r}"


def test_nothing_is_committed_while_the_database_is_down(rig: Rig, load_event: GpuMetadataEvent) -> None:
    consumer = FakeConsumer([[record(0, event_bytes(load_event))]])
    stop = threading.Event()
    seen: list[tuple[list[Any], set[TopicPartition]]] = []  # (commits, paused) at each attempt
    real_insert = rig.sink.insert_events

    def flaky(docs: list[dict[str, Any]]) -> Any:
        seen.append((list(consumer.commits), set(consumer.paused_parts)))
        if len(seen) < 4:
            raise SinkUnavailable("database down")
        stop.set()
        return real_insert(docs)

    rig.sink.insert_events = flaky  # type: ignore[method-assign]
    worker = _worker(rig, consumer)
    worker.run(stop)
    assert len(seen) == 4, "three failed attempts, then success"
    assert all(commits == [] for commits, _ in seen), "no commit before the write succeeded"
    assert all(paused for _, paused in seen[1:]), "partitions stay paused while retrying"
    assert consumer.pause_calls == 1, f"paused {consumer.pause_calls} times in one retry streak, expected 1"
    assert consumer.commits == [{TopicPartition("gpu-metadata", 0): 1}]
    assert consumer.paused_parts == set(), "partitions resume once the batch is durable"
    assert worker.health.ready, f"the worker is not ready after a durable batch: {worker.health.reason!r}"


def test_a_commit_the_broker_missed_is_retried_once_idle(rig: Rig, load_event: GpuMetadataEvent) -> None:
    """Kafka down at commit time, then back with nothing new to consume: the stored offsets
    must still be committed, or the group's lag never reaches zero (a fresh CI run saw it)."""
    tp = TopicPartition("gpu-metadata", 0)
    consumer = FakeConsumer([[record(0, event_bytes(load_event))]])
    consumer.refuse_commits = [KafkaTimeoutError("broker unreachable"), KafkaTimeoutError("still")]
    stop = threading.Event()
    consumer.on_commit = stop.set
    worker = _worker(rig, consumer)
    worker.IDLE_PING_S = 0.0
    worker.run(stop)
    assert consumer.refuse_commits == [], "both refusals were met: the commit was retried"
    assert consumer.commits == [{tp: 1}], f"expected the missed commit retried (offset 1): {consumer.commits}"


def test_a_missed_commit_goes_with_the_next_batch(rig: Rig, h200_events: list[GpuMetadataEvent]) -> None:
    p0, p1 = TopicPartition("gpu-metadata", 0), TopicPartition("gpu-metadata", 1)
    first = [record(0, event_bytes(h200_events[0]), partition=0)]
    second = [record(0, event_bytes(h200_events[1]), partition=1)]
    consumer = FakeConsumer([first, second])
    consumer.refuse_commits = [KafkaTimeoutError("broker unreachable")]
    stop = threading.Event()
    consumer.on_commit = stop.set
    _worker(rig, consumer).run(stop)
    assert consumer.commits == [{p0: 1, p1: 1}], f"expected both partitions in one commit: {consumer.commits}"


def test_a_commit_refused_by_the_group_is_not_retried(rig: Rig, load_event: GpuMetadataEvent) -> None:
    """CommitFailedError: the partitions moved on; their next owner replays, we must not retry."""
    consumer = FakeConsumer([[record(0, event_bytes(load_event))]])
    consumer.refuse_commits = [CommitFailedError("generation moved on")]
    stop = threading.Event()
    worker = _worker(rig, consumer)
    worker.IDLE_PING_S = 0.0
    consumer.before_poll = lambda earlier: stop.set() if earlier >= 5 else None
    worker.run(stop)
    assert consumer.commits == [], f"a refused commit was sent again: {consumer.commits}"


def test_lost_partitions_drop_a_missed_commit(rig: Rig, load_event: GpuMetadataEvent) -> None:
    consumer = FakeConsumer([[record(0, event_bytes(load_event))]])
    consumer.refuse_commits = [KafkaTimeoutError("broker unreachable")]
    stop = threading.Event()
    worker = _worker(rig, consumer)

    def evicted(earlier: int) -> None:
        if earlier == 1:  # after the batch and its failed commit: evicted, then stopped
            worker.on_partitions_lost()
            stop.set()

    consumer.before_poll = evicted
    worker.run(stop)
    assert consumer.commits == [], f"partitions no longer ours were committed: {consumer.commits}"


def test_a_poll_that_cannot_reach_kafka_is_retried_not_fatal(rig: Rig, load_event: GpuMetadataEvent) -> None:
    """Every broker down (or the coordinator gone with its broker): the worker stays up, not
    ready, and polls again; it stores and commits once Kafka answers."""
    consumer = FakeConsumer([[record(0, event_bytes(load_event))]])
    stop = threading.Event()
    worker = _worker(rig, consumer)
    readiness: list[bool] = []

    def brokers_down(_earlier: int) -> None:
        readiness.append(worker.health.ready)
        if len(readiness) <= 2:  # the first two polls find no broker
            raise KafkaConnectionError("111 ECONNREFUSED")

    consumer.before_poll = brokers_down
    consumer.on_commit = stop.set
    worker.run(stop)
    assert readiness[:3] == [True, False, False], f"readiness at each poll: {readiness}"
    assert consumer.commits == [{TopicPartition("gpu-metadata", 0): 1}], f"commits: {consumer.commits}"
    assert worker.health.ready, f"not ready after Kafka came back: {worker.health.reason!r}"


def test_stop_during_retries_exits_without_committing(rig: Rig, load_event: GpuMetadataEvent) -> None:
    consumer = FakeConsumer([[record(0, event_bytes(load_event))]])
    stop = threading.Event()

    def down(docs: list[dict[str, Any]]) -> Any:
        stop.set()  # SIGTERM arrives while the database is unreachable
        raise SinkUnavailable("database down")

    rig.sink.insert_events = down  # type: ignore[method-assign]
    worker = _worker(rig, consumer)
    worker.run(stop)
    assert consumer.commits == [], "an undelivered batch must not be committed; it will be replayed"
    assert not worker.health.ready


def _stop_after(fn: Any, stop: threading.Event) -> Any:
    def wrapper(*args: Any) -> Any:
        result = fn(*args)
        stop.set()
        return result

    return wrapper


def test_archive_objects_are_gzip_json_lines(rig: Rig, load_event: GpuMetadataEvent) -> None:
    rig.deliver_and_archive([record(7, event_bytes(load_event), partition=2)])
    key = next(k for k in rig.s3.objects if k.startswith("enriched/"))
    expected = "enriched/topic=gpu-metadata/dt=2026-11-28/hour=03/gpu-metadata-p2-o{:020d}-{:020d}.jsonl.gz"
    assert key == expected.format(7, 7)
    (line,) = gzip.decompress(rig.s3.objects[key]["Body"]).splitlines()
    doc = json.loads(line)
    assert doc["kafka"]["offset"] == 7 and doc["ingest"]["processed_at"] == "2026-11-28T03:00:00+00:00"


def _archiving_worker(rig: Rig, consumer: FakeConsumer) -> Worker:
    return Worker(
        consumer,
        rig.processor,
        rig.sink,
        Health(),
        pending=rig.pending,
        backoff=Backoff(0.001, 0.002),
    )


def test_the_archive_waits_for_enough_records_and_the_commit_waits_for_the_archive(
    h200_events: list[GpuMetadataEvent],
) -> None:
    rig = Rig(flush_records=4)
    batches = [[record(i, event_bytes(h200_events[i]))] for i in range(6)]
    consumer = FakeConsumer(batches)
    stop = threading.Event()
    real_poll = consumer.poll

    def poll_then_stop(timeout_ms: int = 0, max_records: int | None = None) -> Any:
        if consumer.polls >= 6:  # six batches handed out; stop on the next poll
            stop.set()
        return real_poll(timeout_ms, max_records)

    consumer.poll = poll_then_stop  # type: ignore[method-assign]
    _archiving_worker(rig, consumer).run(stop)
    assert rig.db.gpu_metadata.count_documents({}) == 6, "the database is written batch by batch"
    raw = sorted(k for k in rig.s3.objects if k.startswith("raw/"))
    assert [k.rsplit("-o", 1)[1] for k in raw] == [
        "00000000000000000000-00000000000000000003.jsonl.gz",  # flushed at 4 records
        "00000000000000000004-00000000000000000005.jsonl.gz",  # the rest, flushed on stop
    ], raw
    tp = TopicPartition("gpu-metadata", 0)
    assert consumer.commits == [{tp: 4}, {tp: 6}], "offsets are committed only up to what is archived"


def test_the_archive_is_flushed_when_the_oldest_record_waited_long_enough(
    load_event: GpuMetadataEvent,
) -> None:
    rig = Rig(flush_records=1000, flush_seconds=30)
    batch = rig.processor.prepare([record(0, event_bytes(load_event))])
    rig.processor.deliver(batch)
    rig.pending.add(batch)
    rig.now = 29.9
    assert not rig.pending.due()
    rig.now = 30.0
    assert rig.pending.due(), "30 s after the first held record the archive is due"


def test_nothing_is_committed_while_s3_is_down(
    load_event: GpuMetadataEvent, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = Rig(flush_records=1)
    consumer = FakeConsumer([[record(0, event_bytes(load_event))]])
    stop = threading.Event()
    attempts: list[list[Any]] = []
    real_flush = PendingArchive.flush

    def flaky(held: PendingArchive) -> list[str]:
        # the first attempt runs on the flush thread, the retries on the loop
        attempts.append(list(consumer.commits))
        if len(attempts) < 3:
            raise SinkUnavailable("s3 down")
        stop.set()
        return real_flush(held)

    monkeypatch.setattr(PendingArchive, "flush", flaky)
    worker = _archiving_worker(rig, consumer)
    worker.run(stop)
    assert rig.db.gpu_metadata.count_documents({}) == 1, "the database write is not held back by S3"
    assert attempts == [[], [], []], "no commit while the archive is not durable"
    assert consumer.commits == [{TopicPartition("gpu-metadata", 0): 1}]
    assert worker.health.ready, f"the worker is not ready after a durable batch: {worker.health.reason!r}"


def test_a_rebalance_flushes_and_commits_what_is_held(load_event: GpuMetadataEvent) -> None:
    rig = Rig(flush_records=1000)
    consumer = FakeConsumer([])
    worker = _archiving_worker(rig, consumer)
    batch = rig.processor.prepare([record(3, event_bytes(load_event), partition=1)])
    rig.processor.deliver(batch)
    rig.pending.add(batch)
    consumer.in_listener = True  # kafka-python runs listeners on its IO thread: no blocking commit
    RebalanceListener(worker).on_partitions_revoked({TopicPartition("gpu-metadata", 1)})
    assert consumer.async_commits == [{TopicPartition("gpu-metadata", 1): 4}], (
        f"expected one asynchronous commit of offset 4, got {consumer.async_commits}"
    )
    assert len(rig.pending) == 0 and any(k.startswith("enriched/") for k in rig.s3.objects)


def test_a_refused_commit_at_rebalance_is_logged_not_raised(
    load_event: GpuMetadataEvent, caplog: pytest.LogCaptureFixture
) -> None:
    rig = Rig(flush_records=1000)
    consumer = FakeConsumer([])
    consumer.in_listener = True
    consumer.refuse_async = CommitFailedError("generation moved on")
    worker = _archiving_worker(rig, consumer)
    batch = rig.processor.prepare([record(3, event_bytes(load_event))])
    rig.processor.deliver(batch)
    rig.pending.add(batch)
    with caplog.at_level(logging.WARNING, logger="metadata_worker.loop"):
        worker.on_partitions_revoked()
    assert "offset commit refused; the records will be replayed" in caplog.messages, caplog.messages
    assert len(rig.pending) == 0


def test_lost_partitions_drop_what_is_held_without_committing(load_event: GpuMetadataEvent) -> None:
    """Evicted (a broker restart, a missed session): a commit would be refused; replay instead."""
    rig = Rig(flush_records=1000)
    consumer = FakeConsumer([])
    consumer.in_listener = True
    worker = _archiving_worker(rig, consumer)
    batch = rig.processor.prepare([record(3, event_bytes(load_event))])
    rig.processor.deliver(batch)
    rig.pending.add(batch)
    RebalanceListener(worker).on_partitions_lost({TopicPartition("gpu-metadata", 0)})
    assert consumer.commits == [] and consumer.async_commits == [], "nothing may be committed"
    assert len(rig.pending) == 0, "the held batches are replayed from the last commit"


def test_a_failed_flush_at_rebalance_leaves_the_records_to_the_next_owner(
    load_event: GpuMetadataEvent,
) -> None:
    rig = Rig(flush_records=1000)
    consumer = FakeConsumer([])
    worker = _archiving_worker(rig, consumer)
    batch = rig.processor.prepare([record(3, event_bytes(load_event))])
    rig.processor.deliver(batch)
    rig.pending.add(batch)
    rig.s3.down = True
    worker.on_partitions_revoked()
    assert consumer.commits == [], (
        "not archived, so not committed: the next owner replays from the last commit"
    )
    assert len(rig.pending) == 0


def test_the_loop_stores_the_next_batches_while_a_flush_is_written(
    h200_events: list[GpuMetadataEvent], monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = Rig(flush_records=2)
    consumer = FakeConsumer([[record(i, event_bytes(h200_events[i]))] for i in range(4)])
    stop = threading.Event()
    release = threading.Event()
    real_flush = PendingArchive.flush
    seen: dict[str, Any] = {}

    def slow_first(held: PendingArchive) -> list[str]:
        if not release.is_set():
            assert release.wait(10), "the test never released the first flush"
        return real_flush(held)

    def before_poll(polls: int) -> None:
        if polls == 3:  # batches 0 and 1 are being archived, batch 2 was delivered meanwhile
            seen["stored"] = rig.db.gpu_metadata.count_documents({})
            seen["commits"] = list(consumer.commits)
            release.set()
        if polls >= 5:
            stop.set()

    monkeypatch.setattr(PendingArchive, "flush", slow_first)
    consumer.before_poll = before_poll
    _archiving_worker(rig, consumer).run(stop)
    assert seen == {"stored": 3, "commits": []}, (
        f"stored while the flush was written, nothing committed: {seen}"
    )
    tp = TopicPartition("gpu-metadata", 0)
    assert consumer.commits == [{tp: 2}, {tp: 4}], "each range is committed once archived, in order"


def test_a_flush_that_failed_when_stopping_is_written_again_with_the_rest(
    h200_events: list[GpuMetadataEvent], monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = Rig(flush_records=1)
    consumer = FakeConsumer(
        [[record(0, event_bytes(h200_events[0]))], [record(1, event_bytes(h200_events[1]))]]
    )
    stop = threading.Event()
    real_flush = PendingArchive.flush
    flushed: list[int] = []

    def first_fails(held: PendingArchive) -> list[str]:
        flushed.append(len(held))
        if len(flushed) == 1:
            stop.set()  # SIGTERM arrives while the first range is being written
            raise SinkUnavailable("s3 went away")
        return real_flush(held)

    monkeypatch.setattr(PendingArchive, "flush", first_fails)
    _archiving_worker(rig, consumer).run(stop)
    stored = rig.db.gpu_metadata.count_documents({})  # 1 or 2: the stop may come before the second poll
    assert flushed[0] == 1 and flushed[-1] == stored, f"the last flush writes every stored record: {flushed}"
    assert consumer.commits == [{TopicPartition("gpu-metadata", 0): stored}], consumer.commits
    (raw,) = [k for k in rig.s3.objects if k.startswith("raw/")]
    assert raw.endswith(f"-o{0:020d}-{stored - 1:020d}.jsonl.gz"), raw


def test_a_document_bson_cannot_encode_is_refused_and_the_rest_stored(rig: Rig) -> None:
    # an integer past 64 bits fails the whole insert_many before anything is sent; without
    # this the batch failed again on every retry and the worker stopped there
    docs = [{"_id": "ok-1"}, {"_id": "too-big", "workload": {"step": 2**64}}, {"_id": "ok-2"}]
    result = rig.sink.insert_events(docs)
    # what went in before the encoder stopped counts as a duplicate on the second call
    assert result.inserted + result.duplicates == 2 and list(result.refused) == [1], result
    assert "not encodable as BSON" in result.refused[1], result.refused
    assert sorted(d["_id"] for d in rig.db.gpu_metadata.find()) == ["ok-1", "ok-2"]
