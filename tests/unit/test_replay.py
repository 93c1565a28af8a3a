"""The NVML replay source turns the real H200 readings into faithful events."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from pathlib import Path

from ca4_events.schema import GpuMetadataEvent, Source
from ca4_producer.replay import accelerator_from_nvml, events_from_nvml_series

H200_UUID = "GPU-bfb5ba6a-db8e-fc7b-5fdc-aeabcd37bce1"


def test_idle_snapshot_values_match_the_capture(idle_event: GpuMetadataEvent) -> None:
    (acc,) = idle_event.accelerators
    assert acc.uuid == H200_UUID
    assert acc.name == "NVIDIA H200"
    assert acc.compute_capability == "9.0"
    assert acc.memory_total_bytes == 150_754_820_096
    assert acc.power_draw_w == 109.417, "power_usage_mw 109417 is 109.417 W"
    assert acc.power_limit_w == 700.0
    assert acc.clock_event_reasons_mask == 1, "idle: GpuIdle"
    assert acc.pstate == "P0" and acc.persistence_mode is True and acc.compute_mode == "Default"
    assert acc.mig_mode is False and acc.ecc_mode is True
    assert acc.processes == []
    assert idle_event.software is not None
    assert idle_event.software.cuda_driver_version == "13.0", "NVML reports 13000 for CUDA 13.0"
    assert idle_event.software.framework == {"torch": "2.11.0+cu130"}


def test_load_snapshot_shows_the_process_and_power_cap(load_event: GpuMetadataEvent) -> None:
    (acc,) = load_event.accelerators
    assert acc.utilization_gpu_pct == 100
    assert acc.clock_event_reasons_mask == 4, "under load the H200 was power-capped (0x4)"
    assert [(p.pid, p.used_memory_bytes) for p in acc.processes] == [(417, 1_050_673_152)]


def test_a_refused_reading_becomes_null_and_unsupported(h200_dir: Path) -> None:
    data = json.loads((h200_dir / "nvml-series.json").read_text())
    dev = dict(data["phase_idle"][0]["devices"][0])
    dev["fan_speed_pct"] = {"error": "NVMLError_NotSupported: Not Supported"}
    dev["temperature_memory_c"] = {"error": "NVMLError_NotSupported: Not Supported"}
    acc = accelerator_from_nvml(dev)
    assert acc.fan_speed_pct is None and acc.temperature_memory_c is None
    assert acc.unsupported == ["fan_speed_pct", "temperature_memory_c"]


def test_an_unknown_performance_state_is_null_as_in_the_live_source(h200_dir: Path) -> None:
    data = json.loads((h200_dir / "nvml-series.json").read_text())
    dev = dict(data["phase_idle"][0]["devices"][0])
    dev["pstate"] = 32  # NVML_PSTATE_UNKNOWN
    acc = accelerator_from_nvml(dev)
    assert acc.pstate is None and "pstate" not in acc.unsupported


def test_retiming_keeps_spacing_and_ends_now(h200_dir: Path) -> None:
    now = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    source = Source(provider="other", host="h")
    original = list(events_from_nvml_series(h200_dir / "nvml-series.json", source))
    shifted = list(events_from_nvml_series(h200_dir / "nvml-series.json", source, now=now))
    assert shifted[-1].collected_at == now
    gaps = [(b.collected_at - a.collected_at) for a, b in itertools.pairwise(original)]
    gaps_shifted = [(b.collected_at - a.collected_at) for a, b in itertools.pairwise(shifted)]
    assert all(abs((g - h).total_seconds()) < 1e-3 for g, h in zip(gaps, gaps_shifted, strict=True))
