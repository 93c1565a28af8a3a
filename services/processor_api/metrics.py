"""Prometheus metrics of the Processor API (names are what the Grafana dashboards query).

With ``API_WORKERS`` above 1 the server runs several processes; ``__main__`` then points
``PROMETHEUS_MULTIPROC_DIR`` at a directory of their own before they start, each process
keeps its figures there, and ``exposition`` adds them up, so a scrape of any process sees
the whole pod (prometheus_client's multiprocess mode).
"""

import os

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"

REQUESTS = Counter(
    "ca4_api_requests_total", "HTTP requests by route and status.", ["method", "route", "status"]
)
REQUEST_SECONDS = Histogram(
    "ca4_api_request_duration_seconds",
    "Request latency by route, including the wait for Kafka's ack.",
    ["method", "route"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
EVENTS_RECEIVED = Counter(
    "ca4_api_events_received_total", "Events in POST /metadata bodies that passed validation."
)
EVENTS_REJECTED = Counter("ca4_api_events_rejected_total", "Events refused as invalid (422).")
EVENTS_PUBLISHED = Counter("ca4_api_events_published_total", "Events acknowledged by Kafka (acks=all).")
PUBLISH_FAILURES = Counter(
    "ca4_api_publish_failures_total", "Events not acknowledged by Kafka, by reason.", ["reason"]
)
PUBLISH_SECONDS = Histogram(
    "ca4_api_publish_duration_seconds",
    "Time from handing a request's records to the producer until the last ack.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
# several processes: ready only while every live one reaches a broker
KAFKA_READY = Gauge(
    "ca4_api_kafka_ready", "1 when a Kafka broker is reachable, else 0.", multiprocess_mode="livemin"
)


def exposition() -> bytes:
    """The text exposition: this process's metrics, or every worker process's added up."""
    if not os.environ.get(MULTIPROCESS_DIR_VARIABLE):
        return generate_latest()
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry)


def process_exited(pid: int) -> None:
    """Drop a stopped worker process's live gauges (no-op with one process)."""
    if os.environ.get(MULTIPROCESS_DIR_VARIABLE):
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
