"""While the broker is stopped the API answers 503 with Retry-After, never 202; then it recovers."""

from __future__ import annotations

import httpx

from ca4_events.schema import GpuMetadataEvent
from local_stack import kafka
from tests.integration.support import Stack, to_body, wait_status


def test_the_api_refuses_with_503_while_kafka_is_down_and_recovers(
    local_stack: Stack, session_events: list[GpuMetadataEvent]
) -> None:
    cfg = local_stack.cfg
    api = httpx.Client(base_url=cfg.api_url, headers=local_stack.headers(), timeout=30)
    assert kafka.stop(cfg), "kafka should have been running"
    try:
        wait_status(f"{cfg.api_url}/readyz", 503, timeout=10)
        statuses = []
        for event in session_events:
            resp = api.post("/metadata", json=to_body(event))
            statuses.append(resp.status_code)
            assert resp.status_code == 503, f"an event Kafka cannot hold got {resp.status_code}: {resp.text}"
            assert resp.headers["Retry-After"] == "5"
        assert statuses == [503] * len(session_events)
    finally:
        kafka.start(cfg)
    wait_status(f"{cfg.api_url}/readyz", 200, timeout=30)
    resp = api.post("/metadata", json=to_body(session_events[-1]))
    assert resp.status_code == 202, resp.text
    local_stack.wait_for_documents(resp.json()["event_ids"], timeout=60)
    wait_status(f"{cfg.worker_url}/readyz", 200, timeout=30)
    api.close()
