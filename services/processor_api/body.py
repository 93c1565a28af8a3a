"""Reading and validating a POST /metadata body.

The body is read and parsed here rather than by FastAPI's model binding, for three
reasons: the size limit must hold before the whole body is in memory (413), a batch
reports one result per item instead of failing as a whole, and malformed or absurdly
nested JSON must give a readable 400 instead of an exception.

A well-formed body takes the fast path (``validate_whole``: one pydantic call on the
bytes); anything else the slow path (``validate_each``), which names every problem.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from pydantic_core import from_json

from ca4_events.schema import EventBatch, GpuMetadataEvent
from ca4_events.validation import FieldError, field_errors, field_path
from processor_api import metrics


def problem(code: int, detail: str, **extra: Any) -> JSONResponse:
    """An error answer: ``{"detail": ..., **extra}``."""
    return JSONResponse(status_code=code, content={"detail": detail, **extra})


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"request body is {declared} bytes; the limit is {limit}")
    size = 0
    chunks: list[bytes] = []
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def _validate(item: Any, prefix: tuple[int | str, ...]) -> GpuMetadataEvent | list[FieldError]:
    if not isinstance(item, dict):
        where = field_path(prefix) if prefix else "(body)"
        return [FieldError(field=where, message="must be a JSON object", type="object_type")]
    try:
        return GpuMetadataEvent.model_validate(item)
    except ValidationError as exc:
        return field_errors(exc, prefix)


def _first_key(body: bytes) -> bytes | None:
    """The first key of a JSON object body, without parsing it (b'"events"' marks a batch)."""
    head = body[:64].lstrip()
    if not head.startswith(b"{"):
        return None
    head = head[1:].lstrip()
    end = head.find(b'"', 1)
    return head[: end + 1] if head.startswith(b'"') and end > 0 else None


def validate_whole(body: bytes, limit: int) -> tuple[list[GpuMetadataEvent], bool] | None:
    """Fast path: the whole body parsed and validated in one call from its bytes.

    Returns ``(events, is_batch)``, or None when anything is wrong: the slow path then finds
    each problem and names it.
    """
    try:
        if _first_key(body) == b'"events"':
            events = list(EventBatch.model_validate_json(body).events)
            return (events, True) if len(events) <= limit else None
        return [GpuMetadataEvent.model_validate_json(body)], False
    except ValidationError:
        return None


@dataclass
class Checked:
    """The slow path's outcome: the valid events, where they were, and a result per item."""

    events: list[GpuMetadataEvent]
    batch: bool
    results: list[dict[str, Any]] | None = None
    positions: list[int] | None = None
    rejected: JSONResponse | None = field(default=None)


def validate_each(body: bytes, limit: int) -> Checked:
    """Slow path: parse, check the shape, validate item by item for per-item answers.

    ``rejected`` is the answer when nothing can be published (400 or 422).
    """
    try:
        # pydantic-core's parser bounds nesting itself; NaN and Infinity are not JSON
        data = from_json(body, allow_inf_nan=False)
    except ValueError as exc:
        return Checked([], False, rejected=problem(400, f"body is not valid JSON: {exc}"))
    if not (isinstance(data, dict) and "events" in data):
        outcome = _validate(data, ())
        if isinstance(outcome, list):
            metrics.EVENTS_REJECTED.inc()
            return Checked([], False, rejected=problem(422, "the event is invalid", errors=outcome))
        return Checked([outcome], False)
    shape = _batch_shape_problem(data, limit)
    if shape is not None:
        return Checked([], True, rejected=shape)
    items: list[Any] = data["events"]
    results: list[dict[str, Any]] = [{} for _ in items]
    events: list[GpuMetadataEvent] = []
    positions: list[int] = []
    for i, item in enumerate(items):
        outcome = _validate(item, ("events", i))
        if isinstance(outcome, list):
            results[i] = {"index": i, "status": 422, "errors": outcome}
        else:
            events.append(outcome)
            positions.append(i)
    metrics.EVENTS_REJECTED.inc(len(items) - len(events))
    if not events:
        return Checked([], True, rejected=problem(422, "no event in the batch is valid", results=results))
    return Checked(events, True, results, positions)


def _batch_shape_problem(data: dict[str, Any], limit: int) -> JSONResponse | None:
    """422 for a batch body that is not ``{"events": [1..limit items]}``."""
    extra_keys = sorted(set(data) - {"events"})
    if extra_keys:
        return problem(
            422,
            "a batch body holds only 'events'",
            errors=[
                {"field": k, "message": "unexpected key in a batch body", "type": "extra_forbidden"}
                for k in extra_keys
            ],
        )
    items = data["events"]
    if not isinstance(items, list) or not items:
        return problem(
            422,
            "'events' must be a non-empty list",
            errors=[{"field": "events", "message": "must be a non-empty list", "type": "list_type"}],
        )
    if len(items) > limit:
        return problem(
            422,
            f"a batch holds at most {limit} events",
            errors=[
                {
                    "field": "events",
                    "message": f"{len(items)} events; at most {limit} per request",
                    "type": "too_long",
                }
            ],
        )
    return None
