"""The sampling loop (bounded, no catch-up bursts, timed) and batched delivery."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from ca4_events.schema import GpuMetadataEvent
from ca4_producer.client import Ca4Client
from ca4_producer.collector import Collector
from ca4_producer.sampler import BatchSender, SampleStats, sample
from tests.unit.producer.test_nvml import FakeClock

Handler = Callable[[httpx.Request], httpx.Response]


def _client(handler: Handler, sleeps: list[float] | None = None, attempts: int = 5) -> Ca4Client:
    return Ca4Client(
        "http://api.test",
        "unit-token",
        transport=httpx.MockTransport(handler),
        sleep=(sleeps if sleeps is not None else []).append,
        max_attempts=attempts,
        secrets=lambda name: None,
    )


def _timed(
    collector: Collector, clock: FakeClock, interval_s: float, duration_s: float, **more: Any
) -> SampleStats:
    """``sample`` on the fake clock, events dropped unless ``sink`` is given."""
    options: dict[str, Any] = {"sink": lambda e: None, **more}
    return sample(
        collector, interval_s=interval_s, duration_s=duration_s, clock=clock, sleep=clock.sleep, **options
    )


def _accept_all(seen: list[list[str]]) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        ids = [e["event_id"] for e in json.loads(request.content)["events"]]
        seen.append(ids)
        return httpx.Response(202, json={"status": "accepted", "accepted": len(ids), "event_ids": ids})

    return handler


def test_one_snapshot_per_interval_for_the_duration(h200_dir: Path) -> None:
    clock = FakeClock()
    events: list[GpuMetadataEvent] = []
    stats = _timed(Collector.replay(h200_dir), clock, 2.0, 10.0, sink=events.append)
    assert stats.snapshots == 6, "t = 0, 2, 4, 6, 8, 10"
    assert clock.sleeps == [2.0] * 5
    assert [e.workload["sample"] for e in events if e.workload] == [0, 1, 2, 3, 4, 5]
    assert len(set(stats.event_ids)) == 6 and all(e.event_id for e in events), "ids are fixed at collection"
    summary = stats.summary()
    assert summary["snapshots"] == 6 and summary["collect_ms_max"] >= summary["collect_ms_p50"] >= 0


def test_slow_snapshots_never_burst_and_the_duration_still_bounds_the_run(h200_dir: Path) -> None:
    clock = FakeClock()
    collector = Collector.replay(h200_dir)
    real = collector.snapshot

    def slow(workload: object = None) -> object:
        clock.now += 3.0  # each snapshot takes longer than the interval
        return real(workload)  # type: ignore[arg-type]

    collector.snapshot = slow  # type: ignore[method-assign,assignment]
    stats = _timed(collector, clock, 1.0, 5.0)
    assert clock.sleeps == [], "late snapshots start at once; nothing sleeps to catch up"
    assert stats.snapshots == 2, (
        f"started at t=0 and t=3; t=6 is past the 5 s duration; took {stats.snapshots}"
    )


def test_float_intervals_count_as_people_expect(h200_dir: Path) -> None:
    clock = FakeClock()
    stats = _timed(Collector.replay(h200_dir), clock, 0.05, 0.45)
    assert stats.snapshots == 10, f"0.45 s every 0.05 s is t = 0, 0.05, ... 0.45; took {stats.snapshots}"


def test_max_snapshots_bounds_a_long_run(h200_dir: Path) -> None:
    clock = FakeClock()
    stats = _timed(Collector.replay(h200_dir), clock, 1.0, 3600, max_snapshots=3)
    assert stats.snapshots == 3


def test_bad_intervals_are_refused(h200_dir: Path) -> None:
    with pytest.raises(ValueError, match="interval_s"):
        sample(Collector.replay(h200_dir), interval_s=0, duration_s=1, sink=lambda e: None)


def test_batches_of_n_and_the_rest_on_close(h200_events: list[GpuMetadataEvent]) -> None:
    seen: list[list[str]] = []
    with BatchSender(_client(_accept_all(seen)), batch_size=4) as sender:
        for event in h200_events + h200_events[:4]:
            sender.add(event.model_copy(update={"event_id": None}))
        assert [len(b) for b in seen] == [4, 4], "two full batches posted while adding"
    assert [len(b) for b in seen] == [4, 4, 2], "the last two on close"
    assert sender.accepted_ids == [i for b in seen for i in b]


def test_an_old_buffer_is_sent_before_it_is_full(h200_events: list[GpuMetadataEvent]) -> None:
    seen: list[list[str]] = []
    clock = FakeClock()
    sender = BatchSender(_client(_accept_all(seen)), batch_size=100, max_delay_s=5.0, clock=clock)
    sender.add(h200_events[0])
    clock.now = 6.0
    sender.add(h200_events[1])
    assert [len(b) for b in seen] == [2]


def test_a_partly_accepted_batch_resends_only_the_unacknowledged_with_the_same_ids(
    h200_events: list[GpuMetadataEvent],
) -> None:
    bodies: list[list[str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        ids = [e["event_id"] for e in json.loads(request.content)["events"]]
        bodies.append(ids)
        if len(bodies) == 1:  # Kafka acked items 0 and 2, not 1; item 3 is invalid
            results = [
                {"index": 0, "status": 202, "event_id": ids[0]},
                {"index": 1, "status": 503, "event_id": ids[1], "detail": "not acknowledged"},
                {"index": 2, "status": 202, "event_id": ids[2]},
                {
                    "index": 3,
                    "status": 422,
                    "errors": [{"field": "events[3].source", "message": "Field required"}],
                },
            ]
            return httpx.Response(
                207,
                json={"status": "partial", "accepted": 2, "event_ids": [ids[0], ids[2]], "results": results},
            )
        return httpx.Response(202, json={"status": "accepted", "accepted": len(ids), "event_ids": ids})

    sleeps: list[float] = []
    delivery = _client(handler, sleeps).post_batch(h200_events[:4])
    assert bodies[1] == [bodies[0][1]], f"only the unacknowledged event is resent, same id; sent {bodies}"
    assert delivery.status == 207 and delivery.attempts == 2 and len(sleeps) == 1
    assert [r["event_id"] for r in delivery.refused] == [bodies[0][3]]
    assert delivery.refused[0]["status"] == 422
    assert delivery.accepted_ids == bodies[0][:3]


def test_post_many_keeps_each_request_under_the_body_limit(h200_events: list[GpuMetadataEvent]) -> None:
    seen: list[list[str]] = []
    client = _client(_accept_all(seen))
    size = len(h200_events[0].model_dump_json(exclude_none=True))
    deliveries = client.post_many(h200_events, batch_size=500, max_batch_bytes=int(size * 2.5))
    assert [len(b) for b in seen] == [2, 2, 2], (
        f"about {size} B per event, 2.5 events per request; got {seen}"
    )
    assert sum(len(d.event_ids) for d in deliveries) == 6


def test_a_partial_success_is_kept_when_the_retries_then_fail(h200_events: list[GpuMetadataEvent]) -> None:
    bodies: list[list[str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        ids = [e["event_id"] for e in json.loads(request.content)["events"]]
        bodies.append(ids)
        if len(bodies) == 1:  # item 0 acked, item 1 not; then Kafka is gone for good
            results = [
                {"index": 0, "status": 202, "event_id": ids[0]},
                {"index": 1, "status": 503, "event_id": ids[1], "detail": "not acknowledged"},
            ]
            return httpx.Response(
                207,
                json={"status": "partial", "accepted": 1, "event_ids": [ids[0]], "results": results},
                headers={"Retry-After": "5"},
            )
        return httpx.Response(503, json={"detail": "Kafka unavailable"}, headers={"Retry-After": "2"})

    sleeps: list[float] = []
    delivery = _client(handler, sleeps, attempts=3).post_batch(h200_events[:2])
    assert delivery.accepted_ids == [bodies[0][0]], "the acknowledged event stays acknowledged"
    assert [(r["event_id"], r["status"]) for r in delivery.refused] == [(bodies[0][1], 503)]
    assert sleeps == [5.0, 2.0], "the 207's Retry-After is honoured like a 503's"
    assert bodies[1:] == [[bodies[0][1]], [bodies[0][1]]]


def test_an_unreachable_api_keeps_the_batch_and_reports_it_at_close(
    h200_events: list[GpuMetadataEvent],
) -> None:
    up = False
    seen: list[list[str]] = []
    accept = _accept_all(seen)

    def handler(request: httpx.Request) -> httpx.Response:
        if up:
            return accept(request)
        raise httpx.ConnectError("connection refused", request=request)

    clock = FakeClock()
    sender = BatchSender(_client(handler, attempts=2), batch_size=2, max_delay_s=10.0, clock=clock)
    for event in h200_events[:2]:
        sender.add(event)
    assert sender.pending == 2 and sender.deliveries == [], "nothing is dropped while the API is down"
    sender.add(h200_events[2])  # within the hold: no new attempt
    assert sender.pending == 3 and seen == []
    up = True
    clock.now += 10.0
    sender.add(h200_events[3])
    assert [len(b) for b in seen] == [2, 2] and sender.pending == 0
    ids = [e for b in seen for e in b]
    assert sender.accepted_ids == ids and len(set(ids)) == 4

    up = False
    sender.add(h200_events[4])
    sender.close()
    assert [r["status"] for r in sender.refused] == [503]
    assert sender.refused[0]["event_id"] not in ids and sender.pending == 0


def test_the_buffer_is_bounded_and_what_overflows_is_reported(h200_events: list[GpuMetadataEvent]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    sender = BatchSender(_client(handler, attempts=1), batch_size=2, max_buffered=3, clock=FakeClock())
    for event in h200_events[:5]:
        sender.add(event)
    assert sender.pending == 3
    assert len(sender.refused) == 2, "the two oldest were given up, by id, not silently"
