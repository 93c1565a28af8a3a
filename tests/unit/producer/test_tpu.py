"""TPUs through JAX, with a jax-shaped fake (no TPU capture exists in the fixtures).

The fake devices mirror what ``jax.devices("tpu")`` returns on a TPU v5e VM (``device_kind``
"TPU v5 lite", 16 GiB of HBM per chip, one core per chip); the numbers are illustrative,
the shapes are JAX's.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from ca4_events.schema import GpuMetadataEvent
from ca4_producer.collector import Collector
from ca4_producer.readings import SourceUnavailable
from ca4_producer.tpu import JaxTpuSource, looks_like_tpu_host
from tests.unit.producer.fake_pynvml import FakeNvml, NVMLError_LibraryNotFound, load_series

HBM = 16 * 1024**3


class FakeTpu:
    """One JAX TPU device."""

    platform = "tpu"
    device_kind = "TPU v5 lite"

    def __init__(self, device_id: int, stats: dict[str, int] | None) -> None:
        self.id = device_id
        self.coords = (device_id % 2, device_id // 2, 0)
        self.core_on_chip = 0
        self._stats = stats

    def memory_stats(self) -> dict[str, int] | None:
        return self._stats


def fake_jax(devices: list[Any], error: Exception | None = None) -> Any:
    def listing(backend: str | None = None) -> list[Any]:
        assert backend == "tpu", "the collector asks for TPU devices only"
        if error is not None:
            raise error
        return devices

    return SimpleNamespace(
        __version__="0.6.0", devices=listing, local_devices=lambda backend=None: listing(backend)
    )


def test_tpu_devices_fill_the_accelerator_shape() -> None:
    stats = {"bytes_limit": HBM, "bytes_in_use": 2 * 1024**3, "peak_bytes_in_use": 3 * 1024**3}
    jax = fake_jax([FakeTpu(0, stats), FakeTpu(1, None)])
    reading = JaxTpuSource(jax, host="tpu-vm").read()
    first, second = reading.accelerators
    assert (first.kind, first.uuid, first.name, first.device_kind) == (
        "tpu",
        "TPU-tpu-vm-0",
        "TPU v5 lite",
        "TPU v5 lite",
    )
    assert (first.device_id, first.coords, first.core_on_chip) == (0, [0, 0, 0], 0)
    assert (
        first.memory_total_bytes,
        first.memory_used_bytes,
        first.memory_free_bytes,
        first.memory_peak_bytes,
    ) == (
        HBM,
        2 * 1024**3,
        14 * 1024**3,
        3 * 1024**3,
    )
    assert first.unsupported == []
    # memory_stats() answering None means this runtime cannot report memory
    assert second.memory_total_bytes is None
    assert second.unsupported == [
        "memory_free_bytes",
        "memory_peak_bytes",
        "memory_total_bytes",
        "memory_used_bytes",
    ]
    assert reading.frameworks == {"jax": "0.6.0"}


def test_a_tpu_only_host_gives_a_valid_event(h200_dir: Path) -> None:
    nvml = FakeNvml(load_series(h200_dir / "nvml-series.json"), init_error=NVMLError_LibraryNotFound())
    jax = fake_jax([FakeTpu(i, {"bytes_limit": HBM, "bytes_in_use": 0}) for i in range(4)])
    collector = Collector.detect(nvml_module=nvml, smi_binary=None, jax_module=jax)
    event = collector.snapshot().event
    GpuMetadataEvent.model_validate_json(event.model_dump_json())
    assert [a.kind for a in event.accelerators] == ["tpu"] * 4
    assert event.software is not None and event.software.framework.get("jax") == "0.6.0"
    assert [s.name for s in collector.sources] == ["jax-tpu"]


def test_jax_without_a_tpu_backend_is_unavailable() -> None:
    jax = fake_jax([], error=RuntimeError("Unknown backend: 'tpu' requested"))
    with pytest.raises(SourceUnavailable, match="no TPU backend"):
        JaxTpuSource.open(jax)
    with pytest.raises(SourceUnavailable, match="lists no TPU"):
        JaxTpuSource.open(fake_jax([]))


def test_tpu_hints(tmp_path: Path) -> None:
    assert not looks_like_tpu_host({}, tmp_path), "an empty /dev and no TPU variables: not a TPU host"
    assert looks_like_tpu_host({"TPU_ACCELERATOR_TYPE": "v5litepod-8"}, tmp_path)
    (tmp_path / "accel0").touch()
    assert looks_like_tpu_host({}, tmp_path), "/dev/accel0 is how TPU v4+ chips appear"
