"""Processor API with an injected fake publisher: status codes, bodies, records."""

from __future__ import annotations

import gc
import hashlib
import json
import pathlib
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ca4_events.schema import GpuMetadataEvent
from processor_api.app import GC_FIRST_THRESHOLD, create_app
from processor_api.body import _first_key
from processor_api.config import Settings
from tests.unit.fakes import FakePublisher

TOKEN = "unit-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


@pytest.fixture
def publisher() -> FakePublisher:
    return FakePublisher()


@pytest.fixture
def client(publisher: FakePublisher) -> Iterator[TestClient]:
    settings = Settings(
        api_tokens=f"{TOKEN},sha256:{'a' * 64}",
        api_max_body_bytes=64 * 1024,
        api_max_batch_events=10,
    )
    with TestClient(create_app(settings, publisher=publisher)) as c:
        yield c


def body(event: GpuMetadataEvent) -> dict[str, Any]:
    return json.loads(event.model_dump_json(exclude_none=True))


def test_one_event_is_accepted_with_an_assigned_uuid7(
    client: TestClient, publisher: FakePublisher, load_event: GpuMetadataEvent
) -> None:
    resp = client.post("/metadata", json=body(load_event), headers=AUTH)
    assert resp.status_code == 202, resp.text
    (eid,) = resp.json()["event_ids"]
    (rec,) = publisher.records
    assert rec.event_id == eid and eid[14] == "7", f"assigned id {eid} should be a UUIDv7"
    assert rec.key == b"sess-1", "key is the producer session"
    assert dict(rec.headers) == {
        "schema_version": b"1",
        "event_id": eid.encode(),
        "content-type": b"application/json",
    }
    published = json.loads(rec.value)
    assert published["event_id"] == eid and published["accelerators"][0]["power_draw_w"] == 689.935


def test_a_client_event_id_is_kept(
    client: TestClient, publisher: FakePublisher, load_event: GpuMetadataEvent
) -> None:
    data = body(load_event) | {"event_id": "8a3b6a36-6f2c-4f5e-9a51-5b7d8b0e2f11"}
    resp = client.post("/metadata", json=data, headers=AUTH)
    assert resp.json()["event_ids"] == ["8a3b6a36-6f2c-4f5e-9a51-5b7d8b0e2f11"]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token-wrong-token"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": "Bearer "},
    ],
    ids=["missing", "wrong", "wrong-scheme", "empty"],
)
def test_without_a_valid_token_the_answer_is_401(
    client: TestClient,
    publisher: FakePublisher,
    headers: dict[str, str],
    idle_event: GpuMetadataEvent,
) -> None:
    resp = client.post("/metadata", json=body(idle_event), headers=headers)
    assert resp.status_code == 401, resp.text
    assert resp.headers["www-authenticate"] == "Bearer"
    assert publisher.records == [], "nothing may be published without a token"


def test_a_hashed_token_entry_is_accepted(publisher: FakePublisher, idle_event: GpuMetadataEvent) -> None:
    token = "another-token-from-a-secret"
    settings = Settings(api_tokens=f"sha256:{hashlib.sha256(token.encode()).hexdigest()}")
    with TestClient(create_app(settings, publisher=publisher)) as c:
        resp = c.post("/metadata", json=body(idle_event), headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 202, resp.text


def test_an_invalid_event_gets_422_naming_the_field(
    client: TestClient, publisher: FakePublisher, load_event: GpuMetadataEvent
) -> None:
    data = body(load_event)
    data["accelerators"][0]["utilization_gpu_pct"] = 140
    resp = client.post("/metadata", json=data, headers=AUTH)
    assert resp.status_code == 422
    (err,) = resp.json()["errors"]
    assert err["field"] == "accelerators[0].utilization_gpu_pct"
    assert "less than or equal to 100" in err["message"]
    assert publisher.records == []


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"{not json", "not valid JSON"),
        (b"[" * 50_000, "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b'{"collected_at": "2026-01-01T00:00:00Z", "x": NaN}', "not valid JSON"),
        (
            b'{"collected_at": "2026-01-01T00:00:00Z", "source": {"provider": "colab", "host": "h"},'
            b' "workload": {"loss": Infinity}}',
            "not valid JSON",
        ),
    ],
    ids=["malformed", "deeply-nested", "not-utf8", "nan-is-not-json", "infinity-in-a-valid-event"],
)
def test_bad_json_gets_400_not_a_stack_trace(client: TestClient, raw: bytes, fragment: str) -> None:
    resp = client.post("/metadata", content=raw, headers=AUTH)
    assert resp.status_code == 400, resp.text
    assert fragment in resp.json()["detail"]


