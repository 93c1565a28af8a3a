"""Steps of e2e.feature: one snapshot, followed through every stage."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from pytest_bdd import given, then, when

from ca4_events import names
from tests.bdd.targets.base import RecordRef, Target

PROCESSED_EVENTS = "sum(ca4_worker_events_stored_total)"  # the pipeline dashboard's "processed" panel


@dataclass
class Before:
    """Counters read before the post."""

    end_offsets: dict[int, int]
    processed: float | None  # None where the target has no Prometheus to ask


@given("the pipeline's counters before the post", target_fixture="before")
def counters_before(target: Target) -> Before:
    """Topic end offsets, and the processed-events metric where Prometheus is reachable.

    Each step asks for what it reads itself: a target without Prometheus still runs the
    archive scenario, and only the metric step is skipped.
    """
    target.require("api", "token", "kafka")
    processed = None
    if target.missing("prometheus") is None:
        processed = target.prometheus_value(PROCESSED_EVENTS) or 0.0
    return Before(target.end_offsets(names.TOPIC), processed)


@given("archiving is on for the target")
def archiving_is_on(target: Target) -> None:
    """Skip (with the reason) where the worker does not archive."""
    target.require("s3")
    if not target.archive_enabled:
        pytest.skip(f"[{target.name}] archiving is off on this target")


@when("the client posts the snapshot to the Processor API", target_fixture="posted")
def post_snapshot(target: Target, snapshot: dict[str, Any]) -> httpx.Response:
    """POST /metadata with the target's token."""
    target.require("api", "token")
    return target.post_metadata(snapshot)


@then("the API answers 202 with the snapshot's event id")
def answered_202(posted: httpx.Response, snapshot: dict[str, Any]) -> None:
    """Accepted, and the id is the client's."""
    assert posted.status_code == 202, f"expected 202, got {posted.status_code}: {posted.text}"
    assert posted.json()["event_ids"] == [snapshot["event_id"]]


@pytest.fixture
def record(target: Target, before: Before, snapshot: dict[str, Any]) -> RecordRef:
    """Where the snapshot landed in gpu-metadata (found by its event id header)."""
    wanted = snapshot["event_id"].encode()
    return target.find_record(
        names.TOPIC, before.end_offsets, lambda r: dict(r.headers).get("event_id") == wanted
    )


@then("the worker's consumer group moves past the snapshot's offset")
def consumer_group_moves(target: Target, record: RecordRef) -> None:
    """ca4-metadata-worker committed beyond the record."""
    target.eventually(
        f"{names.CONSUMER_GROUP} committing past {names.TOPIC}/{record.partition}@{record.offset}",
        lambda: target.committed_offset(record.partition) > record.offset,
    )


@then("a worker log line carries the event id")
def worker_logged(target: Target, snapshot: dict[str, Any]) -> None:
    """The worker's JSON log names the event."""
    target.require("logs")
    target.eventually(
        f"a worker log line with {snapshot['event_id']}",
        lambda: target.worker_logs_contain(snapshot["event_id"]),
    )


@then("the document is retrievable by its event id")
def retrievable(target: Target, snapshot: dict[str, Any]) -> None:
    """find_one by _id returns the stored, enriched document."""
    target.require("database")
    op = {"op": "get", "collection": names.COLLECTION_EVENTS, "id": snapshot["event_id"]}
    doc = target.eventually(f"document {snapshot['event_id']}", lambda: target.db([op])[0])
    assert doc["source"]["session_id"] == snapshot["source"]["session_id"]
    assert doc["accelerators"][0]["derived"]["architecture"] == "Hopper", "the worker's enrichment is there"


@then("the dashboard's processed-events metric has increased")
def metric_increased(target: Target, before: Before) -> None:
    """Prometheus shows more processed events than before."""
    target.require("prometheus")
    assert before.processed is not None, "Prometheus became reachable only after the post"
    processed = before.processed
    target.eventually(
        f"{PROCESSED_EVENTS} to exceed {processed}",
        lambda: (target.prometheus_value(PROCESSED_EVENTS) or 0.0) > processed,
    )


@then("the archive object holding the snapshot exists")
def archived(target: Target, record: RecordRef, snapshot: dict[str, Any]) -> None:
    """An enriched archive object covers the record's offset and holds the event."""
    target.eventually(
        f"an archive object covering {names.TOPIC}/{record.partition}@{record.offset} "
        f"and holding {snapshot['event_id']}",
        lambda: target.archive_key_holding(snapshot["event_id"], record.partition, record.offset),
    )
