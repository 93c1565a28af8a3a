"""Processor API settings: environment variables only (the Kubernetes manifests set exactly these)."""

from __future__ import annotations

import hashlib
from typing import Literal

from pydantic import Field, SecretStr, field_validator

from ca4_events.service import ServiceSettings

MIN_TOKEN_LENGTH = 16
HASH_PREFIX = "sha256:"


class Settings(ServiceSettings):
    """Every knob of the API (and the Kafka ones both services share); names are the
    environment variables, upper-cased."""

    api_tokens: SecretStr = Field(
        description=(
            "Comma-separated bearer tokens accepted by POST /metadata; an entry 'sha256:<hex>' "
            "is the SHA-256 of a token, so manifests need not hold the token itself."
        ),
    )
    api_host: str = Field(default="127.0.0.1", description="Listen address (0.0.0.0 in a pod).")
    api_port: int = Field(default=8080, ge=1, le=65535)
    api_workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description=(
            "Server processes sharing the port (uvicorn workers), so a node with more cores is used; "
            "the manifests set it from the pod's CPU limit. Above 1, /metrics adds up every process's."
        ),
    )
    api_max_body_bytes: int = Field(default=1_048_576, ge=1024, description="413 above this.")
    api_max_batch_events: int = Field(default=500, ge=1, le=10_000)
    api_publish_timeout_seconds: float = Field(
        default=10.0, gt=0, description="How long a request waits for Kafka's ack before 503."
    )
    api_retry_after_seconds: int = Field(default=5, ge=1, description="Retry-After on 503.")
    kafka_linger_ms: int = Field(default=5, ge=0, le=1000)
    kafka_client: Literal["confluent-kafka", "kafka-python"] = Field(
        default="confluent-kafka",
        description=(
            "Kafka client library of the publisher. confluent-kafka (librdkafka) published 51-66 % more "
            "events/s than kafka-python in the benchmark (reports/bench.md); kafka-python stays available."
        ),
    )

    @field_validator("api_tokens")
    @classmethod
    def _tokens_are_usable(cls, value: SecretStr) -> SecretStr:
        entries = [t.strip() for t in value.get_secret_value().split(",") if t.strip()]
        if not entries:
            raise ValueError("API_TOKENS is empty: set at least one bearer token")
        for i, entry in enumerate(entries, 1):
            if entry.startswith(HASH_PREFIX):
                digest = entry.removeprefix(HASH_PREFIX)
                if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest.lower()):
                    raise ValueError(f"API_TOKENS entry #{i} is not 'sha256:' + 64 hex digits")
            elif len(entry) < MIN_TOKEN_LENGTH:
                raise ValueError(f"API_TOKENS entry #{i} is shorter than {MIN_TOKEN_LENGTH} characters")
        return value

    def token_digests(self) -> list[bytes]:
        """SHA-256 digests of every accepted token (the only form kept in memory)."""
        out = []
        for raw in self.api_tokens.get_secret_value().split(","):
            entry = raw.strip()
            if not entry:
                continue
            if entry.startswith(HASH_PREFIX):
                out.append(bytes.fromhex(entry.removeprefix(HASH_PREFIX)))
            else:
                out.append(hashlib.sha256(entry.encode()).digest())
        return out