def test_a_json_array_body_is_422(client: TestClient) -> None:
    resp = client.post("/metadata", json=[1, 2], headers=AUTH)
    assert resp.status_code == 422
    assert resp.json()["errors"][0]["message"] == "must be a JSON object"


def test_wrong_content_type_is_415(client: TestClient, idle_event: GpuMetadataEvent) -> None:
    resp = client.post(
        "/metadata",
        content=idle_event.model_dump_json(),
        headers={**AUTH, "Content-Type": "text/plain"},
    )
    assert resp.status_code == 415


def test_a_body_over_the_limit_is_413(client: TestClient) -> None:
    resp = client.post("/metadata", content=b" " * (64 * 1024 + 1), headers=AUTH)
    assert resp.status_code == 413
    assert "limit" in resp.json()["detail"]


def test_kafka_down_gives_503_with_retry_after(
    client: TestClient, publisher: FakePublisher, idle_event: GpuMetadataEvent
) -> None:
    publisher.unavailable = True
    resp = client.post("/metadata", json=body(idle_event), headers=AUTH)
    assert resp.status_code == 503
    assert resp.headers["retry-after"] == "5"
    assert "nothing was accepted" in resp.json()["detail"]


def test_an_unacknowledged_event_is_503_never_202(
    client: TestClient, publisher: FakePublisher, idle_event: GpuMetadataEvent
) -> None:
    publisher.refuse_every = 1
    resp = client.post("/metadata", json=body(idle_event), headers=AUTH)
    assert resp.status_code == 503, "an event Kafka did not ack must never get a 2xx"


def test_a_valid_batch_is_202_with_every_id(
    client: TestClient, publisher: FakePublisher, h200_events: list[GpuMetadataEvent]
) -> None:
    resp = client.post("/metadata", json={"events": [body(e) for e in h200_events]}, headers=AUTH)
    assert resp.status_code == 202, resp.text
    data = resp.json()
    assert data["accepted"] == 6 and len(data["event_ids"]) == 6
    assert [r["status"] for r in data["results"]] == [202] * 6
    assert [r.event_id for r in publisher.records] == data["event_ids"]


def test_a_mixed_batch_is_207_with_per_item_results(
    client: TestClient, publisher: FakePublisher, h200_events: list[GpuMetadataEvent]
) -> None:
    items: list[Any] = [body(e) for e in h200_events[:3]]
    items[1]["accelerators"][0]["memory_total_bytes"] = "lots"
    items.append("not an object")
    resp = client.post("/metadata", json={"events": items}, headers=AUTH)
    assert resp.status_code == 207, resp.text
    results = resp.json()["results"]
    assert [r["status"] for r in results] == [202, 422, 202, 422]
    assert results[1]["errors"][0]["field"] == "events[1].accelerators[0].memory_total_bytes"
    assert results[3]["errors"][0]["field"] == "events[3]"
    assert len(publisher.records) == 2


def test_batch_items_kafka_did_not_ack_are_reported_503(
    client: TestClient, publisher: FakePublisher, h200_events: list[GpuMetadataEvent]
) -> None:
    publisher.refuse_every = 2  # items 0, 2, 4 refused
    resp = client.post("/metadata", json={"events": [body(e) for e in h200_events]}, headers=AUTH)
    assert resp.status_code == 207
    assert [r["status"] for r in resp.json()["results"]] == [503, 202, 503, 202, 503, 202]
    assert resp.json()["accepted"] == 3


