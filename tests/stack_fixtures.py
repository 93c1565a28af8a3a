"""Pytest plugin: the real local stack, started once per test session on free loopback ports.

Loaded by the root conftest, so integration tests and the Gherkin features share one stack.

Kafka, FerretDB and moto are the real servers (no mocks); the API and the worker run as
separate processes configured by the same environment variables as their pods. The stack
lives in its own temporary folder, so it runs beside a developer's own `make local-up`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from pymongo import MongoClient

from ca4_events.schema import GpuMetadataEvent
from local_stack import stack
from local_stack.config import StackConfig
from tests.integration.support import Stack, h200_events


@contextlib.contextmanager
def running(cfg: StackConfig) -> Iterator[Stack]:
    """The stack of ``cfg`` up for the block (down again even if it failed to come up)."""
    try:
        stack.up(cfg)
    except Exception:
        stack.down(cfg)
        raise
    mongo: MongoClient[dict[str, Any]] = MongoClient(
        cfg.mongo_uri, tz_aware=True, serverSelectionTimeoutMS=5000
    )
    try:
        yield Stack(cfg, mongo)
    finally:
        mongo.close()
        stack.down(cfg)


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Start Kafka, FerretDB, moto, the worker and the API once; stop them after the session."""
    with running(StackConfig.ephemeral(tmp_path_factory.mktemp("ca4-stack"))) as started:
        yield started


@pytest.fixture
def session_events() -> list[GpuMetadataEvent]:
    """The six H200 snapshots from a producer session of this test's own."""
    return h200_events("colab-h200", "it")
