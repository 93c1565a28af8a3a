"""HTTP routes: POST /metadata and the probes. Each route is a few steps; the steps live in
files named for them: ``body.py`` (reading, validation), ``publish.py`` (records, acks,
the answer), ``deps.py`` (settings, publisher, token), ``models.py`` (response bodies)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from processor_api import metrics
from processor_api.body import is_json, problem, read_body, validate_each, validate_whole
from processor_api.deps import PublisherDep, SettingsDep, require_token
from processor_api.models import Accepted, ProbeStatus, Problem
from processor_api.publish import publish

router = APIRouter()

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
    if not is_json(request.headers.get("content-type")):
        return problem(415, "Content-Type must be application/json")
    body = await read_body(request, settings.api_max_body_bytes)
    valid = validate_whole(body, settings.api_max_batch_events)
    if valid is not None:
        events, batch = valid
        return await publish(request, settings, publisher, events, batch=batch)
    checked = validate_each(body, settings.api_max_batch_events)
    if checked.rejected is not None:
        return checked.rejected
    return await publish(
        request,
        settings,
        publisher,
        checked.events,
        batch=checked.batch,
        results=checked.results,
        positions=checked.positions,
    )


@router.get(
    "/healthz",
    response_model=ProbeStatus,
    response_model_exclude_none=True,
    summary="Liveness: the process answers",
)
async def healthz() -> dict[str, str]:
    """Alive as long as the event loop answers."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=ProbeStatus,
    responses={503: {"model": ProbeStatus, "description": "Kafka is not reachable."}},
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
    return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
