"""The publisher on kafka-python: ``KAFKA_CLIENT=kafka-python``.

``KafkaPublisher`` wraps kafka-python's producer (``acks=all``, idempotent, lingering a
few milliseconds so concurrent requests share a batch). The producer's callbacks run on
its I/O thread; they hand results to the event loop, so a request waiting for its ack
holds no thread.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError

from processor_api.config import Settings
from processor_api.publishers.base import AckTracker, KafkaUnavailable, OutRecord, ProbedPublisher

log = logging.getLogger(__name__)


class KafkaPublisher(ProbedPublisher):
    """kafka-python producer behind an asyncio interface."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._producer: KafkaProducer | None = None
        self._producer_lock = asyncio.Lock()

    @property
    def ready(self) -> bool:
        """A broker answered the last probe and the producer exists."""
        return self._reachable and self._producer is not None

    def _new_producer(self) -> KafkaProducer:
        delivery_ms = int(self._timeout_s * 1000)
        linger_ms = self._settings.kafka_linger_ms
        return KafkaProducer(
            bootstrap_servers=self._servers,
            client_id="ca4-processor-api",
            acks="all",
            enable_idempotence=True,
            linger_ms=linger_ms,
            batch_size=256 * 1024,
            max_request_size=self._max_record_bytes,
            delivery_timeout_ms=delivery_ms,
            # kafka-python requires delivery >= linger + request timeout
            request_timeout_ms=max(1000, min(5000, delivery_ms - linger_ms - 1)),
            max_block_ms=2000,
            reconnect_backoff_max_ms=1000,
        )

    async def stop(self) -> None:
        """Stop probing, flush in-flight records and close the producer."""
        await self._stop_probing()
        producer, self._producer = self._producer, None
        if producer is not None:
            await asyncio.to_thread(producer.close, timeout=self._timeout_s)

    async def _on_probe(self, reachable: bool) -> None:
        if reachable and self._producer is None:
            async with self._producer_lock:
                if self._producer is None:
                    try:
                        self._producer = await asyncio.to_thread(self._new_producer)
                        log.info("kafka producer connected", extra={"bootstrap": self._servers})
                    except KafkaError as exc:
                        log.warning("kafka producer could not start", extra={"error": repr(exc)})

    async def _hand_over(self, records: Sequence[OutRecord], acks: AckTracker) -> None:
        """Send every record on a worker thread; the callbacks settle ``acks``."""
        producer = self._producer
        assert producer is not None  # publish checked ``ready``

        def on_ok(_: Any, index: int) -> None:
            acks.settle(index, None)

        def on_err(exc: BaseException, index: int) -> None:
            acks.settle(index, type(exc).__name__)

        def send_all() -> int:
            # producer.send only blocks when metadata is missing or the buffer is full
            # (max_block_ms), which is why this runs on a worker thread
            handed = 0
            for index, rec in enumerate(records):
                try:
                    kf = producer.send(self._topic, value=rec.value, key=rec.key, headers=rec.headers)
                except KafkaError as exc:
                    acks.settle(index, type(exc).__name__)
                    continue
                handed += 1
                kf.add_callback(on_ok, index=index)
                kf.add_errback(on_err, index=index)
            return handed

        if await asyncio.to_thread(send_all) == 0:
            raise KafkaUnavailable(f"no record could be handed to Kafka ({acks.first()})")
