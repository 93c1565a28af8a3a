"""The same publisher on confluent-kafka (librdkafka): ``KAFKA_CLIENT=confluent-kafka``.

librdkafka does per-record work in C on its own threads; ``produce()`` only enqueues, so
it runs on the event loop without a thread hop. Delivery reports arrive through
``poll()``, which a small thread calls; each request is woken once, when its last
record is settled. Same guarantees as the kafka-python publisher: ``acks=all``,
idempotence, an answer only after every record's ack or the publish timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from processor_api import metrics
from processor_api.config import Settings
from processor_api.publisher import AckTracker, KafkaUnavailable, OutRecord, probe_bootstrap

log = logging.getLogger(__name__)


class ConfluentPublisher:
    """confluent-kafka producer behind the Publisher protocol."""

    PROBE_INTERVAL_S = 1.0

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._topic = settings.kafka_topic
        self._servers = settings.bootstrap_list()
        self._timeout_s = settings.api_publish_timeout_seconds
        self._producer = self._new_producer()
        self._fatal = False  # set by a delivery report: the producer must be replaced
        self._reachable = False
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll_loop, name="kafka-delivery", daemon=True)
        self._probe_task: asyncio.Task[None] | None = None

    def _new_producer(self) -> Any:
        from confluent_kafka import Producer  # noqa: PLC0415 - imported where used

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
                "queue.buffering.max.ms": settings.kafka_linger_ms,
            }
        )

    @property
    def ready(self) -> bool:
        """A broker answered the last probe."""
        return self._reachable

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
        self._reachable = await probe_bootstrap(self._servers)
        self._probe_task = asyncio.create_task(self._probe_loop(), name="kafka-probe")

    async def _probe_loop(self) -> None:
        while True:
            await asyncio.sleep(self.PROBE_INTERVAL_S)
            reachable = await probe_bootstrap(self._servers)
            if reachable != self._reachable:
                log.info("kafka reachability changed", extra={"kafka_reachable": reachable})
            self._reachable = reachable
            metrics.KAFKA_READY.set(1 if reachable else 0)

    async def stop(self) -> None:
        """Flush, then stop the threads."""
        if self._probe_task:
            self._probe_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe_task
        await asyncio.to_thread(self._producer.flush, self._timeout_s)
        self._stop.set()
        self._poller.join(timeout=5)

    async def publish(self, records: Sequence[OutRecord]) -> list[str | None]:
        """Enqueue every record and wait for its delivery report (or the publish timeout)."""
        if not records:
            return []
        if not self._reachable:
            raise KafkaUnavailable("no Kafka broker is reachable")
        self._replace_if_fatal()
        acks = AckTracker(len(records))
        started = time.perf_counter()
        for index, rec in enumerate(records):

            def report(err: Any, _msg: Any, index: int = index) -> None:
                if err is not None and err.fatal():
                    self._fatal = True
                acks.settle(index, None if err is None else str(err.name()))

            headers: list[tuple[str, str | bytes | None]] = list(rec.headers)
            try:
                self._producer.produce(
                    self._topic, value=rec.value, key=rec.key, headers=headers, on_delivery=report
                )
            except BufferError:
                acks.settle(index, "QueueFull")
        result = await acks.wait(self._timeout_s + 2)
        metrics.PUBLISH_SECONDS.observe(time.perf_counter() - started)
        if all(r is not None for r in result) and all(r == "QueueFull" for r in result):
            raise KafkaUnavailable("the producer queue is full")
        return result
