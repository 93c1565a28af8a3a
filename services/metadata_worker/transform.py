"""Transformation rules: pure functions from a validated event to the stored documents.

Nothing here does I/O or reads a clock; the caller passes the Kafka coordinates and the
processing time. Each rule is small and tested alone on the real H200 captures.

Rules:
- unit normalisation: timestamps in UTC at millisecond precision (what a BSON date holds, so
  the stored document is exactly what this module returns); memory also in GiB, energy
  also in kWh;
- derived fields: memory used %, power % of limit;
- architecture from the compute capability;
- decoded clock-event (throttle) reasons;
- health flags: thermal, power-capped, hardware slowdown, ECC / row-remap trouble;
- ingest lag: collect -> Kafka -> processed, in milliseconds;
- Kafka coordinates (topic, partition, offset, timestamp, key) for lineage.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from ca4_events.schema import Accelerator, GpuMetadataEvent

GIB = 1024**3
MJ_PER_KWH = 3_600_000_000  # millijoules in one kilowatt-hour
THERMAL_WARN_C = 85.0  # data-centre GPUs start slowing down around 87-90 C

# NVML nvmlClocksEventReasons bits (nvml.h), in the names nvidia-smi prints
CLOCK_EVENT_REASONS: dict[int, str] = {
    0x1: "gpu_idle",
    0x2: "applications_clocks_setting",
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x10: "sync_boost",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
    0x100: "display_clock_setting",
}
_THERMAL_REASONS = {"sw_thermal_slowdown", "hw_thermal_slowdown"}
_POWER_REASONS = {"sw_power_cap", "hw_power_brake_slowdown"}

# compute capability major (and, where the major is shared, minor) -> architecture
_ARCH_BY_CC: dict[tuple[int, int | None], str] = {
    (3, None): "Kepler",
    (5, None): "Maxwell",
    (6, None): "Pascal",
    (7, 0): "Volta",
    (7, 2): "Volta",
    (7, 5): "Turing",
    (8, 9): "Ada Lovelace",
    (8, None): "Ampere",
    (9, None): "Hopper",
    (10, None): "Blackwell",
    (11, None): "Blackwell",
    (12, None): "Blackwell",
}


@dataclass(frozen=True, slots=True)
class KafkaCoords:
    """Where a record was read from."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: str | None = None


def decode_clock_event_reasons(mask: int | None) -> list[str] | None:
    """Bit mask -> reason names; unknown bits appear as ``bit_0x...``."""
    if mask is None:
        return None
    names: list[str] = []
    for bit in range(64):
        flag = 1 << bit
        if mask & flag:
            names.append(CLOCK_EVENT_REASONS.get(flag, f"bit_{flag:#x}"))
    return names


def architecture_from_compute_capability(cc: str | None) -> str | None:
    """``"9.0"`` -> ``"Hopper"``; ``None`` when unknown."""
    if not cc:
        return None
    major_s, _, minor_s = cc.partition(".")
    try:
        major, minor = int(major_s), int(minor_s or 0)
    except ValueError:
        return None
    return _ARCH_BY_CC.get((major, minor)) or _ARCH_BY_CC.get((major, None))


def _pct(part: float | None, whole: float | None) -> float | None:
    if part is None or not whole:
        return None
    return round(100.0 * part / whole, 2)


def memory_used_pct(acc: Accelerator) -> float | None:
    """Used memory as a percentage of total."""
    return _pct(acc.memory_used_bytes, acc.memory_total_bytes)


def power_pct_of_limit(acc: Accelerator) -> float | None:
    """Power draw as a percentage of the enforced limit."""
    return _pct(acc.power_draw_w, acc.power_limit_w)


def normalised_units(acc: Accelerator) -> dict[str, float]:
    """The same quantities in the units people read on dashboards."""
    out: dict[str, float] = {}
    if acc.memory_total_bytes is not None:
        out["memory_total_gib"] = round(acc.memory_total_bytes / GIB, 3)
    if acc.memory_used_bytes is not None:
        out["memory_used_gib"] = round(acc.memory_used_bytes / GIB, 3)
    if acc.energy_total_mj is not None:
        out["energy_total_kwh"] = round(acc.energy_total_mj / MJ_PER_KWH, 6)
    return out


def health_flags(acc: Accelerator, reasons: list[str] | None) -> dict[str, bool]:
    """Flags an operator alerts on; ``healthy`` is true when none of them is raised."""
    active = set(reasons or [])
    temps = [t for t in (acc.temperature_gpu_c, acc.temperature_memory_c) if t is not None]
    flags = {
        "thermal_throttled": bool(active & _THERMAL_REASONS),
        "overheating": any(t >= THERMAL_WARN_C for t in temps),
        "power_capped": bool(active & _POWER_REASONS),
        "hw_slowdown": "hw_slowdown" in active,
        "ecc_uncorrected": bool(acc.ecc_errors_uncorrected_volatile),
        "row_remap_trouble": bool(acc.remapped_rows_pending or acc.remapped_rows_failure),
    }
    # power capping under load is normal operation, not a fault
    faults = {k: v for k, v in flags.items() if k != "power_capped"}
    flags["healthy"] = not any(faults.values())
    return flags


