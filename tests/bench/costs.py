"""Where the API's time per event goes: each part of POST /metadata timed on its own.

Its own process (``python -m tests.bench.costs``), started by the benchmark in the same
run and on the same machine as the load measurements, so that the parts can be added up
and set beside the API process's CPU time per event under load. Every figure is CPU
microseconds per event (``time.process_time``: this process, all its threads), the
median of several rounds over a batch of 100 real H200 events:

- ``parse_validate``: the batch body parsed and validated from its bytes (``validate_whole``);
- ``id_assignment``: what ``to_record`` adds when an event came without an id (UUIDv7 and
  a copy of the event); the load generator sends ids, so the API does not pay it there;
- ``serialise``: the Kafka value, as ``to_record`` makes it (the model's serializer, nulls left out);
- ``record_rest``: the rest of ``to_record`` (key, headers);
- ``handler_glue``: the app called through ASGI with a publisher that acknowledges at
  once (auth, routing, the answer, the log line, metrics), less the parts above and less
  the empty FastAPI app called the same way;
- ``producer``: the API's own publisher on the real broker (a bench topic), publishing
  100 records and waiting for their acks: the produce calls, librdkafka's threads and the
  delivery reports; ``ack_wait_ms`` is the wall time of one such publish.

HTTP framing (uvicorn, httptools) and FastAPI's per-request work are measured by the
benchmark itself, as the empty handler's CPU over HTTP with the same bodies.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import logging
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from ca4_events import jsonlog
from ca4_events.ids import uuid7
from ca4_events.schema import GpuMetadataEvent
from processor_api.app import create_app, settle_the_heap
from processor_api.body import validate_whole
from processor_api.config import Settings
from processor_api.publish import to_record
from processor_api.publishers import OutRecord
from processor_api.publishers.confluent import ConfluentPublisher
from tests.bench import empty_app
from tests.tools import loadgen

BATCH = 100
SERIALIZER = GpuMetadataEvent.__pydantic_serializer__  # what to_record serializes with
TOKEN = "bench-costs-token-0123456789"


async def cpu_us_per_event(
    fn: Callable[[], object] | Callable[[], Awaitable[object]], rounds: int = 7, repeat: int = 20
) -> float:
    """Median over ``rounds`` of the CPU time of ``repeat`` calls of ``fn`` (awaited when it is a
    coroutine function), per event of a batch; one call first, outside the timer."""

    async def call() -> None:
        result = fn()
        if inspect.isawaitable(result):
            await result

    await call()  # warm caches and lazily built validators
    samples = []
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(repeat):
            await call()
        samples.append((time.process_time() - started) / repeat / BATCH * 1e6)
    return round(statistics.median(samples), 2)


def asgi_post(app: Any, body: bytes) -> Callable[[], Awaitable[int]]:
    """A coroutine function that POSTs ``body`` to ``app``'s /metadata through ASGI; the status."""
    headers = [
        (b"content-type", b"application/json"),
        (b"authorization", f"Bearer {TOKEN}".encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/metadata", "raw_path": b"/metadata", "query_string": b"",
        "root_path": "", "headers": headers, "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
    }  # fmt: skip

    async def post() -> int:
        messages = [{"type": "http.request", "body": body, "more_body": False}]
        status = 0

        async def receive() -> dict[str, Any]:
            return messages.pop() if messages else {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await app(dict(scope), receive, send)
        return status

    return post


class AckAtOnce:
    """A publisher that acknowledges every record immediately: the handler without Kafka."""

    ready = True

    async def start(self) -> None:
        """Nothing to connect."""

    async def stop(self) -> None:
        """Nothing to flush."""

    async def publish(self, records: Sequence[OutRecord]) -> list[str | None]:
        """Every record acknowledged."""
        return [None] * len(records)


async def handler_costs(body: bytes, settings: Settings) -> dict[str, float]:
    """The whole handler without Kafka, and the empty app, both called through ASGI."""
    post = asgi_post(create_app(settings, AckAtOnce()), body)
    empty = asgi_post(empty_app.app, body)
    if await post() != 202 or await empty() != 202:
        raise RuntimeError("the in-process app did not answer 202 to a valid batch")
    return {
        "handler_in_process": await cpu_us_per_event(post),
        "empty_in_process": await cpu_us_per_event(empty),
    }


async def producer_costs(settings: Settings, records: list[OutRecord]) -> dict[str, float]:
    """The API's publisher on the real broker: CPU per event and the wall time of one publish."""
    publisher = ConfluentPublisher(settings)
    await publisher.start()
    try:
        if not publisher.ready:
            raise RuntimeError(f"no broker reachable at {settings.kafka_bootstrap_servers}")
        walls: list[float] = []

        async def publish() -> None:
            started = time.perf_counter()
            outcomes = await publisher.publish(records)
            walls.append(time.perf_counter() - started)
            if any(outcomes):
                raise RuntimeError(f"the bench topic refused records: {set(outcomes)}")

        cpu = await cpu_us_per_event(publish)
    finally:
        await publisher.stop()
    return {"producer": cpu, "ack_wait_ms": round(statistics.median(walls) * 1000, 2)}


def measure(bootstrap: str, topic: str) -> dict[str, float]:
    """Every part, in microseconds of CPU per event (``ack_wait_ms``: wall ms per batch)."""
    # the access log line is formatted and written as in the API, to /dev/null
    jsonlog.configure("processor-api")
    logging.getLogger().handlers[0].setStream(open(os.devnull, "w"))  # noqa: SIM115 - for the process's life
    events = loadgen.make_events("bench-costs", BATCH)
    settle_the_heap()  # the collector as the API runs it once started
    body = json.dumps({"events": events}).encode()
    valid = validate_whole(body, BATCH)
    if valid is None:
        raise RuntimeError("the load generator's batch did not validate")
    with_ids = valid[0]
    without_ids = [e.model_copy(update={"event_id": None}) for e in with_ids]
    settings = Settings(api_tokens=TOKEN, kafka_bootstrap_servers=bootstrap, kafka_topic=topic)  # type: ignore[arg-type]
    parts = {
        name: asyncio.run(cpu_us_per_event(fn))
        for name, fn in (
            ("parse_validate", lambda: validate_whole(body, BATCH)),
            # what to_record adds for an event without an id: one UUIDv7 and a copy of the event
            ("id_assignment", lambda: [e.model_copy(update={"event_id": uuid7()}) for e in without_ids]),
            ("serialise", lambda: [SERIALIZER.to_json(e, exclude_none=True) for e in with_ids]),
            ("to_record", lambda: [to_record(e) for e in with_ids]),
        )
    }
    parts["record_rest"] = round(max(0.0, parts.pop("to_record") - parts["serialise"]), 2)
    handler = asyncio.run(handler_costs(body, settings))
    inner = parts["parse_validate"] + parts["serialise"] + parts["record_rest"]
    parts["handler_glue"] = round(
        max(0.0, handler["handler_in_process"] - inner - handler["empty_in_process"]), 2
    )
    parts |= handler
    parts |= asyncio.run(producer_costs(settings, [to_record(e) for e in with_ids]))
    return parts


def main(argv: list[str] | None = None) -> int:
    """Entry point: one JSON object on stdout."""
    p = argparse.ArgumentParser(prog="python -m tests.bench.costs", description=__doc__.split("\n\n")[0])
    p.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers (the bench stack's)")
    p.add_argument("--topic", required=True, help="a topic no worker reads")
    args = p.parse_args(argv)
    json.dump(measure(args.bootstrap, args.topic), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
