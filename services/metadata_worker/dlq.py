"""Dead-letter topic: records the worker can never store, with the reason in headers.

The original key and value bytes are kept as they were; the headers say what was wrong
and where the record came from, so it can be inspected, fixed and re-published.
Nothing is dropped silently: the batch is committed only after the DLQ acknowledged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from kafka.errors import KafkaError

from ca4_events import names
from metadata_worker.errors import SinkUnavailable


class Record(Protocol):
    """The parts of a consumed Kafka record the worker uses."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes | None]]


def dlq_headers(record: Record, error: str, error_type: str) -> list[tuple[str, bytes]]:
    """The original headers plus the error and the record's source coordinates."""
    kept = [(k, v) for k, v in record.headers or [] if v is not None and not k.startswith("ca4-")]
    return [
        *kept,
        (names.HEADER_DLQ_ERROR, error[:4000].encode()),
        (names.HEADER_DLQ_ERROR_TYPE, error_type.encode()),
        (names.HEADER_DLQ_SOURCE_TOPIC, record.topic.encode()),
        (names.HEADER_DLQ_SOURCE_PARTITION, str(record.partition).encode()),
        (names.HEADER_DLQ_SOURCE_OFFSET, str(record.offset).encode()),
    ]


class DeadLetterPublisher:
    """Sends poison records to the DLQ topic and waits for the broker's ack."""

    def __init__(self, producer: Any, topic: str = names.DLQ_TOPIC, timeout_s: float = 15.0) -> None:
        self._producer = producer
        self.topic = topic
        self._timeout_s = timeout_s

    def publish(self, items: Sequence[tuple[Record, str, str]]) -> None:
        """Dead-letter ``(record, error, error_type)`` items; raises ``SinkUnavailable`` unless all acked."""
        if not items:
            return
        try:
            futures = [
                self._producer.send(
                    self.topic,
                    key=record.key,
                    value=record.value if record.value is not None else b"",
                    headers=dlq_headers(record, error, error_type),
                )
                for record, error, error_type in items
            ]
            self._producer.flush(timeout=self._timeout_s)
            for fut in futures:
                fut.get(timeout=self._timeout_s)
        except KafkaError as exc:
            raise SinkUnavailable(f"dead-letter topic {self.topic} did not acknowledge: {exc!r}") from exc
