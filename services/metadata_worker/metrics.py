"""Prometheus metrics of the Metadata Worker (names are what the Grafana dashboards query)."""

from prometheus_client import Counter, Gauge, Histogram

EVENTS_STORED = Counter("ca4_worker_events_stored_total", "Events written to the database.")
EVENTS_DUPLICATE = Counter(
    "ca4_worker_events_duplicate_total", "Replayed events already stored (idempotent no-op)."
)
EVENTS_DLQ = Counter(
    "ca4_worker_events_dlq_total",
    "Records sent to the dead-letter topic, by error type.",
    ["error_type"],
)
BATCHES = Counter("ca4_worker_batches_total", "Offset commits: one per batch, or per archive flush window.")
BATCH_SIZE = Histogram(
    "ca4_worker_batch_records",
    "Records per polled batch.",
    buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000),
)
DB_WRITE_SECONDS = Histogram(
    "ca4_worker_db_write_seconds",
    "Time to write one batch to the database (events and device states).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
ARCHIVE_OBJECTS = Counter("ca4_worker_archive_objects_total", "Archive objects written.", ["kind"])
ARCHIVE_PENDING = Gauge(
    "ca4_worker_archive_pending_records",
    "Records delivered to the database, waiting for the next archive flush.",
)
ARCHIVE_SECONDS = Histogram(
    "ca4_worker_archive_write_seconds",
    "Time to write one archive flush to S3.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
END_TO_END_SECONDS = Histogram(
    "ca4_worker_end_to_end_seconds",
    "From the API's publish (Kafka timestamp) to the document being stored.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
RETRIES = Counter(
    "ca4_worker_retries_total", "Batch delivery attempts that failed and were retried.", ["sink"]
)
COMMIT_FAILURES = Counter(
    "ca4_worker_commit_failures_total", "Offset commits refused (e.g. after a rebalance)."
)
READY = Gauge("ca4_worker_ready", "1 when the worker can store events, else 0.")
CONSUMER_LAG = Gauge(
    "ca4_worker_consumer_lag", "Records behind the partition's high watermark.", ["partition"]
)
LAST_COMMIT_TIMESTAMP = Gauge(
    "ca4_worker_last_commit_timestamp_seconds", "Unix time of the last successful offset commit."
)
