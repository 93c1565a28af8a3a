"""Steps of kafka.feature."""

from __future__ import annotations

import json
from typing import Any

from pytest_bdd import parsers, then, when

from ca4_events import names
from tests.bdd.targets.base import RecordRef, Target, TopicInfo


@when(parsers.parse('I describe the topic "{topic}"'), target_fixture="topic")
def describe_topic(target: Target, topic: str) -> tuple[str, TopicInfo | None]:
    """Partitions and replication of one topic, through the target's bootstrap address."""
    target.require("kafka")
    return topic, target.describe_topic(topic)


def _info(topic: tuple[str, TopicInfo | None]) -> TopicInfo:
    name, info = topic
    assert info is not None, f"topic {name} does not exist"
    return info


@then("the topic exists")
def topic_exists(topic: tuple[str, TopicInfo | None]) -> None:
    """The topic is listed by the broker."""
    _info(topic)


@then("the topic has the expected number of partitions")
def expected_partitions(target: Target, topic: tuple[str, TopicInfo | None]) -> None:
    """As many partitions as the design asks for on this target."""
    info, (partitions, _) = _info(topic), target.expected_topic
    assert info.partitions == partitions, (
        f"{info.name}: expected {partitions} partitions, found {info.partitions}"
    )


@then("every partition has the expected replication factor")
def expected_replication(target: Target, topic: tuple[str, TopicInfo | None]) -> None:
    """Replication min(3, brokers)."""
    info, (_, replication) = _info(topic), target.expected_topic
    assert info.replication == replication, (
        f"{info.name}: expected replication {replication}, found {info.replication}"
    )


@then("no partition is under-replicated")
def none_under_replicated(topic: tuple[str, TopicInfo | None]) -> None:
    """Every replica is in sync."""
    info = _info(topic)
    assert info.under_replicated == 0, f"{info.name}: {info.under_replicated} partition(s) under-replicated"


@when(parsers.parse('I produce a verification event to "{topic}"'), target_fixture="produced")
def produce_verification_event(
    target: Target, topic: str, snapshot: dict[str, Any]
) -> tuple[str, RecordRef, bytes]:
    """A valid, tagged event (the worker stores it like any other, so nothing lands in the DLQ)."""
    target.require("kafka")
    value = json.dumps(snapshot).encode()
    headers = [(names.HEADER_EVENT_ID, snapshot["event_id"].encode()), (names.HEADER_SCHEMA_VERSION, b"1")]
    ref = target.produce(topic, key=snapshot["source"]["session_id"].encode(), value=value, headers=headers)
    return topic, ref, value


@then("I read the same record back from its partition and offset")
def read_back(target: Target, produced: tuple[str, RecordRef, bytes]) -> None:
    """The bytes at that offset are the bytes produced."""
    topic, ref, value = produced
    record = target.read_at(topic, ref)
    assert record.value == value, f"{topic}/{ref.partition}@{ref.offset} holds different bytes"
