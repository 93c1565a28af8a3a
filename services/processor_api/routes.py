"""HTTP routes: POST /metadata and the probes.

The body is read and parsed here rather than by FastAPI's model binding, for three
reasons: the size limit must hold before the whole body is in memory (413), a batch
reports one result per item instead of failing as a whole, and malformed or absurdly
nested JSON must give a readable 400 instead of an exception.
"""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ValidationError

from ca4_events import names
from ca4_events.ids import uuid7
from ca4_events.schema import GpuMetadataEvent
from ca4_events.validation import FieldError, field_errors
from processor_api import metrics
from processor_api.auth import TokenVerifier
from processor_api.config import Settings
from processor_api.publisher import KafkaUnavailable, OutRecord, Publisher

log = logging.getLogger(__name__)
router = APIRouter()


# --- response bodies (they document the API in /openapi.json) -----------------------


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


class Health(BaseModel):
    """Probe answer."""

    status: str
    kafka: str | None = None


# --- dependencies -----------------------------------------------------------------------


def get_settings_dep(request: Request) -> Settings:
    """The app's settings (set by ``create_app``)."""
    settings: Settings = request.app.state.settings
    return settings


def get_publisher(request: Request) -> Publisher:
    """The app's publisher (Kafka in production, a fake in unit tests)."""
    publisher: Publisher = request.app.state.publisher
    return publisher


def require_token(request: Request) -> None:
    """401 unless the request carries an accepted bearer token."""
    verifier: TokenVerifier = request.app.state.verifier
    if not verifier.verify(request.headers.get("authorization")):
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="missing or invalid bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
PublisherDep = Annotated[Publisher, Depends(get_publisher)]


# --- body handling ----------------------------------------------------------------------


def _problem(code: int, detail: str, **extra: Any) -> JSONResponse:
    return JSONResponse(status_code=code, content={"detail": detail, **extra})


async def _read_body(request: Request, limit: int) -> bytes:
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


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def _validate(item: Any, prefix: tuple[int | str, ...]) -> GpuMetadataEvent | list[FieldError]:
    if not isinstance(item, dict):
        where = "".join(f"[{p}]" if isinstance(p, int) else str(p) for p in prefix) or "(body)"
        return [FieldError(field=where, message="must be a JSON object", type="object_type")]
    try:
        return GpuMetadataEvent.model_validate(item)
    except ValidationError as exc:
        return field_errors(exc, prefix)


def _record(event: GpuMetadataEvent) -> tuple[str, OutRecord]:
    event_id = event.event_id or uuid7()
    if event.event_id is None:
        event = event.model_copy(update={"event_id": event_id})
    eid = str(event_id)
    return eid, OutRecord(
        event_id=eid,
        key=event.partition_key().encode(),
        value=event.model_dump_json(exclude_none=True).encode(),
        headers=[
            (names.HEADER_SCHEMA_VERSION, str(event.schema_version).encode()),
            (names.HEADER_EVENT_ID, eid.encode()),
            (names.HEADER_CONTENT_TYPE, names.CONTENT_TYPE_JSON.encode()),
        ],
    )


def _unavailable(settings: Settings, detail: str) -> JSONResponse:
    retry = settings.api_retry_after_seconds
    return JSONResponse(
        status_code=503,
        content={"detail": f"{detail}; nothing was accepted, retry after {retry} s"},
        headers={"Retry-After": str(retry)},
    )


# --- routes -----------------------------------------------------------------------------

_METADATA_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {"model": Accepted, "description": "Every event is in Kafka (acks=all)."},
    207: {"model": Accepted, "description": "Batch: some events accepted, see results."},
    400: {"model": Problem, "description": "The body is not valid JSON."},
    401: {"model": Problem, "description": "Missing or invalid bearer token."},
    413: {"model": Problem, "description": "Body over the size limit."},
    415: {"model": Problem, "description": "Content-Type is not application/json."},
    422: {"model": Problem, "description": "Invalid event(s); errors name each field."},
    503: {"model": Problem, "description": "Kafka unavailable; see Retry-After."},
}


