"""App factory: wires settings, token check, publisher, middleware and the OpenAPI document."""

from __future__ import annotations

import gc
import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ca4_events import jsonlog
from ca4_events.schema import EventBatch, GpuMetadataEvent
from ca4_events.workload import with_workload_defs
from processor_api import metrics
from processor_api.auth import TokenVerifier
from processor_api.config import Settings
from processor_api.publishers import KafkaPublisher, Publisher
from processor_api.routes import router

log = logging.getLogger("processor_api.access")


class AccessLog:
    """Pure ASGI middleware: one JSON log line and the request metrics per HTTP request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status_code = 500

        async def capture(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            # the route template, never the raw path, keeps label cardinality bounded
            template = getattr(route, "path", "unmatched")
            method = scope["method"]
            metrics.REQUESTS.labels(method, template, str(status_code)).inc()
            metrics.REQUEST_SECONDS.labels(method, template).observe(elapsed)
            if template not in ("/metrics", "/healthz", "/readyz"):
                client = scope.get("client")
                log.info(
                    "request",
                    extra={
                        "method": method,
                        "path": scope["path"],
                        "status": status_code,
                        "duration_ms": round(elapsed * 1000, 2),
                        "event_ids": scope.get("state", {}).get("event_ids", []),
                        "client": client[0] if client else None,
                    },
                )


def _openapi(app: FastAPI, max_batch: int) -> dict[str, Any]:
    """The generated document, plus the event schema as POST /metadata's request body."""
    if app.openapi_schema:
        return app.openapi_schema
    doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    event = GpuMetadataEvent.model_json_schema(ref_template="#/components/schemas/{model}")
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.update(event.pop("$defs", {}))
    schemas["GpuMetadataEvent"] = with_workload_defs(event, schemas, "#/components/schemas/")
    batch = EventBatch.model_json_schema(ref_template="#/components/schemas/{model}")
    batch.pop("$defs", None)  # the same definitions the event brought
    batch["properties"]["events"]["maxItems"] = max_batch
    schemas["EventBatch"] = batch
    components["securitySchemes"] = {"bearerAuth": {"type": "http", "scheme": "bearer"}}
    post = doc["paths"]["/metadata"]["post"]
    post["security"] = [{"bearerAuth": []}]
    post["requestBody"] = {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {"$ref": "#/components/schemas/GpuMetadataEvent"},
                        {"$ref": "#/components/schemas/EventBatch"},
                    ]
                }
            }
        },
    }
    app.openapi_schema = doc
    return doc


# a batch request of 100 events holds about 5 000 containers until it answers, several
# requests at once more; reference counting frees them, a collection would only walk them
GC_FIRST_THRESHOLD = 20_000


def settle_the_heap() -> None:
    """Before serving: what starting allocated (modules, schemas, routes: ~80 000 objects)
    lives as long as the process, so it is frozen out of every later collection, and the
    first generation's threshold is raised above what requests hold. In process, on batches
    of 100, the collector went from 15 % of the API's CPU to under 1 % (tests/bench/costs.py
    measures the handler with it)."""
    gc.collect()
    gc.freeze()
    _, second, third = gc.get_threshold()
    gc.set_threshold(GC_FIRST_THRESHOLD, second, third)


def _publisher_for(settings: Settings) -> Publisher:
    if settings.kafka_client == "confluent-kafka":
        from processor_api.publishers.confluent import ConfluentPublisher  # noqa: PLC0415 - librdkafka loads only when chosen

        return ConfluentPublisher(settings)
    return KafkaPublisher(settings)


def from_environment() -> FastAPI:
    """The app of one worker process (``API_WORKERS`` > 1): settings from the environment.

    The supervising process has read and checked the same settings before it started any.
    """
    settings = Settings()
    jsonlog.configure("processor-api", settings.log_level)
    return create_app(settings)


def create_app(settings: Settings, publisher: Publisher | None = None) -> FastAPI:
    """Build the API; pass ``publisher`` to replace Kafka (unit tests)."""
    pub: Publisher = publisher if publisher is not None else _publisher_for(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await pub.start()
        settle_the_heap()
        log.info("processor api started", extra={"topic": settings.kafka_topic})
        try:
            yield
        finally:
            await pub.stop()
            metrics.process_exited(os.getpid())
            log.info("processor api stopped")

    app = FastAPI(
        title="CA4 Processor API",
        version="1",
        description=(
            "Accepts accelerator snapshots (schema version 1) and publishes them to Kafka. "
            "Answers 202 only after the broker acknowledged."
        ),
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.publisher = pub
    app.state.verifier = TokenVerifier(settings.token_digests())
    app.include_router(router)
    app.add_middleware(AccessLog)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # never a stack trace in a response; the log has it
        log.exception("unhandled error", extra={"path": request.url.path})
        return JSONResponse(status_code=500, content={"detail": "internal error"})

    app.openapi = lambda: _openapi(app, settings.api_max_batch_events)  # type: ignore[method-assign]
    return app
