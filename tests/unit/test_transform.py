"""Transformation rules, each alone, on the real H200 snapshots."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from ca4_events.schema import Accelerator, GpuMetadataEvent
from metadata_worker import transform as t

COORDS = t.KafkaCoords("gpu-metadata", 2, 41, 1_795_833_753_000, "sess-1")
PROCESSED = dt.datetime(2026, 11, 28, 2, 42, 33, 250_000, tzinfo=dt.UTC)


def with_id(event: GpuMetadataEvent) -> GpuMetadataEvent:
    return event.model_copy(update={"event_id": uuid.UUID(int=7)})


@pytest.mark.parametrize(
    ("mask", "expected"),
    [
        (None, None),
        (0, []),
        (0x1, ["gpu_idle"]),
        (0x4, ["sw_power_cap"]),
        (0x4 | 0x40, ["sw_power_cap", "hw_thermal_slowdown"]),
        (1 << 40, ["bit_0x10000000000"]),
    ],
)
def test_clock_event_reasons_are_decoded(mask: int | None, expected: list[str] | None) -> None:
    assert t.decode_clock_event_reasons(mask) == expected


@pytest.mark.parametrize(
    ("cc", "arch"),
    [
        ("9.0", "Hopper"),
        ("8.0", "Ampere"),
        ("8.6", "Ampere"),
        ("8.9", "Ada Lovelace"),
        ("7.5", "Turing"),
        ("7.0", "Volta"),
        ("10.0", "Blackwell"),
        ("12.0", "Blackwell"),
        ("6.1", "Pascal"),
        ("2.0", None),
        (None, None),
        ("x.y", None),
    ],
)
def test_architecture_from_compute_capability(cc: str | None, arch: str | None) -> None:
    assert t.architecture_from_compute_capability(cc) == arch


def test_derived_percentages_on_the_load_snapshot(load_event: GpuMetadataEvent) -> None:
    (acc,) = load_event.accelerators
    assert t.memory_used_pct(acc) == pytest.approx(100 * 1_704_853_504 / 150_754_820_096, abs=0.01)
    assert t.power_pct_of_limit(acc) == pytest.approx(100 * 689.935 / 700, abs=0.01)


def test_percentages_are_unknown_without_a_denominator() -> None:
    acc = Accelerator(
        kind="gpu",
        index=0,
        uuid="GPU-x",
        name="x",
        memory_used_bytes=5,
        power_draw_w=10,
        power_limit_w=0,
    )
    assert t.memory_used_pct(acc) is None, "no total means unknown, not 0 %"
    assert t.power_pct_of_limit(acc) is None


def test_units_are_normalised(load_event: GpuMetadataEvent) -> None:
    units = t.normalised_units(load_event.accelerators[0])
    assert units["memory_total_gib"] == pytest.approx(140.4, abs=0.05)
    assert units["energy_total_kwh"] == pytest.approx(7_413_898 / 3.6e9, rel=1e-3)


def test_power_capping_under_load_is_flagged_but_healthy(load_event: GpuMetadataEvent) -> None:
    acc = load_event.accelerators[0]
    flags = t.health_flags(acc, t.decode_clock_event_reasons(acc.clock_event_reasons_mask))
    assert flags["power_capped"] is True
    assert flags["healthy"] is True, "a power cap under load is normal operation"


@pytest.mark.parametrize(
    ("change", "flag"),
    [
        ({"clock_event_reasons_mask": 0x40}, "thermal_throttled"),
        ({"temperature_gpu_c": 91.0}, "overheating"),
        ({"temperature_memory_c": 95.0}, "overheating"),
        ({"clock_event_reasons_mask": 0x8}, "hw_slowdown"),
        ({"ecc_errors_uncorrected_volatile": 2}, "ecc_uncorrected"),
        ({"remapped_rows_pending": True}, "row_remap_trouble"),
    ],
)
def test_faults_make_the_device_unhealthy(
    load_event: GpuMetadataEvent, change: dict[str, object], flag: str
) -> None:
    acc = load_event.accelerators[0].model_copy(update=change)
    flags = t.health_flags(acc, t.decode_clock_event_reasons(acc.clock_event_reasons_mask))
    assert flags[flag] is True, f"{change} should raise {flag}: {flags}"
    assert flags["healthy"] is False


def test_timestamps_are_normalised_to_utc_milliseconds() -> None:
    local = dt.datetime(2026, 1, 1, 1, 0, 0, 123_987, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert t.to_millis(local) == dt.datetime(2026, 1, 1, 0, 0, 0, 123_000, tzinfo=dt.UTC)


def test_ingest_lag_legs_add_up() -> None:
    collected = dt.datetime(2026, 1, 1, 0, 0, 0, tzinfo=dt.UTC)
    lag = t.ingest_lag(
        collected,
        collected + dt.timedelta(milliseconds=40),
        collected + dt.timedelta(milliseconds=65),
    )
    assert lag == {
        "collect_to_kafka_ms": 40.0,
        "kafka_to_processed_ms": 25.0,
        "collect_to_processed_ms": 65.0,
    }


def test_enriched_document_keeps_the_event_and_adds_lineage(load_event: GpuMetadataEvent) -> None:
    event = with_id(load_event)
    doc = t.enrich(event, COORDS, PROCESSED)
    assert doc["_id"] == doc["event_id"] == str(uuid.UUID(int=7)), "_id is the event id: replays are no-ops"
    assert doc["collected_at"].tzinfo is not None
    assert doc["kafka"] == {"topic": "gpu-metadata", "partition": 2, "offset": 41, "key": "sess-1"}
    assert doc["ingest"]["published_at"] == dt.datetime.fromtimestamp(1_795_833_753, dt.UTC)
    acc = doc["accelerators"][0]
    assert acc["uuid"] == "GPU-bfb5ba6a-db8e-fc7b-5fdc-aeabcd37bce1"
    assert acc["derived"]["architecture"] == "Hopper"
    assert acc["derived"]["clock_event_reasons"] == ["sw_power_cap"]
    assert doc["summary"] == {
        "accelerator_count": 1,
        "healthy": True,
        "max_temperature_gpu_c": 60.0,
        "total_power_draw_w": 689.935,
        "mean_utilization_gpu_pct": 100.0,
    }


def test_enrich_is_pure(load_event: GpuMetadataEvent) -> None:
    event = with_id(load_event)
    assert t.enrich(event, COORDS, PROCESSED) == t.enrich(event, COORDS, PROCESSED)
    assert event == with_id(load_event), "the input event must not change"


def test_enrich_refuses_an_event_without_id(load_event: GpuMetadataEvent) -> None:
    with pytest.raises(ValueError, match="event_id"):
        t.enrich(load_event, COORDS, PROCESSED)


def test_cpu_only_event_enriches_to_an_empty_summary() -> None:
    event = GpuMetadataEvent.model_validate(
        {
            "event_id": str(uuid.uuid4()),
            "collected_at": "2026-11-28T00:00:00+01:00",
            "source": {"provider": "colab", "host": "h"},
        }
    )
    doc = t.enrich(event, COORDS, PROCESSED)
    assert doc["collected_at"] == dt.datetime(2026, 11, 27, 23, 0, tzinfo=dt.UTC), "normalised to UTC"
    assert doc["summary"]["accelerator_count"] == 0 and doc["summary"]["healthy"] is True
    assert t.device_states(doc) == []


def test_latest_device_state_wins_within_a_batch(h200_events: list[GpuMetadataEvent]) -> None:
    docs = [t.enrich(e.model_copy(update={"event_id": uuid.uuid4()}), COORDS, PROCESSED) for e in h200_events]
    (state,) = t.latest_per_device(list(reversed(docs)))
    assert state["last_seen_at"] == max(d["collected_at"] for d in docs)
    assert state["last"]["utilization_gpu_pct"] == 100
    assert state["architecture"] == "Hopper"
