"""Fault scenarios on the real local stack: nothing acknowledged is lost, nothing is stored twice.

Every scenario streams real H200 snapshots through the API from a separate process,
injects one kind of failure on loopback, lets the pipeline settle, and records a row
(sent, acknowledged, stored, duplicates, lost, DLQ) plus the scenario's own controls.
"""

from __future__ import annotations

import json
import random
import signal
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from ca4_events import names
from local_stack import ferretdb, kafka, services
from tests.reliability.harness import Reliability, Row, StreamResult, sampled
from tests.tools.tcpproxy import TcpProxy

SEED = 20261128  # the random kill moments are reproducible


def run_id(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:6]}"


def assert_nothing_lost(row: Row) -> None:
    """The promise: every acknowledged event stored once, archived once."""
    assert row.acknowledged > 0, f"{row.scenario}: nothing was acknowledged; the scenario proved nothing"
    assert row.lost == 0, f"{row.scenario}: {row.lost} acknowledged events were not stored"
    assert row.duplicates == 0, f"{row.scenario}: {row.duplicates} duplicate copies (database or archive)"
    assert row.checks["stored_not_archived"] == 0, f"{row.scenario}: stored events missing from the archive"


def _restart_worker(rel: Reliability, sig: signal.Signals) -> float:
    """Signal the worker, wait for it to exit, start it again; seconds it took to exit."""
    worker = services.worker_process(rel.stack.cfg)
    started = time.monotonic()
    assert worker.signal(sig), "the worker was not running"
    worker.wait(timeout=30)
    exited = time.monotonic() - started
    services.start_worker(rel.stack.cfg)
    return exited


def test_worker_killed_at_random_moments_loses_nothing(reliability: Reliability) -> None:
    rng = random.Random(SEED)
    run, started = run_id("kill"), time.monotonic()
    stream = reliability.stream(run)
    duration = reliability.scale.events / reliability.scale.rate
    moments = sorted(rng.uniform(0.15, 0.85) * duration for _ in range(reliability.scale.kills))
    for moment in moments:
        time.sleep(max(0.0, started + moment - time.monotonic()))
        _restart_worker(reliability, signal.SIGKILL)
    result = stream.wait()
    row = reliability.row("worker SIGKILLed and restarted", run, result, started, kills=len(moments))
    assert_nothing_lost(row)


def test_kafka_stopped_during_ingest_gets_503_and_loses_nothing(reliability: Reliability) -> None:
    cfg = reliability.stack.cfg
    run, started = run_id("kafka"), time.monotonic()
    # requests already waiting for Kafka's ack hold their slot for up to the publish timeout;
    # enough concurrency keeps new requests arriving during the outage, which must get 503
    stream = reliability.stream(run, rate=reliability.scale.rate / 2, concurrency=16)
    time.sleep(1.0)
    kafka.stop(cfg)
    time.sleep(reliability.scale.outage_s)
    kafka.start(cfg)
    result = stream.wait()
    refused = [line for line in result.lines if line["status"] == 503]
    without_retry_after = [line for line in refused if not line.get("retry_after")]
    other = [line for line in result.lines if line["status"] not in (202, 207, 503)]
    row = reliability.row(
        "Kafka broker stopped during ingest",
        run,
        result,
        started,
        answered_503=sum(len(line["ids"]) for line in refused),
        missing_retry_after=len(without_retry_after),
    )
    assert refused, "the API should have refused events while Kafka was down"
    assert not without_retry_after, f"{len(without_retry_after)} answers of 503 without Retry-After"
    assert not other, f"unexpected answers while Kafka was down: {sorted({o['status'] for o in other})}"
    assert_nothing_lost(row)  # an acknowledged event missing from Kafka would show up here as lost


def test_database_stopped_worker_commits_nothing_and_resumes(reliability: Reliability) -> None:
    cfg = reliability.stack.cfg
    run, started = run_id("db"), time.monotonic()
    stream = reliability.stream(run, rate=reliability.scale.rate / 2)
    time.sleep(1.0)
    ferretdb.stop(cfg)
    time.sleep(1.0)  # let the worker notice and stop committing
    with sampled(reliability.committed) as offsets, sampled(reliability.worker_ready) as ready:
        time.sleep(reliability.scale.outage_s)
    ferretdb.start(cfg)
    result = stream.wait()
    moved = [p for p in offsets[0] if offsets[-1].get(p) != offsets[0][p]] if offsets else []
    row = reliability.row(
        "database stopped",
        run,
        result,
        started,
        commits_during_outage=len(moved),
        ready_during_outage=any(ready),
    )
    assert offsets, "no committed offsets sampled during the outage"
    assert not moved, f"offsets moved on partitions {moved} while the database was down"
    assert ready and not any(ready), "the worker reported ready while the database was down"
    assert_nothing_lost(row)


