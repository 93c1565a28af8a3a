"""Builds the worker from its settings and runs it until SIGTERM/SIGINT."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import boto3
from botocore.config import Config as BotoConfig
from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError
from prometheus_client import REGISTRY

from metadata_worker.config import Settings
from metadata_worker.consumer import BatchProcessor, Health, PendingArchive, RebalanceListener, Worker
from metadata_worker.dlq import DeadLetterPublisher
from metadata_worker.errors import SinkUnavailable
from metadata_worker.fleet import FleetGauges
from metadata_worker.health import serve
from metadata_worker.sinks.mongo import MongoSink, connect
from metadata_worker.sinks.s3 import S3Archive

log = logging.getLogger(__name__)
T = TypeVar("T")


def _until_ready(what: str, make: Callable[[], T], stop: threading.Event, health: Health) -> T | None:
    """Call ``make`` until it succeeds (a dependency may start after us) or ``stop`` is set."""
    delay = 0.5
    while not stop.is_set():
        try:
            return make()
        except (KafkaError, SinkUnavailable) as exc:
            health.set_ready(False, f"{what}: {exc}")
            log.warning("dependency not ready, retrying", extra={"dependency": what, "error": repr(exc)})
            stop.wait(delay)
            health.beat()
            delay = min(delay * 2, 10.0)
    return None


def run(settings: Settings, stop: threading.Event) -> int:
    """Wire everything up and run the loop; returns the process exit code."""
    health = Health()
    http = serve(health, settings.worker_http_host, settings.worker_http_port)
    mongo = connect(settings.mongo_uri.get_secret_value())
    sink = MongoSink(mongo[settings.mongo_database])
    producer: KafkaProducer | None = None
    consumer: KafkaConsumer | None = None
    try:

        def indexes() -> bool:
            sink.ensure_indexes()
            return True

        if not _until_ready("database", indexes, stop, health):
            return 0
        archive = None
        if settings.archive_enabled:
            assert settings.s3_bucket is not None  # checked by Settings
            s3 = boto3.client(
                "s3",
                region_name=settings.s3_region,
                endpoint_url=settings.s3_endpoint_url,
                config=BotoConfig(
                    retries={"max_attempts": 2, "mode": "standard"},
                    connect_timeout=5,
                    read_timeout=20,
                ),
            )
            archive = S3Archive(s3, settings.s3_bucket, settings.s3_prefix)
        servers = settings.bootstrap_list()
        producer = _until_ready(
            "kafka (dlq producer)",
            lambda: KafkaProducer(
                bootstrap_servers=servers,
                client_id="ca4-metadata-worker-dlq",
                acks="all",
                enable_idempotence=True,
                linger_ms=5,
            ),
            stop,
            health,
        )
        consumer = _until_ready(
            "kafka (consumer)",
            lambda: KafkaConsumer(
                bootstrap_servers=servers,
                group_id=settings.kafka_group_id,
                client_id="ca4-metadata-worker",
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                max_poll_records=settings.worker_batch_max,
                session_timeout_ms=10_000,
                heartbeat_interval_ms=3_000,
            ),
            stop,
            health,
        )
        if producer is None or consumer is None:
            return 0
        fleet = FleetGauges(settings.fleet_metrics_ttl_seconds, settings.fleet_metrics_max_devices)
        REGISTRY.register(fleet)
        processor = BatchProcessor(sink, DeadLetterPublisher(producer, settings.kafka_dlq_topic), fleet=fleet)
        pending = (
            PendingArchive(archive, settings.archive_flush_records, settings.archive_flush_seconds)
            if archive is not None
            else None
        )
        worker = Worker(
            consumer,
            processor,
            sink,
            health,
            pending=pending,
            batch_max=settings.worker_batch_max,
            poll_timeout_ms=settings.worker_poll_timeout_ms,
            retry_initial_s=settings.worker_retry_initial_seconds,
            retry_max_s=settings.worker_retry_max_seconds,
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
    finally:
        health.set_ready(False, "shutting down")
        if consumer is not None:
            consumer.close(autocommit=False)
        if producer is not None:
            producer.close(timeout=5)
        mongo.close()
        http.shutdown()
        log.info("metadata worker stopped")


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
