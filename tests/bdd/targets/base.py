"""The target interface of the Gherkin features, and the network paths both targets share.

A feature's steps call only these methods. ``LocalTarget`` (the embedded stack) and
``LiveTarget`` (the tunneled cluster) differ where the platform differs: how components
are found ready, how the database is reached, where logs are read. The API, Kafka,
Prometheus and S3 are reached the same way in both, through the addresses each target
provides, so that code is written once, here.
"""

from __future__ import annotations

import time
import urllib.parse
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from ca4_events import names

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
        """Skip the scenario with a one-line reason when a prerequisite is missing."""
        for need in needs:
            reason = self.missing(need)
            if reason:
                pytest.skip(f"[{self.name}] {reason}")

    def eventually(self, what: str, probe: Callable[[], T | None], timeout: float | None = None) -> T:
        """Poll ``probe`` until it returns a value; fail naming ``what`` after the timeout."""
        limit = self.timeout_s if timeout is None else timeout
        deadline = time.monotonic() + limit
        while True:
            value = probe()
            if value is not None and value is not False:
                return value
            if time.monotonic() >= deadline:
                raise AssertionError(f"[{self.name}] {what}: not true after {limit:.0f} s")
            time.sleep(0.25)

    # --- components (target-specific) ----------------------------------------------------

    @abstractmethod
    def component_ready(self, component: str) -> tuple[bool, str]:
        """Whether a pipeline component is up and ready, and what was seen."""

    def nodes(self) -> list[tuple[str, bool]]:
        """Kubernetes nodes and their Ready condition (cluster targets only)."""
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

    # --- the Processor API ---------------------------------------------------------------

    def post_metadata(self, body: Any, token: str | None = None) -> httpx.Response:
        """POST /metadata with ``token`` (the target's own by default; "" for none)."""
        token = self.token if token is None else token
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.post(f"{self.api_url}/metadata", json=body, headers=headers, timeout=30)

    def api_get(self, path: str) -> httpx.Response:
        """GET a path of the API."""
        return httpx.get(f"{self.api_url}{path}", timeout=10)

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
        consumer = KafkaConsumer(bootstrap_servers=self.kafka_bootstrap, enable_auto_commit=False)
        try:
            parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
            return {tp.partition: off for tp, off in consumer.end_offsets(parts).items()}
        finally:
            consumer.close()

    def find_record(self, topic: str, since: dict[int, int], match: Callable[[Any], bool]) -> RecordRef:
        """Read ``topic`` from ``since`` until a record matches; fail after the timeout."""
        consumer = KafkaConsumer(bootstrap_servers=self.kafka_bootstrap, enable_auto_commit=False)
        try:
            parts = [TopicPartition(topic, p) for p in since]
            consumer.assign(parts)
            for tp in parts:
                consumer.seek(tp, since[tp.partition])
            deadline = time.monotonic() + self.timeout_s
            while time.monotonic() < deadline:
                for records in consumer.poll(timeout_ms=500).values():
                    for r in records:
                        if match(r):
                            return RecordRef(r.partition, r.offset)
        finally:
            consumer.close()
        raise AssertionError(f"[{self.name}] no matching record on {topic} within {self.timeout_s:.0f} s")

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
        consumer = KafkaConsumer(bootstrap_servers=self.kafka_bootstrap, enable_auto_commit=False)
        try:
            tp = TopicPartition(topic, ref.partition)
            consumer.assign([tp])
            consumer.seek(tp, ref.offset)
            deadline = time.monotonic() + self.timeout_s
            while time.monotonic() < deadline:
                for r in consumer.poll(timeout_ms=500).get(tp, []):
                    if r.offset == ref.offset:
                        return r
        finally:
            consumer.close()
        raise AssertionError(f"[{self.name}] nothing at {topic}/{ref.partition}@{ref.offset}")

    def committed_offset(
        self, partition: int, group: str = names.CONSUMER_GROUP, topic: str = names.TOPIC
    ) -> int:
        """The consumer group's committed offset on one partition (-1 when none)."""
        admin = KafkaAdminClient(bootstrap_servers=self.kafka_bootstrap, request_timeout_ms=10_000)
        try:
            offsets = admin.list_group_offsets(group).get(group, {})
        except KafkaError:
            return -1
        finally:
            admin.close()
        meta = offsets.get(TopicPartition(topic, partition))
        return -1 if meta is None else int(meta.offset)

    # --- Prometheus ----------------------------------------------------------------------

    def prometheus_value(self, expr: str) -> float | None:
        """Instant query; the single sample's value, or None when the result is empty."""
        url = f"{self.prometheus_url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
        resp = httpx.get(url, timeout=10)
        resp.raise_for_status()
        result = resp.json()["data"]["result"]
        if not result:
            return None
        return float(result[0]["value"][1])

    # --- S3 archive ------------------------------------------------------------------------

    def archive_key_holding(self, event_id: str, partition: int, offset: int) -> str | None:
        """The enriched archive object whose offset range holds the record, if written."""
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
                if part == partition and first <= offset <= last:
                    return str(obj["Key"])
        return None

    archive_prefix: str = ""
