"""The target interface of the Gherkin features, and the network paths both targets share.

A feature's steps call only these methods. ``LocalTarget`` (the embedded stack) and
``LiveTarget`` (the tunneled cluster) differ where the platform differs: how components
are found ready, how the database is reached, where logs are read. The API, Kafka,
Prometheus and S3 are reached the same way in both, through the addresses each target
provides, so that code is written once, here.
"""

from __future__ import annotations

import functools
import gzip
import json
import ssl
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import pytest
from botocore.exceptions import ClientError
from kafka import KafkaAdminClient, KafkaProducer
from kafka.errors import KafkaError

from ca4_events import names
from ca4_producer import tls
from tests.integration import support

T = TypeVar("T")


@dataclass(frozen=True)
class TopicInfo:
    """What the features check about a topic."""

    name: str
    partitions: int
    replication: int
    under_replicated: int  # partitions whose in-sync replicas are fewer than their replicas


@dataclass(frozen=True)
class RecordRef:
    """Where a record landed."""

    partition: int
    offset: int


class Target(ABC):
    """One environment the features verify."""

    name: str
    timeout_s: float = 60.0

    # --- prerequisites --------------------------------------------------------------

    @abstractmethod
    def missing(self, need: str) -> str | None:
        """Why ``need`` (e.g. "api", "kafka", "cluster", "prometheus") is unavailable, or None."""

    def require(self, *needs: str) -> None:
        """Skip the scenario when prerequisites are missing, naming each (joined by `` | ``)."""
        reasons = [r for r in dict.fromkeys(self.missing(need) for need in needs) if r]
        if reasons:
            pytest.skip(" | ".join(f"[{self.name}] {r}" for r in reasons))

    def eventually(self, what: str, probe: Callable[[], T | None], timeout: float | None = None) -> T:
        """Poll ``probe`` until it returns a value (not None or False); fail naming ``what``."""
        limit = self.timeout_s if timeout is None else timeout
        return support.eventually(f"[{self.name}] {what}", probe, limit, 0.25)

    # --- components (target-specific) ----------------------------------------------------

    @abstractmethod
    def component_ready(self, component: str) -> tuple[bool, str]:
        """Whether a pipeline component is up and ready, and what was seen."""

    def nodes(self) -> list[tuple[str, bool]]:
        """Kubernetes nodes and their Ready condition (cluster targets only)."""
        raise NotImplementedError

    def delete_broker_pod(self) -> str:
        """Delete the last Kafka broker's pod, as a node failure would; its name (cluster targets only)."""
        raise NotImplementedError

    def broker_pod_ready(self, name: str) -> bool:
        """The pod ``name`` is a new one (not the deleted) and Ready (cluster targets only)."""
        raise NotImplementedError

    def run_documents(self, run: str) -> list[list[Any]]:
        """``[_id, workload.seq]`` of every stored event whose ``workload.run`` is ``run``."""
        raise NotImplementedError

    def pods(self, namespace: str) -> list[tuple[str, bool]]:
        """Pods of a namespace and whether each is running and ready (cluster targets only)."""
        raise NotImplementedError

    @abstractmethod
    def api_environment(self) -> dict[str, str]:
        """The environment variables the Processor API runs with (names matter, not values)."""

    @abstractmethod
    def db(self, ops: list[dict[str, Any]]) -> list[Any]:
        """Run database probe operations through this target's path to the database."""

    @abstractmethod
    def worker_logs_contain(self, text: str) -> bool:
        """True when a worker log line contains ``text``."""

    @property
    @abstractmethod
    def archive_enabled(self) -> bool:
        """Whether the worker archives to S3 on this target."""

    @abstractmethod
    def s3_client(self) -> Any:
        """boto3 S3 client able to read the archive."""

    @property
    @abstractmethod
    def archive_bucket(self) -> str:
        """The archive bucket's name."""

    @property
    @abstractmethod
    def expected_topic(self) -> tuple[int, int]:
        """``(partitions, replication)`` the topic gpu-metadata should have here."""

    # --- endpoints every target provides ------------------------------------------------

    api_url: str
    token: str
    kafka_bootstrap: str
    prometheus_url: str
    ca_bundle: str = ""  # CA4_CA_BUNDLE: the API's CA when the stack signed its own certificate

    @functools.cached_property
    def tls_context(self) -> ssl.SSLContext:
        """What the API's certificate is verified against: the public roots plus ``ca_bundle``,
        as the producer client trusts it (``ca4_producer.tls``)."""
        return tls.ssl_context(self.ca_bundle)

    # --- the Processor API ---------------------------------------------------------------

    def post_metadata(self, body: Any, token: str | None = None) -> httpx.Response:
        """POST /metadata with ``token`` (the target's own by default; "" for none)."""
        token = self.token if token is None else token
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.post(
            f"{self.api_url}/metadata", json=body, headers=headers, timeout=30, verify=self.tls_context
        )

    def api_get(self, path: str) -> httpx.Response:
        """GET a path of the API."""
        return httpx.get(f"{self.api_url}{path}", timeout=10, verify=self.tls_context)

    # --- Kafka ---------------------------------------------------------------------------

    def describe_topic(self, topic: str) -> TopicInfo | None:
        """Partitions and replication of ``topic``; None when it does not exist."""
        admin = KafkaAdminClient(bootstrap_servers=self.kafka_bootstrap, request_timeout_ms=10_000)
        try:
            if topic not in admin.list_topics():
                return None
            (desc,) = admin.describe_topics([topic])
        finally:
            admin.close()
        parts = desc["partitions"]
        return TopicInfo(
            name=topic,
            partitions=len(parts),
            replication=min(len(p["replica_nodes"]) for p in parts),
            under_replicated=sum(1 for p in parts if len(p["isr_nodes"]) < len(p["replica_nodes"])),
        )

    def end_offsets(self, topic: str) -> dict[int, int]:
        """Next offset per partition (where a new record would land)."""
        return support.end_offsets(self.kafka_bootstrap, topic)

    def _read(self, topic: str, since: dict[int, int], match: Callable[[Any], bool]) -> Any:
        try:
            return support.read_topic(self.kafka_bootstrap, topic, match, since=since, timeout=self.timeout_s)
        except AssertionError as exc:
            raise AssertionError(f"[{self.name}] {exc}") from None

    def find_record(self, topic: str, since: dict[int, int], match: Callable[[Any], bool]) -> RecordRef:
        """Read ``topic`` from ``since`` until a record matches; fail after the timeout."""
        record = self._read(topic, since, match)
        return RecordRef(record.partition, record.offset)

    def produce(self, topic: str, key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> RecordRef:
        """Produce one record with acks=all; where it landed."""
        producer = KafkaProducer(bootstrap_servers=self.kafka_bootstrap, acks="all")
        try:
            meta = producer.send(topic, key=key, value=value, headers=headers).get(timeout=30)
        finally:
            producer.close()
        return RecordRef(meta.partition, meta.offset)

    def read_at(self, topic: str, ref: RecordRef) -> Any:
        """The record at a partition and offset."""
        return self._read(topic, {ref.partition: ref.offset}, lambda r: r.offset == ref.offset)

    def committed_offset(
        self, partition: int, group: str = names.CONSUMER_GROUP, topic: str = names.TOPIC
    ) -> int:
        """The consumer group's committed offset on one partition (-1 when none)."""
        try:
            return support.committed(self.kafka_bootstrap, group, topic).get(partition, -1)
        except KafkaError:
            return -1

    # --- Prometheus ----------------------------------------------------------------------

    def prometheus_value(self, expr: str) -> float | None:
        """Instant query; the single sample's value, or None when the result is empty."""
        return support.prom_value(self.prometheus_url, expr)

    # --- S3 archive ------------------------------------------------------------------------

    def archive_key_holding(self, event_id: str, partition: int, offset: int) -> str | None:
        """The enriched archive object whose offset range covers the record and that holds ``event_id``."""
        client = self.s3_client()
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=self.archive_bucket, Prefix=f"{self.archive_prefix}enriched/topic={names.TOPIC}/"
        )
        for page in pages:
            for obj in page.get("Contents", []):
                name = obj["Key"].rsplit("/", 1)[-1]  # gpu-metadata-p0-o<first>-<last>.jsonl.gz
                try:
                    part_s, first_s, last_s = name.removesuffix(".jsonl.gz").rsplit("-", 3)[-3:]
                    part, first, last = int(part_s.lstrip("p")), int(first_s.lstrip("o")), int(last_s)
                except ValueError:
                    continue
                if part == partition and first <= offset <= last and self._holds(obj["Key"], event_id):
                    return str(obj["Key"])
        return None

    def _holds(self, key: str, event_id: str) -> bool:
        try:
            body = self.s3_client().get_object(Bucket=self.archive_bucket, Key=key)["Body"].read()
        except ClientError:
            return False  # superseded by a wider range and deleted since the listing
        return any(json.loads(line)["_id"] == event_id for line in gzip.decompress(body).splitlines() if line)

    archive_prefix: str = ""
