"""Fleet gauges: the latest values per accelerator, bounded in count and in time."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest

from ca4_events.schema import GpuMetadataEvent
from metadata_worker.fleet import FleetGauges
from metadata_worker.transform import KafkaCoords, enrich, latest_per_device

COORDS = KafkaCoords("gpu-metadata", 0, 1, 1_795_833_753_000, "k")
NOW = dt.datetime(2026, 11, 28, 3, 0, tzinfo=dt.UTC)


def states(event: GpuMetadataEvent, **acc: Any) -> list[dict[str, Any]]:
    e = event.model_copy(update={"event_id": uuid.uuid4()})
    if acc:
        e = e.model_copy(update={"accelerators": [e.accelerators[0].model_copy(update=acc)]})
    return latest_per_device([enrich(e, COORDS, NOW)])


def scrape(fleet: FleetGauges) -> str:
    registry = CollectorRegistry()
    registry.register(fleet)
    return generate_latest(registry).decode()


def test_the_load_snapshot_is_exported_per_device(load_event: GpuMetadataEvent) -> None:
    fleet = FleetGauges()
    fleet.update(states(load_event))
    text = scrape(fleet)
    labels = 'host="colab-h200",name="NVIDIA H200",uuid="GPU-bfb5ba6a-db8e-fc7b-5fdc-aeabcd37bce1"'
    assert f"ca4_accelerator_utilization_gpu_pct{{{labels}}} 100.0" in text
    assert f"ca4_accelerator_power_draw_w{{{labels}}} 689.935" in text
    assert f"ca4_accelerator_healthy{{{labels}}} 1.0" in text
    assert f"ca4_accelerator_thermal_trouble{{{labels}}} 0.0" in text
    assert "ca4_fleet_devices_tracked 1.0" in text


def test_unknown_values_are_absent_not_zero(load_event: GpuMetadataEvent) -> None:
    fleet = FleetGauges()
    fleet.update(states(load_event, temperature_gpu_c=None))
    assert "ca4_accelerator_temperature_gpu_c{" not in scrape(fleet), "null is unknown, never 0"


def test_a_device_not_seen_for_the_ttl_disappears(load_event: GpuMetadataEvent) -> None:
    now = [0.0]
    fleet = FleetGauges(ttl_s=900, clock=lambda: now[0])
    fleet.update(states(load_event))
    now[0] = 900.0
    assert "ca4_fleet_devices_tracked 1.0" in scrape(fleet)
    now[0] = 900.1
    text = scrape(fleet)
    assert "ca4_fleet_devices_tracked 0.0" in text and "ca4_accelerator_power_draw_w{" not in text


def test_at_most_max_devices_are_exported_newest_first(load_event: GpuMetadataEvent) -> None:
    now = [0.0]
    fleet = FleetGauges(max_devices=2, clock=lambda: now[0])
    for i in range(3):
        now[0] = float(i)
        fleet.update(states(load_event, uuid=f"GPU-{i}"))
    text = scrape(fleet)
    assert 'uuid="GPU-0"' not in text and 'uuid="GPU-1"' in text and 'uuid="GPU-2"' in text
    assert "ca4_fleet_devices_dropped_total 1.0" in text


def test_a_thermal_fault_is_flagged(load_event: GpuMetadataEvent) -> None:
    fleet = FleetGauges()
    fleet.update(states(load_event, clock_event_reasons_mask=0x40))
    text = scrape(fleet)
    labels = 'host="colab-h200",name="NVIDIA H200",uuid="GPU-bfb5ba6a-db8e-fc7b-5fdc-aeabcd37bce1"'
    assert f"ca4_accelerator_thermal_trouble{{{labels}}} 1.0" in text
    assert f"ca4_accelerator_healthy{{{labels}}} 0.0" in text


def test_a_replayed_older_snapshot_never_moves_the_gauges_back(load_event: GpuMetadataEvent) -> None:
    fleet = FleetGauges()
    newer = load_event.model_copy(update={"collected_at": load_event.collected_at + dt.timedelta(seconds=5)})
    fleet.update(states(newer, power_draw_w=650.0))
    fleet.update(states(load_event, power_draw_w=600.0))  # replayed after a crash, older
    text = scrape(fleet)
    assert 'ca4_accelerator_power_draw_w{host="colab-h200",' in text
    assert "} 650.0" in next(ln for ln in text.splitlines() if ln.startswith("ca4_accelerator_power_draw_w{"))
