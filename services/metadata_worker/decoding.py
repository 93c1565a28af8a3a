"""Record -> validated event: anything that is not one becomes a ``PoisonRecord`` for the DLQ."""

from __future__ import annotations

import json

from pydantic import ValidationError

from ca4_events.schema import GpuMetadataEvent
from ca4_events.validation import field_errors, summarize
from metadata_worker.dlq import Record
from metadata_worker.errors import PoisonRecord
from metadata_worker.transform import KafkaCoords


def decode(record: Record) -> GpuMetadataEvent:
    """Record value -> validated event; anything else is a ``PoisonRecord``."""
    if record.value is None:
        raise PoisonRecord("record has no value (tombstone)", "EmptyValue")
    try:
        data = json.loads(record.value)
    except (ValueError, RecursionError) as exc:
        raise PoisonRecord(f"value is not UTF-8 JSON: {exc}", "DecodeError") from exc
    try:
        event = GpuMetadataEvent.model_validate(data)
    except ValidationError as exc:
        raise PoisonRecord(f"not a valid event: {summarize(field_errors(exc))}", "ValidationError") from exc
    if event.event_id is None:
        raise PoisonRecord("event_id is missing (only the Processor API may publish)", "ValidationError")
    return event


def coords(record: Record) -> KafkaCoords:
    """Where the record came from (its key decoded leniently: keys are only informational)."""
    key = record.key.decode("utf-8", "replace") if record.key is not None else None
    return KafkaCoords(record.topic, record.partition, record.offset, record.timestamp, key)
