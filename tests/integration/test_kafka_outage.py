"""While the broker is stopped the API answers 503 with Retry-After, never 202; then it recovers."""

from __future__ import annotations

import time

import httpx

from ca4_events.schema import GpuMetadataEvent
from local_stack import kafka
from tests.integration.support import Stack, to_body


def _wait_status(url: str, status: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = httpx.get(url, timeout=2).status_code
        except httpx.TransportError:
            last = None
        if last == status:
            return
        time.sleep(0.2)
    raise AssertionError(f"{url} answered {last}, expected {status} within {timeout:.0f} s")


def test_the_api_refuses_with_503_while_kafka_is_down_and_recovers(
    local_stack: Stack, session_events: list[GpuMetadataEvent]
) -> None:
    cfg = local_stack.cfg
    api = httpx.Client(base_url=cfg.api_url, headers=local_stack.headers(), timeout=30)
    assert kafka.stop(cfg), "kafka should have been running"
    try:
        _wait_status(f"{cfg.api_url}/readyz", 503, timeout=10)
        statuses = []
        for event in session_events:
            resp = api.post("/metadata", json=to_body(event))
            statuses.append(resp.status_code)
            assert resp.status_code == 503, f"an event Kafka cannot hold got {resp.status_code}: {resp.text}"
            assert resp.headers["Retry-After"] == "5"
        assert statuses == [503] * len(session_events)
    finally:
        kafka.start(cfg)
    _wait_status(f"{cfg.api_url}/readyz", 200, timeout=30)
    resp = api.post("/metadata", json=to_body(session_events[-1]))
    assert resp.status_code == 202, resp.text
    local_stack.wait_for_documents(resp.json()["event_ids"], timeout=60)
    _wait_status(f"{cfg.worker_url}/readyz", 200, timeout=30)
    api.close()
