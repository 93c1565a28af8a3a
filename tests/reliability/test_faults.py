"""Fault scenarios on the real local stack: nothing acknowledged is lost, nothing is stored twice.

Every scenario streams real H200 snapshots through the API from a separate process,
injects one kind of failure on loopback, lets the pipeline settle, and records a row
(sent, acknowledged, stored, duplicates, lost, DLQ) plus the scenario's own controls.
"""

from __future__ import annotations

import contextlib
import json
import random
import signal
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager

import httpx
import pytest

from ca4_events import names
from local_stack import pipeline
from tests.integration.support import component_down, eventually, stopped
from tests.reliability.harness import (
    SETTLE_TIMEOUT_S,
    Reliability,
    Row,
    StreamResult,
    moved,
    sampled,
    second_worker,
    worker_through_proxy,
)
from tests.tools.tcpproxy import TcpProxy

SEED = 20261128  # the random kill moments are reproducible
NOTICE_S = 30.0  # how long the worker may take to see that a sink is down (and say so on /readyz)


def assert_nothing_lost(row: Row) -> None:
    """The promise: every acknowledged event stored once, archived once."""
    assert row.acknowledged > 0, f"{row.scenario}: nothing was acknowledged; the scenario proved nothing"
    assert row.checks["pipeline_quiet"], (
        f"{row.scenario}: the worker had not committed every record {SETTLE_TIMEOUT_S:.0f} s after "
        "the stream; the figures below were taken while it was still working"
    )
    assert row.lost == 0, f"{row.scenario}: {row.lost} acknowledged events were not stored"
    assert row.duplicates == 0, (
        f"{row.scenario}: {row.duplicates} duplicate copies (one event under two ids in the database, "
        "or in two archive objects)"
    )
    assert row.checks["stored_not_archived"] == 0, f"{row.scenario}: stored events missing from the archive"


def test_worker_killed_at_random_moments_loses_nothing(reliability: Reliability) -> None:
    cfg = reliability.stack.cfg
    rng = random.Random(SEED)
    run = reliability.begin("kill")
    stream = reliability.stream(run)
    duration = reliability.scale.events / reliability.scale.rate
    moments = sorted(rng.uniform(0.15, 0.85) * duration for _ in range(reliability.scale.kills))
    for moment in moments:
        time.sleep(max(0.0, run.started + moment - time.monotonic()))
        with stopped(cfg, "worker", signal.SIGKILL):
            pass  # started again at once, as a Deployment would
    result = stream.wait()
    row = reliability.row("worker SIGKILLed and restarted", run, result, kills=len(moments))
    assert_nothing_lost(row)
    if reliability.scale.name == "full":
        # with the archive on, commits wait for the archive flush: a kill under load leaves
        # stored but uncommitted records, which the restarted worker must deliver again
        assert row.checks["replayed_absorbed"] > 0, (
            f"{len(moments)} kills under load replayed nothing: the scenario did not exercise replay"
        )


def test_kafka_stopped_during_ingest_gets_503_and_loses_nothing(reliability: Reliability) -> None:
    cfg = reliability.stack.cfg
    # requests already waiting for Kafka's ack hold their slot for up to the publish timeout;
    # enough concurrency keeps new requests arriving during the outage, which must get 503
    run, stream = reliability.under_load("kafka", concurrency=16)
    with component_down(cfg, "kafka"):
        time.sleep(reliability.scale.outage_s)
    result = stream.wait()
    refused = [line for line in result.lines if line["status"] == 503]
    without_retry_after = [line for line in refused if not line.get("retry_after")]
    other = [line for line in result.lines if line["status"] not in (202, 207, 503)]
    row = reliability.row(
        "Kafka broker stopped during ingest",
        run,
        result,
        answered_503=sum(len(line["ids"]) for line in refused),
        missing_retry_after=len(without_retry_after),
    )
    assert refused, "the API should have refused events while Kafka was down"
    assert not without_retry_after, f"{len(without_retry_after)} answers of 503 without Retry-After"
    assert not other, f"unexpected answers while Kafka was down: {sorted({o['status'] for o in other})}"
    assert_nothing_lost(row)  # an acknowledged event missing from Kafka would show up here as lost


def assert_held_through(
    reliability: Reliability, name: str, scenario: str, sink: str, outage: AbstractContextManager[object]
) -> None:
    """A sink down under a half-rate stream: once the worker says it is not ready, for the
    outage's length no offset may move and /readyz must stay not ready; then nothing is lost."""
    run, stream = reliability.under_load(name)
    with outage:
        # the worker notices at its next write, ping or flush (a timeout later)
        eventually("the worker reporting not ready", lambda: not reliability.worker_ready(), NOTICE_S)
        with sampled(reliability.committed) as offsets, sampled(reliability.worker_ready) as ready:
            time.sleep(reliability.scale.outage_s)
    result = stream.wait()
    row = reliability.row(
        scenario, run, result, commits_during_outage=len(moved(offsets)), ready_during_outage=any(ready)
    )
    assert offsets, f"no committed offsets sampled while {sink} was down"
    assert not moved(offsets), f"offsets moved on partitions {moved(offsets)} while {sink} was down"
    assert ready and not any(ready), f"the worker reported ready while {sink} was down"
    assert_nothing_lost(row)


