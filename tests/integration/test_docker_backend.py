"""The optional testcontainers backend: Kafka, MongoDB and moto as containers (skipped without Docker)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pymongo import MongoClient

from ca4_events import names
from ca4_events.schema import GpuMetadataEvent
from local_stack import docker_backend, stack
from local_stack.config import StackConfig
from tests.integration.support import to_body

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def docker_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackConfig]:
    problem = docker_backend.docker_problem()
    if problem:
        pytest.skip(f"testcontainers backend not exercised: {problem}")
    cfg = StackConfig.ephemeral(tmp_path_factory.mktemp("ca4-docker"), backend="docker")
    try:
        stack.up(cfg)
        yield cfg
    finally:
        stack.down(cfg)


def test_an_event_flows_through_the_container_backend(
    docker_stack: StackConfig, session_events: list[GpuMetadataEvent], tmp_path: Path
) -> None:
    headers = {"Authorization": f"Bearer {docker_stack.api_token()}"}
    resp = httpx.post(f"{docker_stack.api_url}/metadata", json=to_body(session_events[-1]), headers=headers)
    assert resp.status_code == 202, resp.text
    (event_id,) = resp.json()["event_ids"]
    client: MongoClient[dict[str, object]] = MongoClient(
        docker_stack.mongo_uri, serverSelectionTimeoutMS=5000
    )
    try:
        deadline = time.monotonic() + 30
        doc = None
        while doc is None and time.monotonic() < deadline:
            doc = client[names.DATABASE][names.COLLECTION_EVENTS].find_one({"_id": event_id})
            time.sleep(0.1)
        assert doc is not None, f"{event_id} not stored in the MongoDB container within 30 s"
    finally:
        client.close()
