"""The live topology's Kafka, locally: three KRaft nodes (combined broker+controller, like the
cluster's StatefulSet with 3 replicas: replication 3, ``min.insync.replicas=2``), failing under load.

The stack here is a second one (``CA4_LOCAL_KAFKA_NODES=3``), on its own ports, with the same
API, worker, database and S3 as the session's; its rows join the same report.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kafka import KafkaAdminClient

from ca4_events import names
from local_stack import kafka
from local_stack.config import StackConfig
from tests.integration.support import eventually, header, topic_records
from tests.reliability.harness import Reliability, StreamResult, sampled
from tests.reliability.test_faults import assert_nothing_lost
from tests.stack_fixtures import running

RECOVERY_S = 90.0  # a restarted node back in the quorum and the ISR, bounded


@pytest.fixture(scope="module")
def cluster(reliability: Reliability, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reliability]:
    """A three-node local stack and a harness on it that writes into the session's report."""
    cfg = StackConfig.ephemeral(tmp_path_factory.mktemp("ca4-kafka-3"), kafka_nodes=3)
    with running(cfg) as three:
        harness = Reliability(three, reliability.scale, tmp_path_factory.mktemp("cluster"))
        harness.rows = reliability.rows
        yield harness


def kill(cfg: StackConfig, node: int) -> None:
    """SIGKILL one Kafka node (a crash: no controlled shutdown, no leadership handed over)."""
    proc = kafka.node_process(cfg, node)
    pid = proc.pid()
    assert pid is not None, f"{kafka.node_name(node)} is not running"
    os.kill(pid, signal.SIGKILL)
    eventually(f"{kafka.node_name(node)} gone", lambda: proc.pid() is None, 10)


def leaders(cfg: StackConfig) -> dict[int, int]:
    """Partition of gpu-metadata -> the node leading it."""
    admin = KafkaAdminClient(bootstrap_servers=cfg.kafka_bootstrap, request_timeout_ms=10_000)
    try:
        (topic,) = admin.describe_topics([names.TOPIC])
        # kafka-python 3 answers with the MetadataResponse's own field names
        return {p["partition_index"]: p["leader_id"] for p in topic["partitions"]}
    finally:
        admin.close()


def wall_sent(line: dict[str, Any]) -> float:
    """When the load generator sent the request, on the wall clock."""
    return float(line["wall_done"]) - (float(line["t_done"]) - float(line["t_sent"]))


def acknowledged_between(result: StreamResult, start: float, end: float) -> list[dict[str, Any]]:
    """Requests sent at or after ``start`` and answered before ``end`` that something acknowledged."""
    return [
        line
        for line in result.lines
        if line.get("acked") and wall_sent(line) >= start and line["wall_done"] < end
    ]


def test_one_broker_killed_under_load_keeps_the_api_answering(cluster: Reliability) -> None:
    cfg = cluster.stack.cfg
    run, stream = cluster.under_load("broker-kill", concurrency=8)
    victim = 2
    kill(cfg, victim)
    time.sleep(cluster.scale.outage_s)
    kafka.start_node(cfg, victim)
    result = stream.wait()
    answers = [line["status"] for line in result.lines]
    refused = [line for line in result.lines if line["status"] != 202]
    row = cluster.row(
        "one of three brokers SIGKILLed under load, then restarted",
        run,
        result,
        requests=len(answers),
        not_202=len(refused),
        missing_retry_after=sum(
            1 for line in refused if line["status"] == 503 and not line.get("retry_after")
        ),
    )
    assert_nothing_lost(row)
    assert row.checks["missing_retry_after"] == 0, "every 503 must carry Retry-After"
    # acks=all stays satisfiable with two of three in sync; only requests caught on a partition
    # whose leader died wait for the new leader (the controller notices within its session timeout)
    assert len(refused) <= max(2, len(answers) // 10), (
        f"{len(refused)} of {len(answers)} requests were not answered 202 with one broker of three down: "
        f"{sorted({str(line['status']) for line in refused})}"
    )


@pytest.mark.full_scale
def test_the_partition_leaders_broker_killed_while_the_worker_consumes(cluster: Reliability) -> None:
    cfg = cluster.stack.cfg
    run, stream = cluster.under_load("leader-kill", concurrency=8)
    led = leaders(cfg)
    victim = max(set(led.values()), key=list(led.values()).count)  # the node leading most partitions
    with sampled(cluster.committed) as offsets:
        kill(cfg, victim)
        time.sleep(cluster.scale.outage_s)
    kafka.start_node(cfg, victim)
    result = stream.wait()
    row = cluster.row(
        f"the leader of {list(led.values()).count(victim)} of {len(led)} partitions SIGKILLed while consumed",
        run,
        result,
        victim=kafka.node_name(victim),
        commit_samples=len(offsets),
    )
    assert_nothing_lost(row)
    # no offset committed past what is stored: every record of the run below the final
    # committed offset of its partition is in the database
    committed = cluster.committed()
    records = topic_records(
        cfg.kafka_bootstrap, names.TOPIC, match=lambda rec: run.id.encode() in (rec.value or b"")
    )
    below = [rec for rec in records if rec.offset < committed.get(rec.partition, 0)]
    stored = {
        doc["_id"]
        for doc in cluster.stack.db[names.COLLECTION_EVENTS].find({"source.tags.run": run.id}, {"_id": 1})
    }
    unstored = [
        rec.offset for rec in below if (header(rec, names.HEADER_EVENT_ID) or b"").decode() not in stored
    ]
    assert below, "no record of the run lies below the committed offsets: the scenario proved nothing"
    assert not unstored, f"offsets committed past records not stored: {unstored[:10]}"


@pytest.mark.full_scale
def test_two_of_three_brokers_down_is_503_never_an_unreplicated_202(cluster: Reliability) -> None:
    cfg = cluster.stack.cfg
    run, stream = cluster.under_load("two-down", share=0.25, concurrency=16)
    killed_at = time.time()
    kill(cfg, 2)
    kill(cfg, 3)
    time.sleep(max(cluster.scale.outage_s, 12.0))  # longer than the publish timeout: answers must come
    restarted_at = time.time()
    kafka.start_node(cfg, 2)
    result = stream.wait()
    refused = [line for line in result.lines if line["status"] == 503]
    during = [
        line for line in result.lines if killed_at <= wall_sent(line) and line["wall_done"] < restarted_at
    ]
    acked_during = acknowledged_between(result, killed_at, restarted_at)
    late = [line for line in result.lines if line.get("acked") and line["wall_done"] >= restarted_at]
    row = cluster.row(
        "two of three brokers SIGKILLed, then one restarted",
        run,
        result,
        answered_503=sum(len(line["ids"]) for line in refused),
        missing_retry_after=sum(1 for line in refused if not line.get("retry_after")),
        acknowledged_while_two_down=len(acked_during),
        acknowledged_after_restart=len(late),
    )
    kafka.start_node(cfg, 3)  # the next scenario starts from three nodes again
    assert during, "no request was both sent and answered while two brokers were down"
    assert not acked_during, (
        f"{len(acked_during)} requests acknowledged with two of three brokers down (min.insync.replicas=2)"
    )
    assert refused and row.checks["missing_retry_after"] == 0, "refusals must be 503 with Retry-After"
    assert late, "nothing was acknowledged after a broker returned: the API did not recover"
    assert_nothing_lost(row)
