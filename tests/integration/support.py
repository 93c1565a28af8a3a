"""Helpers for integration tests: handles onto the running local stack."""

from __future__ import annotations

import gzip
import json
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from pymongo import MongoClient
from pymongo.database import Database

from ca4_events import names
from ca4_events.schema import GpuMetadataEvent
from local_stack import s3
from local_stack.config import BUCKET, StackConfig


@dataclass
class Stack:
    """Handles onto the running local stack."""

    cfg: StackConfig
    mongo: MongoClient[dict[str, Any]]

    @property
    def db(self) -> Database[dict[str, Any]]:
        """Database ``ca4``."""
        return self.mongo[names.DATABASE]

    @property
    def token(self) -> str:
        """The API's bearer token."""
        return self.cfg.api_token()

    def headers(self) -> dict[str, str]:
        """Authorization and JSON content type."""
        return {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}

    def s3(self) -> Any:
        """boto3 client for moto."""
        return s3.client(self.cfg)

    def producer(self) -> KafkaProducer:
        """A raw producer (for records the API would never publish)."""
        return KafkaProducer(bootstrap_servers=self.cfg.kafka_bootstrap, acks="all")

    def read_topic(self, topic: str, until: Callable[[Any], bool], timeout: float = 20.0) -> Any:
        """Read ``topic`` from the beginning until a record satisfies ``until``; fail after ``timeout``."""
        consumer = KafkaConsumer(bootstrap_servers=self.cfg.kafka_bootstrap, enable_auto_commit=False)
        try:
            parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
            assert parts, f"topic {topic} has no partitions"
            consumer.assign(parts)
            consumer.seek_to_beginning(*parts)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                for records in consumer.poll(timeout_ms=500).values():
                    for record in records:
                        if until(record):
                            return record
        finally:
            consumer.close()
        raise AssertionError(f"no record on {topic} matched within {timeout:.0f} s")

    def wait_for_documents(self, ids: list[str], timeout: float = 30.0) -> dict[str, dict[str, Any]]:
        """Poll ``gpu_metadata`` until every id is stored; fail naming the missing ones."""
        found: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            missing = [i for i in ids if i not in found]
            if not missing:
                return found
            for doc in self.db[names.COLLECTION_EVENTS].find({"_id": {"$in": missing}}):
                found[doc["_id"]] = doc
            time.sleep(0.05)
        missing = [i for i in ids if i not in found]
        raise AssertionError(
            f"{len(missing)} event(s) not in ca4.gpu_metadata after {timeout:.0f} s: {missing}"
        )

    def archived(self, ids: set[str], timeout: float = 30.0) -> dict[str, set[str]]:
        """``{enriched key: ids it holds}`` for objects holding any of ``ids``, once all are found."""
        client = self.s3()
        holding: dict[str, set[str]] = {}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="enriched/")
            for obj in (o for page in pages for o in page.get("Contents", [])):
                body = gzip.decompress(client.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read())
                mine = {json.loads(line)["_id"] for line in body.splitlines()} & ids
                if mine:
                    holding[obj["Key"]] = mine
            if set().union(*holding.values()) >= ids:
                return holding
            time.sleep(0.2)
        raise AssertionError(f"events not archived in s3://{BUCKET} after {timeout:.0f} s")

    def metric(self, base_url: str, name: str, labels: str = "") -> float:
        """Current value of one Prometheus sample (0 when absent)."""
        with urllib.request.urlopen(f"{base_url}/metrics", timeout=5) as resp:  # noqa: S310 - loopback
            text = resp.read().decode()
        wanted = f"{name}{{{labels}}}" if labels else name
        for line in text.splitlines():
            if line.startswith(wanted + " "):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def wait_for_metric(self, base_url: str, name: str, above: float, timeout: float = 10.0) -> float:
        """Poll a counter until it exceeds ``above``; fail with the last value seen."""
        deadline = time.monotonic() + timeout
        value = self.metric(base_url, name)
        while value <= above and time.monotonic() < deadline:
            time.sleep(0.1)
            value = self.metric(base_url, name)
        assert value > above, (
            f"{name} at {base_url} stayed at {value} (expected > {above}) for {timeout:.0f} s"
        )
        return value


def to_body(event: GpuMetadataEvent) -> dict[str, Any]:
    """An event as a producer sends it."""
    return dict(json.loads(event.model_dump_json(exclude_none=True)))


def wait_status(url: str, status: int, timeout: float) -> None:
    """Poll ``url`` until it answers ``status``; fail naming the last answer seen."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = httpx.get(url, timeout=2).status_code
        except httpx.TransportError:
            last = None
        if last == status:
            return
        time.sleep(0.2)
    raise AssertionError(f"{url} answered {last}, expected {status} within {timeout:.0f} s")