def test_database_stopped_worker_commits_nothing_and_resumes(reliability: Reliability) -> None:
    outage = component_down(reliability.stack.cfg, "ferretdb")
    assert_held_through(reliability, "db", "database stopped", "the database", outage)


def test_a_second_worker_joining_and_leaving_under_load_loses_nothing(reliability: Reliability) -> None:
    """The Deployment runs two workers: a rollout revokes partitions from a worker that holds
    stored but not yet archived batches. It archives and commits them without blocking the
    group's IO thread (kafka-python 3 refuses that), and neither worker dies."""
    cfg = reliability.stack.cfg
    first = pipeline.worker_process(cfg)
    pid = first.pid()
    run = reliability.begin("rollout")
    stream = reliability.stream(run)
    time.sleep(0.5)
    with second_worker(reliability.stack) as second:
        time.sleep(2.0)  # the second worker consumes its share
        second_pid = second.pid()
        second_log = second.log_file
    result = stream.wait()
    logs = first.log_file.read_bytes()[run.worker_log :] + second_log.read_bytes()
    failed = [line for line in logs.splitlines() if b"rebalance listener" in line and b"failed" in line]
    row = reliability.row(
        "a second worker joins and leaves under load",
        run,
        result,
        first_worker_restarted=first.pid() != pid,
        listener_errors=len(failed),
    )
    assert second_pid is not None, "the second worker was not running while the stream went on"
    assert first.pid() == pid, "the first worker died at a rebalance"
    assert not failed, f"the rebalance listener failed: {failed[0]}"
    assert_nothing_lost(row)


@pytest.fixture
def s3_proxy(reliability: Reliability) -> Iterator[TcpProxy]:
    """The worker talks to moto through a proxy the test can switch off (moto keeps its data)."""
    with worker_through_proxy(reliability.stack, "s3") as proxy:
        yield proxy


@contextlib.contextmanager
def unreachable(proxy: TcpProxy) -> Iterator[None]:
    """The proxy refuses connections while the block runs."""
    proxy.down()
    try:
        yield
    finally:
        proxy.up()


def test_s3_down_holds_commits_until_the_archive_is_written(
    reliability: Reliability, s3_proxy: TcpProxy
) -> None:
    # a flush window (2 s locally) must fail, and its write time out, before commits stop
    outage = unreachable(s3_proxy)
    assert_held_through(reliability, "s3", "S3 endpoint unreachable (archive on)", "S3", outage)


def test_poison_records_go_to_the_dlq_and_valid_ones_are_stored(reliability: Reliability) -> None:
    stack = reliability.stack
    run = reliability.begin("poison")
    poisons = [
        b"not json at all",
        b"[1, 2, 3]",
        b'{"collected_at": "yesterday"}',
        b"\xff\xfe\x00binary",
        b"[" * 5000,
        json.dumps({"event_id": str(uuid.uuid4()), "collected_at": 0, "source": {}}).encode(),
    ]
    producer = stack.producer()
    lines = []
    with httpx.Client(base_url=stack.cfg.api_url, headers=stack.headers(), timeout=30) as api:
        for i in range(reliability.scale.poison):
            producer.send(names.TOPIC, key=f"{run.id}-poison-{i}".encode(), value=poisons[i % len(poisons)])
            batch = reliability.events(run, 5, start=5 * i)
            resp = api.post("/metadata", json={"events": batch})
            lines.append({"ids": [e["event_id"] for e in batch], "status": resp.status_code,
                          "acked": resp.json().get("event_ids", [])})  # fmt: skip
    producer.flush()
    producer.close()
    result = StreamResult.from_lines(lines)
    row = reliability.row(
        "poison records between valid ones", run, result, poison_sent=reliability.scale.poison
    )
    dead = [r for r in row.dead_letters if (r.key or b"").startswith(f"{run.id}-poison-".encode())]
    assert len(dead) == reliability.scale.poison, (
        f"expected {reliability.scale.poison} dead letters, found {len(dead)}"
    )
    for record in dead:
        headers = dict(record.headers)
        assert headers.get(names.HEADER_DLQ_ERROR) and headers.get(names.HEADER_DLQ_ERROR_TYPE), (
            f"dead letter {record.key!r} does not say why"
        )
    assert row.dlq == reliability.scale.poison
    assert_nothing_lost(row)


def test_sigterm_under_load_exits_cleanly_with_a_final_commit(reliability: Reliability) -> None:
    cfg = reliability.stack.cfg
    run = reliability.begin("term")
    stream = reliability.stream(run)
    time.sleep(min(2.0, reliability.scale.events / reliability.scale.rate / 3))
    with stopped(cfg, "worker", signal.SIGTERM) as stop:
        pass  # started again at once
    result = stream.wait()
    messages = stop.messages()
    signalled = "signal received, finishing the current batch"
    assert signalled in messages, f"the worker did not log {signalled!r} after SIGTERM: {messages}"
    after_signal = messages[messages.index(signalled) :]
    row = reliability.row(
        "worker SIGTERMed under load",
        run,
        result,
        exit_seconds=round(stop.seconds, 2),
        exit_code=stop.code,
        final_commit="committed" in after_signal,
    )
    assert stop.code == 0 and stop.seconds < 10, f"exit code {stop.code} after {stop.seconds:.1f} s"
    assert "committed" in after_signal, f"no commit after the signal: {after_signal}"
    assert_nothing_lost(row)
