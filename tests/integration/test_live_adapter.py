"""The live adapter's network paths (API, Kafka bootstrap, Prometheus query), pointed at the local stack.

Only a real cluster exercises its Kubernetes paths (nodes, pods, the toolbox Job, pod
logs); everything it does over plain network connections is proven here, in CI.
"""

from __future__ import annotations

from typing import Any

import pytest

from ca4_events import names
from ca4_events.schema import GpuMetadataEvent
from tests.bdd.targets.live import LiveTarget
from tests.integration.support import Stack, to_body


@pytest.fixture
def live(local_stack: Stack, tmp_path: Any) -> LiveTarget:
    cfg = local_stack.cfg
    return LiveTarget(
        {
            "EDGE_API_URL": cfg.api_url,
            "CA4_API_TOKEN": local_stack.token,
            "CA4_KAFKA_BOOTSTRAP": cfg.kafka_bootstrap,
            "CA4_PROMETHEUS_URL": cfg.prometheus_url,
            "CA4_KAFKA_BROKERS": "1",
            "KUBECONFIG": str(tmp_path / "no-kubeconfig"),
            "CA4_VERIFY_TIMEOUT": "30",
        }
    )


def test_prerequisites_are_seen_and_the_cluster_is_reported_missing(live: LiveTarget) -> None:
    for need in ("api", "token", "kafka", "prometheus"):
        assert live.missing(need) is None, f"{need}: {live.missing(need)}"
    assert "no kubeconfig" in (live.missing("cluster") or "")


def test_the_api_path_posts_and_reads_readiness(
    live: LiveTarget, session_events: list[GpuMetadataEvent]
) -> None:
    ok, seen = live.component_ready("processor-api")
    assert ok, seen
    resp = live.post_metadata(to_body(session_events[0]))
    assert resp.status_code == 202, resp.text
    assert live.post_metadata(to_body(session_events[0]), token="").status_code == 401


def test_the_kafka_path_describes_topics_and_follows_the_consumer_group(
    live: LiveTarget, session_events: list[GpuMetadataEvent]
) -> None:
    info = live.describe_topic(names.TOPIC)
    assert info is not None and (info.partitions, info.replication) == live.expected_topic == (3, 1)
    before = live.end_offsets(names.TOPIC)
    event_id = live.post_metadata(to_body(session_events[-1])).json()["event_ids"][0]
    ref = live.find_record(
        names.TOPIC, before, lambda r: dict(r.headers).get("event_id") == event_id.encode()
    )
    live.eventually(
        "the worker committing past the record", lambda: live.committed_offset(ref.partition) > ref.offset
    )


def test_the_prometheus_path_queries_the_scraped_services(live: LiveTarget) -> None:
    up = live.eventually(
        "both jobs scraped", lambda: live.prometheus_value('sum(up{job=~"processor-api|metadata-worker"})')
    )
    assert up == 2.0, f"expected both targets up, got {up}"
