"""Faults in the network, not only dead processes: a slow database, database connections cut
after a bulk insert landed, and the worker partitioned from Kafka while the API keeps accepting.

Injected on loopback: a proxy in front of the database for the worker (``tests/tools/tcpproxy.py``:
latency, answers cut), and an iptables rule that drops the packets sent to the worker's own
Kafka listener (``tests/tools/netfault.py``), so the API's publishing is untouched.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.integration.support import eventually
from tests.reliability.harness import Reliability, moved, sampled, worker_through_proxy
from tests.reliability.test_faults import assert_nothing_lost
from tests.tools.netfault import partitioned
from tests.tools.tcpproxy import TcpProxy

DB_LATENCY_S = 2.0
PARTITION_S = 30.0
CUT_MIN_BYTES = 16 * 1024  # a bulk insert of a batch, not a ping or a device upsert
CUTS = 3


@pytest.fixture
def db_proxy(reliability: Reliability) -> Iterator[TcpProxy]:
    """The worker talks to the database through a proxy the test can slow down or cut."""
    with worker_through_proxy(reliability.stack, "database") as proxy:
        yield proxy


@pytest.mark.full_scale
def test_two_seconds_of_database_latency_loses_and_duplicates_nothing(
    reliability: Reliability, db_proxy: TcpProxy
) -> None:
    run, stream = reliability.under_load("db-latency")
    db_proxy.latency_s = DB_LATENCY_S
    with sampled(reliability.worker_ready) as ready:
        time.sleep(reliability.scale.outage_s)
    db_proxy.latency_s = 0.0
    result = stream.wait()
    row = reliability.row(
        f"{DB_LATENCY_S:.0f} s of added latency to the database",
        run,
        result,
        ready_samples=len(ready),
        ready_during_latency=sum(ready),
    )
    assert_nothing_lost(row)
    # slow is not down: every answer still comes within the client's timeouts, so the worker
    # keeps reporting ready (a not-ready worker would be taken out of service for nothing)
    assert ready and all(ready), f"the worker reported not ready {ready.count(False)} of {len(ready)} times"


def test_database_connections_cut_after_the_insert_are_retried_without_duplicates(
    reliability: Reliability, db_proxy: TcpProxy
) -> None:
    run, stream = reliability.under_load("db-cut")
    db_proxy.cut_replies_to_writes(CUT_MIN_BYTES, times=CUTS)
    eventually(f"{CUTS} bulk inserts answered by a reset", lambda: db_proxy.cuts >= CUTS, 60)
    result = stream.wait()
    row = reliability.row(
        f"database connection reset after a bulk insert reached it ({CUTS} times)",
        run,
        result,
        answers_cut=db_proxy.cuts,
    )
    assert_nothing_lost(row)
    # the retried batches met what had landed: duplicate-key no-ops, not errors, not copies
    assert row.checks["replayed_absorbed"] > 0, "no retried write met a document already stored"


@pytest.mark.full_scale
def test_the_worker_partitioned_from_kafka_for_30_s_resumes_from_its_commits(
    reliability: Reliability,
) -> None:
    cfg = reliability.stack.cfg
    run, stream = reliability.under_load("kafka-partition")
    worker_ports = [ports.worker for ports in cfg.kafka_node_ports()]
    with partitioned(worker_ports, "worker-kafka"), sampled(reliability.committed) as offsets:
        time.sleep(PARTITION_S)
    result = stream.wait()
    refused = [line for line in result.lines if line["status"] != 202]
    row = reliability.row(
        f"the worker partitioned from Kafka for {PARTITION_S:.0f} s (the API keeps accepting)",
        run,
        result,
        api_not_202=len(refused),
        commits_during_partition=len(moved(offsets)),
    )
    assert not refused, f"the API refused {len(refused)} requests although its own path to Kafka was intact"
    assert offsets, "no committed offsets sampled during the partition"
    assert not moved(offsets), (
        f"offsets of partitions {moved(offsets)} moved while the worker was cut off Kafka"
    )
    assert_nothing_lost(row)
