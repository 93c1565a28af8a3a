"""The producer client and sampler against the real local API, Kafka, worker and FerretDB.

The 503 is the API's own: the broker is stopped, so the API cannot get an ack and answers
503 with ``Retry-After``; the client's back-off (its ``sleep``) is where the broker comes
back, so the retry is deterministic, with no race against a timer.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from ca4_events import names
from ca4_events.schema import GpuMetadataEvent
from ca4_producer.client import Ca4Client, Ca4ClientError
from ca4_producer.collector import Collector
from ca4_producer.sampler import BatchSender, sample
from local_stack import kafka
from processor_api.config import Settings
from tests.integration.support import Stack, wait_status


def _no_secrets(name: str) -> None:
    return None


def test_a_503_then_success_stores_exactly_one_document(
    local_stack: Stack, session_events: list[GpuMetadataEvent]
) -> None:
    cfg = local_stack.cfg
    event, sentinel = session_events[1], session_events[2]
    session = event.source.session_id
    sleeps: list[float] = []
    restarted: list[bool] = []

    def back_off_while_kafka_returns(seconds: float) -> None:
        sleeps.append(seconds)
        if not restarted:
            kafka.start(cfg)
            restarted.append(True)
            wait_status(f"{cfg.api_url}/readyz", 200, timeout=60)

    assert kafka.stop(cfg), "kafka should have been running"
    try:
        wait_status(f"{cfg.api_url}/readyz", 503, timeout=15)
        with Ca4Client(
            cfg.api_url,
            local_stack.token,
            sleep=back_off_while_kafka_returns,
            max_attempts=4,
            timeout_s=60,
            secrets=_no_secrets,
        ) as client:
            delivery = client.post_event(event)
            # the same session's next event lands after it in the partition: once the sentinel
            # is stored, the worker has seen every record the retries may have produced
            follow_up = client.post_event(sentinel)
    finally:
        if not restarted:
            kafka.start(cfg)
    retry_after = float(Settings.model_fields["api_retry_after_seconds"].default)
    assert sleeps == [retry_after], f"one back-off of the API's Retry-After ({retry_after} s); slept {sleeps}"
    assert (delivery.status, delivery.attempts) == (202, 2), f"503 then 202; got {delivery}"
    (event_id,) = delivery.event_ids
    assert delivery.body["event_ids"] == [event_id], (
        "the retry carried the id assigned before the first attempt"
    )
    local_stack.wait_for_documents([event_id, *follow_up.event_ids], timeout=60)
    events = local_stack.db[names.COLLECTION_EVENTS]
    assert events.count_documents({"_id": event_id}) == 1
    stored = events.count_documents({"source.session_id": session})
    assert stored == 2, (
        f"ca4.gpu_metadata holds {stored} documents of session {session}; expected the event and the sentinel"
    )
    wait_status(f"{cfg.worker_url}/readyz", 200, timeout=30)


def test_a_wrong_token_is_refused_at_once_with_a_readable_message(
    local_stack: Stack, session_events: list[GpuMetadataEvent]
) -> None:
    sleeps: list[float] = []
    with (
        Ca4Client(
            local_stack.cfg.api_url, "not-the-token", sleep=sleeps.append, secrets=_no_secrets
        ) as client,
        pytest.raises(Ca4ClientError) as refused,
    ):
        client.post_event(session_events[0])
    assert refused.value.status == 401
    assert "rejected the token (401)" in str(refused.value) and "CA4_API_TOKEN" in str(refused.value)
    assert sleeps == [], "a 401 is never retried"


def test_an_invalid_event_names_the_field(local_stack: Stack, session_events: list[GpuMetadataEvent]) -> None:
    acc = session_events[-1].accelerators[0]
    # model_construct skips validation: this is what a buggy producer would send
    broken = session_events[-1].model_copy(
        update={"accelerators": [acc.model_construct(**{**acc.__dict__, "utilization_gpu_pct": 150.0})]}
    )
    with (
        Ca4Client(local_stack.cfg.api_url, local_stack.token, secrets=_no_secrets) as client,
        pytest.raises(Ca4ClientError) as refused,
    ):
        client.post_event(broken)
    assert refused.value.status == 422
    assert "accelerators[0].utilization_gpu_pct: Input should be less than or equal to 100" in str(
        refused.value
    )


def test_sampling_in_batches_stores_every_snapshot_once(local_stack: Stack, h200_dir: Path) -> None:
    session = f"it-sampler-{uuid.uuid4().hex[:8]}"
    collector = Collector.replay(h200_dir, session_id=session)
    with (
        Ca4Client(local_stack.cfg.api_url, local_stack.token, secrets=_no_secrets) as client,
        BatchSender(client, batch_size=4) as sender,
    ):
        stats = sample(collector, interval_s=0.05, duration_s=60, sink=sender.add, max_snapshots=10)
    assert stats.snapshots == 10, f"max_snapshots=10 bounds the run; took {stats.snapshots}"
    assert [len(d.event_ids) for d in sender.deliveries] == [4, 4, 2]
    assert {d.status for d in sender.deliveries} == {202} and not sender.refused
    assert sender.accepted_ids == stats.event_ids
    stored = local_stack.wait_for_documents(stats.event_ids, timeout=60)
    utils = [stored[i]["accelerators"][0]["utilization_gpu_pct"] for i in stats.event_ids]
    assert utils == [0, 99, 99, 99, 99, 100, 0, 99, 99, 99], (
        f"the replayed H200 series, in order; stored {utils}"
    )
    collect_ms = [stored[i]["workload"]["ca4_collector"]["collect_ms"] for i in stats.event_ids]
    assert all(0 <= ms < 1000 for ms in collect_ms), f"collection times recorded in the events: {collect_ms}"
    assert local_stack.db[names.COLLECTION_EVENTS].count_documents({"source.session_id": session}) == 10
