"""CA4 event schema (version 1) and the names every component shares."""

from ca4_events.ids import uuid7
from ca4_events.schema import (
    SCHEMA_VERSION,
    Accelerator,
    GpuMetadataEvent,
    HostInfo,
    Process,
    Software,
    Source,
    json_schema,
)
from ca4_events.validation import FieldError, field_errors, parse_event, summarize

__all__ = [
    "SCHEMA_VERSION",
    "Accelerator",
    "FieldError",
    "GpuMetadataEvent",
    "HostInfo",
    "Process",
    "Software",
    "Source",
    "field_errors",
    "json_schema",
    "parse_event",
    "summarize",
    "uuid7",
]
