"""The same publisher on confluent-kafka (librdkafka): ``KAFKA_CLIENT=confluent-kafka``.

librdkafka does per-record work in C on its own threads; ``produce()`` only enqueues, so
it runs on the event loop without a thread hop. Delivery reports arrive through
``poll()``, which a small thread calls; each request is woken once, when its last
record is settled. Same guarantees as the kafka-python publisher: ``acks=all``,
idempotence, an answer only after every record's ack or the publish timeout.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from processor_api.config import Settings
from processor_api.publishers.base import AckTracker, KafkaUnavailable, OutRecord, ProbedPublisher

log = logging.getLogger(__name__)


class ConfluentPublisher(ProbedPublisher):
    """confluent-kafka producer behind the Publisher protocol."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._producer = self._new_producer()
        self._fatal = False  # set by a delivery report: the producer must be replaced
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll_loop, name="kafka-delivery", daemon=True)

    def _new_producer(self) -> Producer:
        settings = self._settings
        return Producer(
            {
                "bootstrap.servers": ",".join(self._servers),
                "client.id": "ca4-processor-api",
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": settings.kafka_linger_ms,
                "delivery.timeout.ms": int(self._timeout_s * 1000),
                "request.timeout.ms": 5000,
                "message.max.bytes": self._max_record_bytes,
            }
        )

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.05)  # delivery callbacks run here

    def _replace_if_fatal(self) -> None:
        # a fatal error (e.g. lost idempotence state) leaves the producer unusable for good;
        # the records it failed were answered 503, so a fresh producer loses nothing
        if self._fatal:
            log.error("kafka producer hit a fatal error; replacing it")
            old, self._producer, self._fatal = self._producer, self._new_producer(), False
            old.flush(0)

    async def start(self) -> None:
        """Start the delivery thread and the reachability probe."""
        self._poller.start()
        await super().start()

    async def stop(self) -> None:
        """Flush, then stop the threads."""
        await self._stop_probing()
        await asyncio.to_thread(self._producer.flush, self._timeout_s)
        self._stop.set()
        self._poller.join(timeout=5)

    async def _hand_over(self, records: Sequence[OutRecord], acks: AckTracker) -> None:
        """Enqueue every record on the event loop; the delivery reports settle ``acks``."""
        self._replace_if_fatal()
        queue_full = 0
        for index, rec in enumerate(records):

            def report(err: Any, _msg: Any, index: int = index) -> None:
                if err is not None and err.fatal():
                    self._fatal = True
                acks.settle(index, None if err is None else str(err.name()))

            try:
                self._producer.produce(
                    self._topic, value=rec.value, key=rec.key, headers=rec.headers, on_delivery=report
                )
            except BufferError:
                acks.settle(index, "QueueFull")
                queue_full += 1
            except KafkaException as exc:  # refused before it was queued (too large, fatal state)
                error = exc.args[0] if exc.args else None
                acks.settle(index, error.name() if isinstance(error, KafkaError) else type(exc).__name__)
        if queue_full == len(records):
            raise KafkaUnavailable("the producer queue is full")
