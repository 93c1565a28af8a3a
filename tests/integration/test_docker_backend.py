"""The optional testcontainers backend: Kafka, MongoDB and moto as containers (skipped without Docker)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pymongo import MongoClient

from ca4_events.schema import GpuMetadataEvent
from local_stack import docker_backend, stack
from local_stack.config import StackConfig
from tests.integration.support import Stack

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def docker_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    problem = docker_backend.docker_problem()
    if problem:
        pytest.skip(f"testcontainers backend not exercised: {problem}")
    # the Docker SDK also comes with moto[server]; testcontainers only with the docker group
    pytest.importorskip("testcontainers", reason="the docker dependency group is not installed")
    cfg = StackConfig.ephemeral(tmp_path_factory.mktemp("ca4-docker"), backend="docker")
    try:
        stack.up(cfg)
        mongo: MongoClient[dict[str, Any]] = MongoClient(cfg.mongo_uri, serverSelectionTimeoutMS=5000)
        try:
            yield Stack(cfg, mongo)
        finally:
            mongo.close()
    finally:
        stack.down(cfg)


def test_an_event_flows_through_the_container_backend(
    docker_stack: Stack, session_events: list[GpuMetadataEvent]
) -> None:
    ids = docker_stack.post_events(session_events[-1:])
    docker_stack.wait_for_documents(ids)
