"""The producer client: same id across retries, backoff on transient answers, clear errors."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from ca4_events.schema import GpuMetadataEvent
from ca4_producer.client import Ca4Client, Ca4ClientError, Ca4Unavailable

Handler = Callable[[httpx.Request], httpx.Response]


def client(handler: Handler, sleeps: list[float], attempts: int = 5) -> Ca4Client:
    return Ca4Client(
        "http://api.test",
        "token-for-unit-tests",
        transport=httpx.MockTransport(handler),
        sleep=sleeps.append,
        max_attempts=attempts,
    )


def test_a_503_then_202_delivers_with_one_event_id(idle_event: GpuMetadataEvent) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content)["event_id"])
        assert request.headers["authorization"] == "Bearer token-for-unit-tests"
        if len(seen) == 1:
            return httpx.Response(503, headers={"Retry-After": "2"}, json={"detail": "kafka down"})
        return httpx.Response(202, json={"event_ids": [seen[-1]]})

    sleeps: list[float] = []
    delivery = client(handler, sleeps).post_event(idle_event)
    assert delivery.status == 202 and delivery.attempts == 2
    assert seen[0] == seen[1] == delivery.event_ids[0], "a retry must reuse the event id"
    assert sleeps == [2.0], "Retry-After is honoured"


def test_connection_errors_back_off_exponentially_with_jitter(idle_event: GpuMetadataEvent) -> None:
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        raise httpx.ConnectError("refused", request=request)

    sleeps: list[float] = []
    with pytest.raises(Ca4Unavailable, match="gave up after 5 attempts; last problem: ConnectError"):
        client(handler, sleeps).post_event(idle_event)
    assert calls["n"] == 5 and len(sleeps) == 4
    for pause, cap in zip(sleeps, [0.5, 1.0, 2.0, 4.0], strict=True):
        assert 0 <= pause <= cap, f"full jitter: {pause} should be within [0, {cap}]"


@pytest.mark.parametrize("status", [400, 401, 403, 413, 415, 422])
def test_other_4xx_answers_are_not_retried(idle_event: GpuMetadataEvent, status: int) -> None:
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        return httpx.Response(
            status, json={"detail": "no", "errors": [{"field": "source.host", "message": "Field required"}]}
        )

    with pytest.raises(Ca4ClientError) as exc:
        client(handler, []).post_event(idle_event)
    assert calls["n"] == 1 and exc.value.status == status


def test_401_and_422_messages_say_what_to_do(idle_event: GpuMetadataEvent) -> None:
    def unauthorized(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"detail": "missing or invalid bearer token"})

    with pytest.raises(Ca4ClientError, match="set CA4_API_TOKEN"):
        client(unauthorized, []).post_event(idle_event)

    def invalid(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            422,
            json={"detail": "x", "errors": [{"field": "accelerators[0].uuid", "message": "Field required"}]},
        )

    with pytest.raises(Ca4ClientError, match=r"accelerators\[0\]\.uuid: Field required"):
        client(invalid, []).post_event(idle_event)


def test_a_batch_carries_ids_for_every_event(h200_events: list[GpuMetadataEvent]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        ids = [e["event_id"] for e in json.loads(request.content)["events"]]
        return httpx.Response(202, json={"event_ids": ids})

    delivery = client(handler, []).post_batch(h200_events)
    assert len(set(delivery.event_ids)) == 6


def test_missing_url_or_token_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGE_API_URL", raising=False)
    monkeypatch.delenv("CA4_API_TOKEN", raising=False)
    with pytest.raises(Ca4ClientError, match="EDGE_API_URL"):
        Ca4Client()
    monkeypatch.setenv("EDGE_API_URL", "https://api.example")
    with pytest.raises(Ca4ClientError, match="CA4_API_TOKEN"):
        Ca4Client()
