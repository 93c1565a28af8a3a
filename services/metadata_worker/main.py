"""Builds the worker from its settings and runs it until SIGTERM/SIGINT.

Each ``_build_*`` makes one part from the settings; ``run`` starts them in dependency
order (database, then Kafka), waiting for each with the worker's ``Backoff``, and closes
them in reverse on the way out.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any, TypeVar

import boto3
from botocore.config import Config as BotoConfig
from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError
from prometheus_client import REGISTRY

from metadata_worker.backoff import Backoff
from metadata_worker.config import Settings
from metadata_worker.delivery import BatchProcessor
from metadata_worker.dlq import DeadLetterPublisher
from metadata_worker.errors import SinkUnavailable
from metadata_worker.fleet import FleetGauges
from metadata_worker.health import Health, serve
from metadata_worker.loop import RebalanceListener, Worker
from metadata_worker.pending_archive import PendingArchive
from metadata_worker.sinks.mongo import MongoSink, connect
from metadata_worker.sinks.s3 import S3Archive

log = logging.getLogger(__name__)
T = TypeVar("T")


def _until_ready(
    what: str, make: Callable[[], T], stop: threading.Event, health: Health, backoff: Backoff
) -> T | None:
    """Call ``make`` until it succeeds (a dependency may start after us) or ``stop`` is set."""

    def not_ready(exc: BaseException, _delay: float) -> None:
        health.set_ready(False, f"{what}: {exc}")
        log.warning("dependency not ready, retrying", extra={"dependency": what, "error": repr(exc)})

    return backoff.retry(make, (KafkaError, SinkUnavailable), stop, not_ready, health.beat)


def _build_pending_archive(settings: Settings) -> PendingArchive | None:
    """The archive's buffer over an S3 client, or None when archiving is off."""
    if not settings.archive_enabled:
        return None
    assert settings.s3_bucket is not None  # checked by Settings
    s3 = boto3.client(
        "s3",
        region_name=settings.s3_region,
        endpoint_url=settings.s3_endpoint_url,
        config=BotoConfig(
            retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=5, read_timeout=20
        ),
    )
    archive = S3Archive(s3, settings.s3_bucket, settings.s3_prefix)
    return PendingArchive(archive, settings.archive_flush_records, settings.archive_flush_seconds)


def _build_dlq_producer(settings: Settings) -> KafkaProducer:
    return KafkaProducer(
        bootstrap_servers=settings.bootstrap_list(),
        client_id="ca4-metadata-worker-dlq",
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
    )


def _build_consumer(settings: Settings) -> KafkaConsumer:
    return KafkaConsumer(
        bootstrap_servers=settings.bootstrap_list(),
        group_id=settings.kafka_group_id,
        client_id="ca4-metadata-worker",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=settings.worker_batch_max,
        session_timeout_ms=10_000,
        heartbeat_interval_ms=3_000,
    )


def _build_processor(settings: Settings, sink: MongoSink, producer: KafkaProducer) -> BatchProcessor:
    fleet = FleetGauges(settings.fleet_metrics_ttl_seconds, settings.fleet_metrics_max_devices)
    REGISTRY.register(fleet)
    return BatchProcessor(sink, DeadLetterPublisher(producer, settings.kafka_dlq_topic), fleet=fleet)


def _ensure_indexes(sink: MongoSink) -> bool:
    sink.ensure_indexes()
    return True


def run(settings: Settings, stop: threading.Event) -> int:
    """Wire everything up and run the loop; returns the process exit code."""
    health = Health()
    backoff = Backoff(settings.worker_retry_initial_seconds, settings.worker_retry_max_seconds)
    with ExitStack() as closing:
        closing.callback(log.info, "metadata worker stopped")
        closing.callback(serve(health, settings.worker_http_host, settings.worker_http_port).shutdown)
        mongo = connect(settings.mongo_uri.get_secret_value())
        closing.callback(mongo.close)
        try:
            return _start_and_run(
                settings,
                MongoSink(mongo[settings.mongo_database]),
                health=health,
                backoff=backoff,
                stop=stop,
                closing=closing,
            )
        finally:
            health.set_ready(False, "shutting down")  # first thing on the way out


def _start_and_run(
    settings: Settings,
    sink: MongoSink,
    *,
    health: Health,
    backoff: Backoff,
    stop: threading.Event,
    closing: ExitStack,
) -> int:
    """Wait for the database and Kafka, then run the loop until ``stop``; 0 when stopped early."""
    if not _until_ready("database", lambda: _ensure_indexes(sink), stop, health, backoff):
        return 0
    pending = _build_pending_archive(settings)
    producer = _until_ready(
        "kafka (dlq producer)", lambda: _build_dlq_producer(settings), stop, health, backoff
    )
    if producer is None:
        return 0
    closing.callback(producer.close, timeout=5)
    consumer = _until_ready("kafka (consumer)", lambda: _build_consumer(settings), stop, health, backoff)
    if consumer is None:
        return 0
    closing.callback(consumer.close, autocommit=False)
    worker = Worker(
        consumer,
        _build_processor(settings, sink, producer),
        sink,
        health,
        pending=pending,
        batch_max=settings.worker_batch_max,
        poll_timeout_ms=settings.worker_poll_timeout_ms,
        backoff=backoff,
    )
    consumer.subscribe([settings.kafka_topic], listener=RebalanceListener(worker))
    log.info(
        "metadata worker started",
        extra={
            "topic": settings.kafka_topic,
            "group": settings.kafka_group_id,
            "archive": settings.archive_enabled,
        },
    )
    worker.run(stop)
    return 0


def install_signal_handlers(stop: threading.Event) -> None:
    """SIGTERM/SIGINT set ``stop``: the loop finishes its batch, commits and returns."""

    def handle(signum: int, _frame: Any) -> None:
        log.info(
            "signal received, finishing the current batch",
            extra={"signal": signal.Signals(signum).name},
        )
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