def derived_fields(acc: Accelerator) -> dict[str, Any]:
    """Everything the worker adds to one accelerator."""
    reasons = decode_clock_event_reasons(acc.clock_event_reasons_mask)
    derived: dict[str, Any] = {
        "architecture": acc.architecture or architecture_from_compute_capability(acc.compute_capability),
        "memory_used_pct": memory_used_pct(acc),
        "power_pct_of_limit": power_pct_of_limit(acc),
        "clock_event_reasons": reasons,
        "health": health_flags(acc, reasons),
        **normalised_units(acc),
    }
    return {k: v for k, v in derived.items() if v is not None}


def to_millis(value: dt.datetime) -> dt.datetime:
    """UTC, truncated to whole milliseconds."""
    value = value.astimezone(dt.UTC)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def _ms_between(start: dt.datetime, end: dt.datetime) -> float:
    return round((end - start).total_seconds() * 1000, 3)


def ingest_lag(
    collected_at: dt.datetime, kafka_time: dt.datetime, processed_at: dt.datetime
) -> dict[str, float]:
    """Milliseconds spent in each leg; negative values mean the producer's clock runs ahead."""
    return {
        "collect_to_kafka_ms": _ms_between(collected_at, kafka_time),
        "kafka_to_processed_ms": _ms_between(kafka_time, processed_at),
        "collect_to_processed_ms": _ms_between(collected_at, processed_at),
    }


def kafka_time(coords: KafkaCoords) -> dt.datetime:
    """The record's timestamp (set when the API published it) as a UTC datetime."""
    return dt.datetime.fromtimestamp(coords.timestamp_ms / 1000, dt.UTC)


def enrich(event: GpuMetadataEvent, coords: KafkaCoords, processed_at: dt.datetime) -> dict[str, Any]:
    """The ``gpu_metadata`` document for one event; ``_id`` is the event id (dedup key)."""
    if event.event_id is None:
        raise ValueError("event_id is missing: the API assigns one before publishing")
    event_id = str(event.event_id)
    collected_at = to_millis(event.collected_at)
    published_at = kafka_time(coords)
    processed_at = to_millis(processed_at)
    doc: dict[str, Any] = event.model_dump(mode="json", exclude_none=True)
    doc["_id"] = event_id
    doc["collected_at"] = collected_at
    accelerators = []
    for acc, acc_doc in zip(event.accelerators, doc.get("accelerators", []), strict=True):
        acc_doc["derived"] = derived_fields(acc)
        accelerators.append(acc_doc)
    doc["accelerators"] = accelerators
    doc["summary"] = host_summary(accelerators)
    doc["ingest"] = {
        "published_at": published_at,
        "processed_at": processed_at,
        **ingest_lag(collected_at, published_at, processed_at),
    }
    doc["kafka"] = {
        "topic": coords.topic,
        "partition": coords.partition,
        "offset": coords.offset,
        "key": coords.key,
    }
    return doc


def host_summary(accelerators: list[dict[str, Any]]) -> dict[str, Any]:
    """Host-level roll-up of the enriched accelerators."""

    def values(field: str) -> list[float]:
        return [a[field] for a in accelerators if a.get(field) is not None]

    temps, power, util = (
        values("temperature_gpu_c"),
        values("power_draw_w"),
        values("utilization_gpu_pct"),
    )
    return {
        "accelerator_count": len(accelerators),
        "healthy": all(a["derived"]["health"]["healthy"] for a in accelerators),
        "max_temperature_gpu_c": max(temps) if temps else None,
        "total_power_draw_w": round(sum(power), 3) if power else None,
        "mean_utilization_gpu_pct": round(sum(util) / len(util), 2) if util else None,
    }


_DEVICE_LAST_FIELDS = (
    "utilization_gpu_pct",
    "utilization_memory_pct",
    "memory_used_bytes",
    "memory_total_bytes",
    "temperature_gpu_c",
    "power_draw_w",
    "power_limit_w",
    "pstate",
)


def device_states(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """``gpu_devices`` latest-state documents (one per accelerator uuid) from an enriched event."""
    source = doc.get("source", {})
    states = []
    for acc in doc.get("accelerators", []):
        derived = acc.get("derived", {})
        states.append(
            {
                "_id": acc["uuid"],
                "uuid": acc["uuid"],
                "kind": acc["kind"],
                "name": acc["name"],
                "index": acc["index"],
                "architecture": derived.get("architecture"),
                "serial": acc.get("serial"),
                "host": source.get("host"),
                "provider": source.get("provider"),
                "session_id": source.get("session_id"),
                "last_seen_at": doc["collected_at"],
                "last_event_id": doc["_id"],
                "last": {
                    **{f: acc[f] for f in _DEVICE_LAST_FIELDS if f in acc},
                    "memory_used_pct": derived.get("memory_used_pct"),
                    "power_pct_of_limit": derived.get("power_pct_of_limit"),
                    "health": derived.get("health"),
                },
            }
        )
    return states


def latest_per_device(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Newest state per device across a batch (by ``collected_at``), so each is written once."""
    latest: dict[str, dict[str, Any]] = {}
    for doc in docs:
        for state in device_states(doc):
            current = latest.get(state["_id"])
            if current is None or state["last_seen_at"] > current["last_seen_at"]:
                latest[state["_id"]] = state
    return list(latest.values())
