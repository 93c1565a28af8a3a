"""Unit-test helpers: events built from the real H200 captures."""

from __future__ import annotations

from pathlib import Path

import pytest

from ca4_events.schema import GpuMetadataEvent, Source
from ca4_producer.replay import events_from_nvml_series


@pytest.fixture(scope="session")
def h200_events(h200_dir: Path) -> list[GpuMetadataEvent]:
    """The six NVML snapshots (one idle, five under load) as events."""
    source = Source(provider="colab", host="colab-h200", session_id="sess-1")
    return list(events_from_nvml_series(h200_dir / "nvml-series.json", source))


@pytest.fixture
def idle_event(h200_events: list[GpuMetadataEvent]) -> GpuMetadataEvent:
    """The idle snapshot."""
    return h200_events[0]


@pytest.fixture
def load_event(h200_events: list[GpuMetadataEvent]) -> GpuMetadataEvent:
    """The last snapshot under a bf16 matmul load (power-capped)."""
    return h200_events[-1]
