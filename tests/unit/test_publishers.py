"""The publishers' own logic, without a broker: ack tracking across threads, librdkafka's refusals."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading

import pytest

from processor_api.config import Settings
from processor_api.publishers import AckTracker, OutRecord, base, max_record_bytes
from processor_api.publishers.base import ProbedPublisher
from processor_api.publishers.confluent import ConfluentPublisher
from processor_api.publishers.kafka_python import KafkaPublisher
from tests.unit.fakes import FakeConfluentProducer


def test_outcomes_settled_on_another_thread_wake_the_request_once() -> None:
    async def run() -> list[str | None]:
        acks = AckTracker(3)
        loop = asyncio.get_running_loop()
        wakes: list[int] = []
        original = acks._wake  # counting wake-ups is the point

        def counted() -> None:
            wakes.append(1)
            original()

        acks._wake = counted  # type: ignore[method-assign]
        worker = threading.Thread(
            target=lambda: [acks.settle(i, None if i != 1 else "NotLeader") for i in range(3)]
        )
        await loop.run_in_executor(None, worker.start)
        outcomes = await acks.wait(5.0)
        worker.join()
        assert wakes == [1], "one wake-up per request, not one per record"
        return outcomes

    assert asyncio.run(run()) == [None, "NotLeader", None]


def test_what_is_still_pending_at_the_deadline_is_an_ack_timeout() -> None:
    async def run() -> list[str | None]:
        acks = AckTracker(2)
        acks.settle(0, None)
        return await acks.wait(0.05)

    assert asyncio.run(run()) == [None, "AckTimeout"]


def _record(value: bytes) -> OutRecord:
    return OutRecord(event_id="e", key=b"k", value=value, headers=[("event_id", b"e")])


def test_a_record_librdkafka_refuses_is_that_items_failure_not_a_500(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeConfluentProducer(limit=100)
    monkeypatch.setattr(ConfluentPublisher, "_new_producer", lambda self: fake)
    publisher = ConfluentPublisher(Settings(api_tokens="unit-test-token-0123456789"))
    publisher._reachable = True  # no broker in a unit test

    outcomes = asyncio.run(publisher.publish([_record(b"a"), _record(b"x" * 101), _record(b"b")]))
    assert outcomes == [None, "MSG_SIZE_TOO_LARGE", None]
    assert fake.produced == [b"a", b"b"]


def test_the_producers_take_any_record_the_api_accepted() -> None:
    settings = Settings(api_tokens="unit-test-token-0123456789")
    assert max_record_bytes(settings) > settings.api_max_body_bytes


@pytest.mark.parametrize("client", ["confluent-kafka", "kafka-python"])
def test_readiness_keeps_following_kafka_after_a_probe_raises(
    client: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A probe that raises something unexpected must not freeze /readyz at its last value
    (one publisher's probe loop once died on the first such error)."""
    answers: list[bool | Exception] = [True, RuntimeError("resolver exploded"), False, True]
    seen: list[bool] = []

    async def probe(servers: object, timeout_s: float = 1.0) -> bool:
        answer = answers.pop(0) if answers else True
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(base, "probe_bootstrap", probe)
    publisher: ProbedPublisher
    if client == "confluent-kafka":
        monkeypatch.setattr(
            ConfluentPublisher, "_new_producer", lambda self: FakeConfluentProducer(limit=100)
        )
        publisher = ConfluentPublisher(Settings(api_tokens="unit-test-token-0123456789"))
    else:
        monkeypatch.setattr(KafkaPublisher, "_new_producer", lambda self: object())
        publisher = KafkaPublisher(Settings(api_tokens="unit-test-token-0123456789"))
    publisher.PROBE_INTERVAL_S = 0.01

    async def run() -> None:
        await publisher._probe_once()  # what start() does first, without the background thread
        seen.append(publisher._reachable)
        task = asyncio.create_task(publisher._probe_loop())
        for _ in range(200):  # bounded: 2 s at most
            await asyncio.sleep(0.01)
            if seen[-1] != publisher._reachable:
                seen.append(publisher._reachable)
            if not answers:
                break
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    with caplog.at_level(logging.ERROR, logger="processor_api.publishers.base"):
        asyncio.run(run())
    assert "kafka probe failed" in caplog.messages, f"the raising probe was not logged: {caplog.messages}"
    assert seen[:3] == [True, False, True], f"readiness stopped following the probes after the error: {seen}"