def test_an_all_invalid_batch_is_422(client: TestClient) -> None:
    resp = client.post("/metadata", json={"events": [{}, {}]}, headers=AUTH)
    assert resp.status_code == 422
    assert resp.json()["detail"] == "no event in the batch is valid"


@pytest.mark.parametrize(
    ("payload", "field", "fragment"),
    [
        ({"events": []}, "events", "non-empty"),
        ({"events": {}}, "events", "non-empty"),
        ({"events": [{}] * 11}, "events", "at most 10"),
        ({"events": [{}], "extra": 1}, "extra", "unexpected key"),
    ],
)
def test_batch_shape_errors_name_the_field(
    client: TestClient, payload: dict[str, Any], field: str, fragment: str
) -> None:
    resp = client.post("/metadata", json=payload, headers=AUTH)
    assert resp.status_code == 422
    (err,) = resp.json()["errors"]
    assert err["field"] == field and fragment in err["message"], err


def test_probes(client: TestClient, publisher: FakePublisher) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200
    publisher.ready_flag = False
    resp = client.get("/readyz")
    assert resp.status_code == 503 and resp.json()["kafka"] == "unreachable"


def _sample(text: str, name: str) -> float:
    return next(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " "))


def test_metrics_count_requests_by_route_template(client: TestClient, idle_event: GpuMetadataEvent) -> None:
    before = _sample(client.get("/metrics").text, "ca4_api_events_published_total")
    client.post("/metadata", json=body(idle_event), headers=AUTH)
    text = client.get("/metrics").text
    assert 'ca4_api_requests_total{method="POST",route="/metadata",status="202"}' in text
    assert _sample(text, "ca4_api_events_published_total") == before + 1


def test_openapi_documents_the_event_schema_and_bearer_auth(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    post = doc["paths"]["/metadata"]["post"]
    refs = [s["$ref"] for s in post["requestBody"]["content"]["application/json"]["schema"]["oneOf"]]
    assert refs == ["#/components/schemas/GpuMetadataEvent", "#/components/schemas/EventBatch"]
    assert "Accelerator" in doc["components"]["schemas"]
    assert post["security"] == [{"bearerAuth": []}]
    assert set(post["responses"]) >= {"202", "207", "400", "401", "413", "415", "422", "503"}


def test_the_api_module_never_imports_a_database_client() -> None:
    api_dir = pathlib.Path(__import__("processor_api").__file__).parent
    for source in api_dir.glob("*.py"):
        text = source.read_text()
        assert "pymongo" not in text and "boto3" not in text, (
            f"{source.name}: the API never touches the DB or S3"
        )


@pytest.mark.parametrize(
    ("body", "key"),
    [
        (b'  {"events": []}', b'"events"'),
        (b'{"collected_at": 1}', b'"collected_at"'),
        (b"[1]", None),
        (b"{}", None),
    ],
)
def test_the_fast_path_recognises_a_batch_by_its_first_key(body: bytes, key: bytes | None) -> None:
    assert _first_key(body) == key


def test_a_batch_whose_events_key_is_not_first_still_gets_a_readable_answer(
    client: TestClient, idle_event: GpuMetadataEvent
) -> None:
    resp = client.post(
        "/metadata",
        content=b'{"x": 1, "events": [' + idle_event.model_dump_json().encode() + b"]}",
        headers=AUTH,
    )
    assert resp.status_code == 422
    assert resp.json()["errors"][0]["field"] == "x"


def test_once_started_the_heap_is_frozen_and_collections_are_rare(client: TestClient) -> None:
    # the client fixture ran the app's startup: what it allocated is out of later collections
    assert gc.get_freeze_count() > 10_000, f"only {gc.get_freeze_count()} objects frozen"
    assert gc.get_threshold()[0] == GC_FIRST_THRESHOLD, gc.get_threshold()
    assert client.get("/healthz").status_code == 200