@pytest.fixture
def s3_proxy(reliability: Reliability) -> Iterator[TcpProxy]:
    """The worker talks to moto through a proxy the test can switch off (moto keeps its data)."""
    cfg = reliability.stack.cfg
    proxy = TcpProxy(cfg.s3_port)
    proxy.up()
    worker = services.worker_process(cfg)
    worker.signal(signal.SIGTERM)
    worker.wait(timeout=30)
    services.start_worker(cfg, {"S3_ENDPOINT_URL": f"http://127.0.0.1:{proxy.port}"})
    try:
        yield proxy
    finally:
        proxy.up()
        worker.signal(signal.SIGTERM)
        worker.wait(timeout=30)
        services.start_worker(cfg)
        proxy.down()


def test_s3_down_holds_commits_until_the_archive_is_written(
    reliability: Reliability, s3_proxy: TcpProxy
) -> None:
    run, started = run_id("s3"), time.monotonic()
    stream = reliability.stream(run, rate=reliability.scale.rate / 2)
    time.sleep(1.0)
    s3_proxy.down()
    time.sleep(3.0)  # a flush window (2 s locally) must fail before commits stop
    with sampled(reliability.committed) as offsets, sampled(reliability.worker_ready) as ready:
        time.sleep(reliability.scale.outage_s)
    s3_proxy.up()
    result = stream.wait()
    moved = [p for p in offsets[0] if offsets[-1].get(p) != offsets[0][p]] if offsets else []
    row = reliability.row(
        "S3 endpoint unreachable (archive on)",
        run,
        result,
        started,
        commits_during_outage=len(moved),
        ready_during_outage=any(ready),
    )
    assert offsets and not moved, f"offsets moved on partitions {moved} while S3 was down"
    assert ready and not any(ready), "the worker reported ready while S3 was down"
    assert_nothing_lost(row)


def test_poison_records_go_to_the_dlq_and_valid_ones_are_stored(reliability: Reliability) -> None:
    stack = reliability.stack
    run, started = run_id("poison"), time.monotonic()
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
            producer.send(names.TOPIC, key=f"{run}-poison-{i}".encode(), value=poisons[i % len(poisons)])
            batch = reliability.events(run, 5)
            resp = api.post("/metadata", json={"events": batch})
            lines.append({"ids": [e["event_id"] for e in batch], "status": resp.status_code,
                          "acked": resp.json().get("event_ids", [])})  # fmt: skip
    producer.flush()
    producer.close()
    result = StreamResult.from_lines(lines)
    row = reliability.row(
        "poison records between valid ones", run, result, started, poison_sent=reliability.scale.poison
    )
    dead = [r for r in reliability.dlq_records(run) if (r.key or b"").startswith(f"{run}-poison-".encode())]
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
    run, started = run_id("term"), time.monotonic()
    stream = reliability.stream(run)
    time.sleep(min(2.0, reliability.scale.events / reliability.scale.rate / 3))
    worker = services.worker_process(cfg)
    log_size = worker.log_file.stat().st_size
    signalled = time.monotonic()
    worker.signal(signal.SIGTERM)
    code = worker.wait(timeout=30)
    exit_s = time.monotonic() - signalled
    tail = worker.log_file.read_bytes()[log_size:].decode(errors="replace")
    services.start_worker(cfg)
    result = stream.wait()
    messages = [json.loads(line)["msg"] for line in tail.splitlines() if line.startswith("{")]
    after_signal = messages[messages.index("signal received, finishing the current batch") :]
    row = reliability.row(
        "worker SIGTERMed under load",
        run,
        result,
        started,
        exit_seconds=round(exit_s, 2),
        exit_code=code,
        final_commit="committed" in after_signal,
    )
    assert code == 0 and exit_s < 10, f"exit code {code} after {exit_s:.1f} s"
    assert "committed" in after_signal, f"no commit after the signal: {after_signal}"
    assert_nothing_lost(row)
