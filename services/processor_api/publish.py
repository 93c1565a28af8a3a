"""The publish step of POST /metadata: valid events become Kafka records (the API assigns
each its event id), the publisher waits for the broker's acks, and the outcomes become
the answer: 202 all acknowledged, 207 some (a batch), 503 none, with Retry-After."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from ca4_events import names
from ca4_events.ids import uuid7
from ca4_events.schema import GpuMetadataEvent
from processor_api import metrics
from processor_api.config import Settings
from processor_api.publishers import KafkaUnavailable, OutRecord, Publisher

# the model's serializer called directly: model_dump_json's Python wrapper is 20 % of a dump
_SERIALIZER = GpuMetadataEvent.__pydantic_serializer__


def to_record(event: GpuMetadataEvent) -> OutRecord:
    """The Kafka record of a valid event: the API assigns a UUIDv7 event id when it has none."""
    event_id = event.event_id or uuid7()
    if event.event_id is None:
        event = event.model_copy(update={"event_id": event_id})
    eid = str(event_id)
    return OutRecord(
        event_id=eid,
        key=event.partition_key().encode(),
        value=_SERIALIZER.to_json(event, exclude_none=True),
        headers=[
            (names.HEADER_SCHEMA_VERSION, str(event.schema_version).encode()),
            (names.HEADER_EVENT_ID, eid.encode()),
            (names.HEADER_CONTENT_TYPE, names.CONTENT_TYPE_JSON.encode()),
        ],
    )


def unavailable(settings: Settings, detail: str) -> JSONResponse:
    """503 with Retry-After: nothing of the request was accepted."""
    retry = settings.api_retry_after_seconds
    return JSONResponse(
        status_code=503,
        content={"detail": f"{detail}; nothing was accepted, retry after {retry} s"},
        headers={"Retry-After": str(retry)},
    )


async def publish(
    request: Request,
    settings: Settings,
    publisher: Publisher,
    events: list[GpuMetadataEvent],
    *,
    batch: bool,
    results: list[dict[str, Any]] | None = None,
    positions: list[int] | None = None,
) -> JSONResponse:
    """Publish valid events and answer: 202 all acknowledged, 207 some, 503 none."""
    records = [to_record(event) for event in events]
    positions = positions if positions is not None else list(range(len(events)))
    results = results if results is not None else [{} for _ in events]
    metrics.EVENTS_RECEIVED.inc(len(records))
    request.state.event_ids = [r.event_id for r in records]
    try:
        reasons = await publisher.publish(records)
    except KafkaUnavailable as exc:
        metrics.PUBLISH_FAILURES.labels(reason="unavailable").inc(len(records))
        return unavailable(settings, str(exc))
    accepted: list[str] = []
    for pos, record, reason in zip(positions, records, reasons, strict=True):
        if reason is None:
            accepted.append(record.event_id)
            results[pos] = {"index": pos, "status": 202, "event_id": record.event_id}
            continue
        metrics.PUBLISH_FAILURES.labels(reason=reason).inc()
        results[pos] = {
            "index": pos,
            "status": 503,
            "event_id": record.event_id,
            "detail": f"Kafka did not acknowledge this event ({reason}); retry it",
        }
    metrics.EVENTS_PUBLISHED.inc(len(accepted))
    if not accepted:
        detail = (
            "Kafka acknowledged none of the events"
            if batch
            else f"Kafka did not acknowledge the event ({reasons[0]})"
        )
        return unavailable(settings, detail)
    if not batch:
        return JSONResponse(
            status_code=202, content={"status": "accepted", "accepted": 1, "event_ids": accepted}
        )
    complete = len(accepted) == len(results)
    return JSONResponse(
        status_code=202 if complete else 207,
        content={
            "status": "accepted" if complete else "partial",
            "accepted": len(accepted),
            "event_ids": accepted,
            "results": results,
        },
        headers={} if complete else {"Retry-After": str(settings.api_retry_after_seconds)},
    )
