"""Metadata Worker settings: environment variables only (the Kubernetes manifests set exactly these)."""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator

from ca4_events import names
from ca4_events.service import ServiceSettings


class Settings(ServiceSettings):
    """Every knob of the worker (and the Kafka ones both services share); names are the
    environment variables, upper-cased."""

    kafka_dlq_topic: str = Field(default=names.DLQ_TOPIC)
    kafka_group_id: str = Field(default=names.CONSUMER_GROUP)

    mongo_uri: SecretStr = Field(
        description=(
            "Mongo connection string. DocumentDB: tls=true&tlsCAFile=...&replicaSet=rs0"
            "&retryWrites=false; local FerretDB: mongodb://127.0.0.1:27017/"
        )
    )
    mongo_database: str = Field(default=names.DATABASE)

    archive_enabled: bool = Field(default=False, description="Archive batches to S3.")
    s3_bucket: str | None = Field(default=None)
    s3_region: str = Field(default="us-east-1")
    s3_prefix: str = Field(default="", description="Key prefix inside the bucket, e.g. 'ca4/'.")
    s3_endpoint_url: str | None = Field(
        default=None, description="Only for S3-compatible endpoints (moto, LocalStack)."
    )

    archive_flush_records: int = Field(
        default=5000, ge=1, description="Archive when this many records are held (bigger S3 objects)."
    )
    archive_flush_seconds: float = Field(
        default=30.0, gt=0, description="Archive at the latest this long after the first held record."
    )

    fleet_metrics_ttl_seconds: float = Field(
        default=900.0, gt=0, description="Drop an accelerator's gauges when not seen for this long."
    )
    fleet_metrics_max_devices: int = Field(
        default=1000,
        ge=1,
        description="At most this many accelerators in the fleet gauges (label cardinality).",
    )

    worker_batch_max: int = Field(default=500, ge=1, le=10_000)
    worker_poll_timeout_ms: int = Field(default=500, ge=10, le=10_000)
    worker_http_host: str = Field(default="127.0.0.1", description="0.0.0.0 in a pod.")
    worker_http_port: int = Field(default=8081, ge=1, le=65535)
    worker_retry_initial_seconds: float = Field(default=0.5, gt=0)
    worker_retry_max_seconds: float = Field(default=15.0, gt=0)

    @model_validator(mode="after")
    def _archive_needs_bucket(self) -> Settings:
        if self.archive_enabled and not self.s3_bucket:
            raise ValueError("ARCHIVE_ENABLED is true but S3_BUCKET is not set")
        return self
