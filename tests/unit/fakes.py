"""Fakes for unit tests, in one place: the worker's consumer, producer and S3 client, the API's
publisher and librdkafka producer. Never used by integration tests (the collector's fakes of
NVML, TPUs and Colab live in tests/unit/producer, beside the readings they fake)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import EndpointConnectionError
from confluent_kafka import KafkaError, KafkaException
from kafka import TopicPartition
from kafka.errors import KafkaTimeoutError

from processor_api.publishers import KafkaUnavailable, OutRecord


@dataclass
class FakeRecord:
    """Shaped like kafka-python's ConsumerRecord."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]] = field(default_factory=list)


class FakeFuture:
    def __init__(self, error: Exception | None = None) -> None:
        self._error = error

    def get(self, timeout: float | None = None) -> None:
        if self._error:
            raise self._error


class FakeProducer:
    """Collects sends; can refuse them like an unreachable broker."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.down = False

    def send(
        self, topic: str, key: bytes | None = None, value: bytes | None = None, headers: Any = None
    ) -> FakeFuture:
        if self.down:
            return FakeFuture(KafkaTimeoutError("broker down"))
        self.sent.append({"topic": topic, "key": key, "value": value, "headers": dict(headers or [])})
        return FakeFuture()

    def flush(self, timeout: float | None = None) -> None:
        if self.down:
            raise KafkaTimeoutError("flush timed out")


class FakeConsumer:
    """Hands out prepared batches, records commits, pause and resume."""

    def __init__(self, batches: list[list[FakeRecord]]) -> None:
        self._batches = list(batches)
        self.commits: list[dict[TopicPartition, int]] = []
        self.paused_parts: set[TopicPartition] = set()
        self.pause_calls = 0
        self.polls = 0
        self.in_listener = False  # set by a test that plays kafka-python's IO thread
        self.async_commits: list[dict[TopicPartition, int]] = []
        self.refuse_async: BaseException | None = None
        self.refuse_commits: list[BaseException] = []  # raised by the next blocking commits, in order
        self.on_commit: Any = None  # called after each commit the fake took
        self.before_poll: Any = None  # called with the number of earlier polls, before each poll

    def poll(
        self, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[FakeRecord]]:
        if self.before_poll is not None:
            self.before_poll(self.polls)
        self.polls += 1
        if self.paused_parts or not self._batches:
            return {}
        batch = self._batches.pop(0)
        out: dict[TopicPartition, list[FakeRecord]] = {}
        for r in batch:
            out.setdefault(TopicPartition(r.topic, r.partition), []).append(r)
        return out

    def commit(self, offsets: dict[TopicPartition, Any], timeout_ms: int | None = None) -> None:
        if self.in_listener:
            # kafka-python 3 refuses a blocking call on its IO thread, where listeners run
            raise RuntimeError("Cannot block on net.run() from the IO thread itself.")
        if self.refuse_commits:
            raise self.refuse_commits.pop(0)
        self.commits.append({tp: meta.offset for tp, meta in offsets.items()})
        if self.on_commit is not None:
            self.on_commit()

    def commit_async(self, offsets: dict[TopicPartition, Any], callback: Any = None) -> None:
        """Answered at once: refused when ``refuse_async`` holds an exception."""
        self.async_commits.append({tp: meta.offset for tp, meta in offsets.items()})
        if callback is not None:
            callback(offsets, self.refuse_async or object())

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition("gpu-metadata", p) for p in range(3)}

    def pause(self, *parts: TopicPartition) -> None:
        self.pause_calls += 1
        self.paused_parts |= set(parts)

    def paused(self) -> set[TopicPartition]:
        return set(self.paused_parts)

    def resume(self, *parts: TopicPartition) -> None:
        self.paused_parts -= set(parts)

    def highwater(self, tp: TopicPartition) -> int | None:
        return None

    def position(self, tp: TopicPartition, timeout_ms: int | None = None) -> int:
        return 0


class FakeS3:
    """The S3 calls the archive makes, on a dict (argument names are boto3's)."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise EndpointConnectionError(endpoint_url="http://s3.invalid")

    def put_object(self, Bucket: str, Key: str, Body: bytes, **kw: Any) -> None:
        self._check()
        self.objects[Key] = {"Body": Body, **kw}

    def list_objects_v2(self, Bucket: str, Prefix: str) -> dict[str, Any]:
        self._check()
        return {"Contents": [{"Key": k} for k in sorted(self.objects) if k.startswith(Prefix)]}

    def delete_object(self, Bucket: str, Key: str) -> None:
        self._check()
        self.objects.pop(Key, None)


class FakePublisher:
    """Records what would have gone to Kafka; can pretend Kafka is down or refuses some."""

    def __init__(self) -> None:
        self.records: list[OutRecord] = []
        self.ready_flag = True
        self.unavailable = False
        self.refuse_every: int | None = None

    @property
    def ready(self) -> bool:
        return self.ready_flag

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def publish(self, records: Sequence[OutRecord]) -> list[str | None]:
        if self.unavailable:
            raise KafkaUnavailable("no Kafka broker is reachable")
        out: list[str | None] = []
        for i, rec in enumerate(records):
            if self.refuse_every and i % self.refuse_every == 0:
                out.append("KafkaTimeoutError")
            else:
                self.records.append(rec)
                out.append(None)
        return out


class FakeConfluentProducer:
    """Acks every record at once, except those whose value is too large for librdkafka."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.produced: list[bytes] = []

    def produce(self, topic: str, *, value: bytes, key: bytes, headers: Any, on_delivery: Any) -> None:
        if len(value) > self.limit:
            raise KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
        self.produced.append(value)
        on_delivery(None, None)

    def flush(self, timeout: float = 0) -> int:
        return 0

    def poll(self, timeout: float = 0) -> int:
        return 0
