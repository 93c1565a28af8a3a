"""HTTP routes: POST /metadata and the probes.

The body is read and parsed here rather than by FastAPI's model binding, for three
reasons: the size limit must hold before the whole body is in memory (413), a batch
reports one result per item instead of failing as a whole, and malformed or absurdly
nested JSON must give a readable 400 instead of an exception.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ValidationError
from pydantic_core import from_json

from ca4_events import names
from ca4_events.ids import uuid7
from ca4_events.schema import EventBatch, GpuMetadataEvent
from ca4_events.validation import FieldError, field_errors, field_path
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


# the dependencies are async on purpose: FastAPI runs plain `def` dependencies in a thread
# pool, which cost three thread hops per request for work that takes microseconds
async def get_settings_dep(request: Request) -> Settings:
    """The app's settings (set by ``create_app``)."""
    settings: Settings = request.app.state.settings
    return settings


async def get_publisher(request: Request) -> Publisher:
    """The app's publisher (Kafka in production, a fake in unit tests)."""
    publisher: Publisher = request.app.state.publisher
    return publisher


async def require_token(request: Request) -> None:
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
        where = field_path(prefix) if prefix else "(body)"
        return [FieldError(field=where, message="must be a JSON object", type="object_type")]
    try:
        return GpuMetadataEvent.model_validate(item)
    except ValidationError as exc:
        return field_errors(exc, prefix)


def _record(event: GpuMetadataEvent) -> OutRecord:
    event_id = event.event_id or uuid7()
    if event.event_id is None:
        event = event.model_copy(update={"event_id": event_id})
    eid = str(event_id)
    return OutRecord(
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
    valid = _validate_whole(body, settings.api_max_batch_events)
    if valid is not None:
        events, batch = valid
        return await _publish(request, settings, publisher, events, batch=batch)
    return await _validate_each(request, settings, publisher, body)


def _first_key(body: bytes) -> bytes | None:
    """The first key of a JSON object body, without parsing it (b'"events"' marks a batch)."""
    head = body[:64].lstrip()
    if not head.startswith(b"{"):
        return None
    head = head[1:].lstrip()
    end = head.find(b'"', 1)
    return head[: end + 1] if head.startswith(b'"') and end > 0 else None


def _validate_whole(body: bytes, limit: int) -> tuple[list[GpuMetadataEvent], bool] | None:
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


async def _validate_each(
    request: Request, settings: Settings, publisher: Publisher, body: bytes
) -> JSONResponse:
    """Slow path: parse, check the shape, validate item by item for per-item answers."""
    try:
        # pydantic-core's parser bounds nesting itself; NaN and Infinity are not JSON
        data = from_json(body, allow_inf_nan=False)
    except ValueError as exc:
        return _problem(400, f"body is not valid JSON: {exc}")
    if not (isinstance(data, dict) and "events" in data):
        outcome = _validate(data, ())
        if isinstance(outcome, list):
            metrics.EVENTS_REJECTED.inc()
            return _problem(422, "the event is invalid", errors=outcome)
        return await _publish(request, settings, publisher, [outcome], batch=False)
    problem = _batch_shape_problem(data, settings.api_max_batch_events)
    if problem is not None:
        return problem
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
        return _problem(422, "no event in the batch is valid", results=results)
    return await _publish(
        request, settings, publisher, events, batch=True, results=results, positions=positions
    )


def _batch_shape_problem(data: dict[str, Any], limit: int) -> JSONResponse | None:
    """422 for a batch body that is not ``{"events": [1..limit items]}``."""
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
    items = data["events"]
    if not isinstance(items, list) or not items:
        return _problem(
            422,
            "'events' must be a non-empty list",
            errors=[{"field": "events", "message": "must be a non-empty list", "type": "list_type"}],
        )
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
    return None


async def _publish(
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
    records = [_record(event) for event in events]
    positions = positions if positions is not None else list(range(len(events)))
    results = results if results is not None else [{} for _ in events]
    metrics.EVENTS_RECEIVED.inc(len(records))
    request.state.event_ids = [r.event_id for r in records]
    try:
        reasons = await publisher.publish(records)
    except KafkaUnavailable as exc:
        metrics.PUBLISH_FAILURES.labels(reason="unavailable").inc(len(records))
        return _unavailable(settings, str(exc))
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
        return _unavailable(settings, detail)
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
