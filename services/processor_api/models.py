"""Response bodies of the API: they document it in /openapi.json (the request body is the
event schema itself, ``ca4_events.schema``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class FieldErrorOut(BaseModel):
    """One problem with one field."""

    field: str
    message: str
    type: str


class ItemResult(BaseModel):
    """The outcome for one event of a batch."""

    index: int
    status: int
    event_id: str | None = None
    errors: list[FieldErrorOut] = []
    detail: str | None = None


class Accepted(BaseModel):
    """The events were acknowledged by Kafka and will be stored."""

    status: Literal["accepted", "partial"]
    accepted: int
    event_ids: list[str]
    results: list[ItemResult] | None = None


class Problem(BaseModel):
    """Why nothing (or not everything) was accepted."""

    detail: str
    errors: list[FieldErrorOut] = []
    results: list[ItemResult] | None = None


class ProbeStatus(BaseModel):
    """Probe answer (/healthz, /readyz)."""

    status: str
    kafka: str | None = None