@router.post(
    "/metadata",
    status_code=202,
    dependencies=[Depends(require_token)],
    responses=_METADATA_RESPONSES,
    response_model=Accepted,
    summary="Submit one accelerator snapshot, or {'events': [...]} for a batch",
)
async def post_metadata(request: Request, settings: SettingsDep, publisher: PublisherDep) -> JSONResponse:
    """Validate, publish to Kafka and answer only after the broker acknowledged."""
    if not _is_json(request.headers.get("content-type")):
        return _problem(415, "Content-Type must be application/json")
    body = await _read_body(request, settings.api_max_body_bytes)
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        return _problem(400, f"body is not valid JSON: {reason}")

    batch = isinstance(data, dict) and "events" in data
    if not batch:
        return await _single(request, settings, publisher, data)
    return await _batch(request, settings, publisher, data)


async def _single(request: Request, settings: Settings, publisher: Publisher, data: Any) -> JSONResponse:
    outcome = _validate(data, ())
    if isinstance(outcome, list):
        metrics.EVENTS_REJECTED.inc()
        return _problem(422, "the event is invalid", errors=outcome)
    metrics.EVENTS_RECEIVED.inc()
    eid, record = _record(outcome)
    request.state.event_ids = [eid]
    try:
        (reason,) = await publisher.publish([record])
    except KafkaUnavailable as exc:
        metrics.PUBLISH_FAILURES.labels(reason="unavailable").inc()
        return _unavailable(settings, str(exc))
    if reason is not None:
        metrics.PUBLISH_FAILURES.labels(reason=reason).inc()
        return _unavailable(settings, f"Kafka did not acknowledge the event ({reason})")
    metrics.EVENTS_PUBLISHED.inc()
    return JSONResponse(status_code=202, content={"status": "accepted", "accepted": 1, "event_ids": [eid]})


async def _batch(  # noqa: PLR0911 - one return per documented outcome reads best
    request: Request, settings: Settings, publisher: Publisher, data: dict[str, Any]
) -> JSONResponse:
    items = data.get("events")
    extra_keys = sorted(set(data) - {"events"})
    if extra_keys:
        return _problem(
            422,
            "a batch body holds only 'events'",
            errors=[
                {"field": k, "message": "unexpected key in a batch body", "type": "extra_forbidden"}
                for k in extra_keys
            ],
        )
    if not isinstance(items, list) or not items:
        return _problem(
            422,
            "'events' must be a non-empty list",
            errors=[{"field": "events", "message": "must be a non-empty list", "type": "list_type"}],
        )
    limit = settings.api_max_batch_events
    if len(items) > limit:
        return _problem(
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

    results: list[dict[str, Any]] = []
    records: list[OutRecord] = []
    positions: list[int] = []
    for i, item in enumerate(items):
        outcome = _validate(item, ("events", i))
        if isinstance(outcome, list):
            results.append({"index": i, "status": 422, "errors": outcome})
            continue
        eid, record = _record(outcome)
        results.append({"index": i, "status": 202, "event_id": eid})
        records.append(record)
        positions.append(i)
    metrics.EVENTS_REJECTED.inc(len(items) - len(records))
    metrics.EVENTS_RECEIVED.inc(len(records))
    request.state.event_ids = [r.event_id for r in records]
    if not records:
        return _problem(422, "no event in the batch is valid", results=results)

    try:
        reasons = await publisher.publish(records)
    except KafkaUnavailable as exc:
        metrics.PUBLISH_FAILURES.labels(reason="unavailable").inc(len(records))
        return _unavailable(settings, str(exc))
    accepted: list[str] = []
    for pos, record, reason in zip(positions, records, reasons, strict=True):
        if reason is None:
            accepted.append(record.event_id)
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
        return _unavailable(settings, "Kafka acknowledged none of the events")
    complete = len(accepted) == len(items)
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


@router.get(
    "/healthz",
    response_model=Health,
    response_model_exclude_none=True,
    summary="Liveness: the process answers",
)
async def healthz() -> dict[str, str]:
    """Alive as long as the event loop answers."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=Health,
    responses={503: {"model": Health, "description": "Kafka is not reachable."}},
    summary="Readiness: a Kafka broker is reachable",
)
async def readyz(publisher: PublisherDep) -> JSONResponse:
    """Ready when the publisher can reach Kafka."""
    if publisher.ready:
        return JSONResponse({"status": "ready", "kafka": "reachable"})
    return JSONResponse({"status": "not ready", "kafka": "unreachable"}, status_code=503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def prometheus_metrics() -> Response:
    """Prometheus text exposition of this process's metrics."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
