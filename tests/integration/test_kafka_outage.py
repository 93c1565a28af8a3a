"""While the broker is stopped the API answers 503 with Retry-After, never 202; then it recovers."""

from __future__ import annotations

import httpx

from ca4_events.schema import GpuMetadataEvent
from tests.integration.support import Stack, to_body, wait_status


def test_the_api_refuses_with_503_while_kafka_is_down_and_recovers(
    local_stack: Stack, session_events: list[GpuMetadataEvent]
) -> None:
    cfg = local_stack.cfg
    with httpx.Client(base_url=cfg.api_url, headers=local_stack.headers(), timeout=30) as api:
        # Kafka is started again when the block ends (and the API and worker are ready), always
        with local_stack.kafka_down():
            wait_status(f"{cfg.api_url}/readyz", 503, timeout=10)
            for event in session_events:
                resp = api.post("/metadata", json=to_body(event))
                assert resp.status_code == 503, (
                    f"an event Kafka cannot hold got {resp.status_code}: {resp.text}"
                )
                assert resp.headers["Retry-After"] == "5"
        resp = api.post("/metadata", json=to_body(session_events[-1]))
    assert resp.status_code == 202, resp.text
    local_stack.wait_for_documents(resp.json()["event_ids"], timeout=60)
