"""API -> Kafka -> worker -> FerretDB on the real local stack."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx

from ca4_events import names
from ca4_events.schema import GpuMetadataEvent
from metadata_worker.transform import KafkaCoords, enrich, to_millis
from tests.integration.support import Stack, eventually, metric, to_body


def test_the_api_answers_202_only_with_the_record_in_kafka(
    local_stack: Stack, session_events: list[GpuMetadataEvent]
) -> None:
    event = session_events[-1]
    event_id = str(uuid.uuid4())
    resp = httpx.post(
        f"{local_stack.cfg.api_url}/metadata",
        json=to_body(event) | {"event_id": event_id},
        headers=local_stack.headers(),
    )
    assert resp.status_code == 202, resp.text
    assert resp.json()["event_ids"] == [event_id]
    record = local_stack.read_topic(
        names.TOPIC, lambda r: dict(r.headers).get("event_id") == event_id.encode()
    )
    assert record.key == event.source.session_id.encode(), (
        "key is the producer session, so its events stay ordered"
    )
    assert dict(record.headers)["schema_version"] == b"1"
    published = GpuMetadataEvent.model_validate_json(record.value)
    assert published == event.model_copy(update={"event_id": uuid.UUID(event_id)}), (
        "the topic holds the validated event"
    )


def test_stored_documents_equal_the_transformed_events(
    local_stack: Stack, session_events: list[GpuMetadataEvent]
) -> None:
    ids = local_stack.post_events(session_events)
    stored = local_stack.wait_for_documents(ids)
    for event, event_id in zip(session_events, ids, strict=True):
        doc = stored[event_id]
        k = doc["kafka"]
        coords = KafkaCoords(
            k["topic"],
            k["partition"],
            k["offset"],
            int(doc["ingest"]["published_at"].timestamp() * 1000),
            k["key"],
        )
        expected = enrich(
            event.model_copy(update={"event_id": uuid.UUID(event_id)}), coords, doc["ingest"]["processed_at"]
        )
        assert doc == expected, f"document {event_id} differs from the transformed event"
    assert stored[ids[-1]]["accelerators"][0]["derived"]["clock_event_reasons"] == ["sw_power_cap"]


def test_the_device_collection_holds_the_latest_state(
    local_stack: Stack, session_events: list[GpuMetadataEvent]
) -> None:
    ids = local_stack.post_events(session_events)
    local_stack.wait_for_documents(ids)
    uuid_ = session_events[-1].accelerators[0].uuid
    newest = to_millis(session_events[-1].collected_at)
    devices = local_stack.db[names.COLLECTION_DEVICES]
    # device states are written right after the documents, in the same batch: poll briefly
    device = eventually(
        f"gpu_devices holding {uuid_} at the newest snapshot ({newest})",
        lambda: (d := devices.find_one({"_id": uuid_})) is not None and d["last_seen_at"] == newest and d,
        timeout=10,
        interval=0.05,
    )
    assert device["last_event_id"] == ids[-1]
    assert device["architecture"] == "Hopper"
    assert device["last"]["utilization_gpu_pct"] == session_events[-1].accelerators[0].utilization_gpu_pct


def test_the_same_event_posted_twice_is_stored_once(
    local_stack: Stack, session_events: list[GpuMetadataEvent]
) -> None:
    worker = local_stack.cfg.worker_url
    duplicates_before = local_stack.metric(worker, "ca4_worker_events_duplicate_total")
    body = to_body(session_events[0]) | {"event_id": str(uuid.uuid4())}
    with httpx.Client(base_url=local_stack.cfg.api_url, headers=local_stack.headers()) as api:
        first, second = api.post("/metadata", json=body), api.post("/metadata", json=body)
    assert (first.status_code, second.status_code) == (202, 202), "a client retry is accepted again"
    local_stack.wait_for_documents([body["event_id"]])
    count = local_stack.db[names.COLLECTION_EVENTS].count_documents({"_id": body["event_id"]})
    assert count == 1, f"expected one document for {body['event_id']}, found {count}"
    # the second copy reached the worker and was recognised as a replay, not silently lost
    local_stack.wait_for_metric(worker, "ca4_worker_events_duplicate_total", above=duplicates_before)


def test_a_mixed_batch_stores_the_valid_events(
    local_stack: Stack, session_events: list[GpuMetadataEvent]
) -> None:
    items: list[dict[str, Any]] = [to_body(e) for e in session_events[:3]]
    items[1]["accelerators"][0]["temperature_gpu_c"] = "hot"
    resp = httpx.post(
        f"{local_stack.cfg.api_url}/metadata", json={"events": items}, headers=local_stack.headers()
    )
    assert resp.status_code == 207, resp.text
    results = resp.json()["results"]
    assert [r["status"] for r in results] == [202, 422, 202]
    assert results[1]["errors"][0]["field"] == "events[1].accelerators[0].temperature_gpu_c"
    local_stack.wait_for_documents(resp.json()["event_ids"])


def test_probes_and_metrics_answer(local_stack: Stack) -> None:
    for url in (local_stack.cfg.api_url, local_stack.cfg.worker_url):
        assert httpx.get(f"{url}/healthz").status_code == 200, url
        assert httpx.get(f"{url}/readyz").status_code == 200, url
    worker = local_stack.cfg.worker_url
    assert metric(worker, "ca4_worker_events_stored_total", default=None) is not None, "no stored counter"
    assert metric(worker, "ca4_worker_ready", default=None) == 1.0


def test_without_a_token_nothing_reaches_kafka(
    local_stack: Stack, session_events: list[GpuMetadataEvent]
) -> None:
    refused = to_body(session_events[0]) | {"event_id": str(uuid.uuid4())}
    with local_stack.nothing_published(session_events[1]):
        resp = httpx.post(f"{local_stack.cfg.api_url}/metadata", json=refused)
    assert resp.status_code == 401
    assert json.loads(resp.text)["detail"] == "missing or invalid bearer token"
