"""Replay source: turn captured NVML readings into version-1 events.

``nvml-series.json`` (see ``tests/fixtures/gpu/h200``) holds what ``nvidia-ml-py`` read on
a real H200, idle and under load. Replaying it gives demos and tests the exact values a
live collector would send. A reading NVML refused appears as ``{"error": "..."}``: that
field becomes null and is named in ``unsupported``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ca4_events.schema import Accelerator, GpuMetadataEvent, Process, Software, Source

# NVML's nvmlComputeMode_t
_COMPUTE_MODES = {0: "Default", 1: "Exclusive_Thread", 2: "Prohibited", 3: "Exclusive_Process"}


def _unsupported(value: Any) -> bool:
    return isinstance(value, Mapping) and "error" in value


class _Reader:
    """Reads NVML values, recording which event fields the device could not report."""

    def __init__(self) -> None:
        self.unsupported: list[str] = []

    def take(self, field: str, value: Any, convert: Any = None) -> Any:
        if value is None:
            return None
        if _unsupported(value):
            self.unsupported.append(field)
            return None
        return convert(value) if convert else value


def _cuda_version(raw: Any) -> str | None:
    # NVML reports the CUDA driver version as 1000 * major + 10 * minor (13000 -> "13.0")
    if not isinstance(raw, int):
        return None
    return f"{raw // 1000}.{(raw % 1000) // 10}"


def accelerator_from_nvml(dev: Mapping[str, Any]) -> Accelerator:
    """One NVML device reading -> an ``Accelerator``."""
    r = _Reader()
    mem = dev.get("memory") or {}
    util = dev.get("utilization") or {}
    clocks = dev.get("clocks_mhz") or {}
    if _unsupported(mem):
        r.unsupported += ["memory_total_bytes", "memory_used_bytes", "memory_free_bytes"]
        mem = {}
    if _unsupported(util):
        r.unsupported += ["utilization_gpu_pct", "utilization_memory_pct"]
        util = {}
    cc = dev.get("compute_capability")
    fields: dict[str, Any] = {
        "kind": "gpu",
        "index": dev["index"],
        "uuid": dev["uuid"],
        "name": dev["name"],
        "serial": r.take("serial", dev.get("serial")),
        "pci_bus_id": r.take("pci_bus_id", dev.get("pci_bus_id")),
        "compute_capability": r.take(
            "compute_capability", cc, lambda v: f"{v[0]}.{v[1]}" if isinstance(v, list) else str(v)
        ),
        "pstate": r.take("pstate", dev.get("pstate"), lambda v: f"P{int(v)}"),
        "persistence_mode": r.take("persistence_mode", dev.get("persistence_mode"), bool),
        "compute_mode": r.take(
            "compute_mode", dev.get("compute_mode"), lambda v: _COMPUTE_MODES.get(int(v), str(v))
        ),
        # NVML returns [current, pending] for MIG and ECC modes
        "mig_mode": r.take("mig_mode", dev.get("mig_mode"), lambda v: bool(v[0])),
        "ecc_mode": r.take("ecc_mode", dev.get("ecc_mode"), lambda v: bool(v[0])),
        "memory_total_bytes": r.take("memory_total_bytes", mem.get("total")),
        "memory_used_bytes": r.take("memory_used_bytes", mem.get("used")),
        "memory_free_bytes": r.take("memory_free_bytes", mem.get("free")),
        "utilization_gpu_pct": r.take("utilization_gpu_pct", util.get("gpu")),
        "utilization_memory_pct": r.take("utilization_memory_pct", util.get("memory")),
        "temperature_gpu_c": r.take("temperature_gpu_c", dev.get("temperature_gpu_c")),
        "temperature_memory_c": r.take("temperature_memory_c", dev.get("temperature_memory_c")),
        "power_draw_w": r.take("power_draw_w", dev.get("power_usage_mw"), lambda v: v / 1000),
        "power_limit_w": r.take("power_limit_w", dev.get("power_limit_mw"), lambda v: v / 1000),
        "energy_total_mj": r.take("energy_total_mj", dev.get("energy_mj")),
        "clock_sm_mhz": r.take("clock_sm_mhz", clocks.get("sm")),
        "clock_memory_mhz": r.take("clock_memory_mhz", clocks.get("mem")),
        "clock_graphics_mhz": r.take("clock_graphics_mhz", clocks.get("graphics")),
        "clock_sm_max_mhz": r.take("clock_sm_max_mhz", clocks.get("max_sm")),
        "clock_memory_max_mhz": r.take("clock_memory_max_mhz", clocks.get("max_mem")),
        "clock_event_reasons_mask": r.take("clock_event_reasons_mask", dev.get("throttle_reasons")),
        "ecc_errors_corrected_volatile": r.take(
            "ecc_errors_corrected_volatile", dev.get("ecc_errors_corrected_volatile")
        ),
        "ecc_errors_uncorrected_volatile": r.take(
            "ecc_errors_uncorrected_volatile", dev.get("ecc_errors_uncorrected_volatile")
        ),
        "pcie_link_gen": r.take("pcie_link_gen", dev.get("pcie_link_gen")),
        "pcie_link_width": r.take("pcie_link_width", dev.get("pcie_link_width")),
        "fan_speed_pct": r.take("fan_speed_pct", dev.get("fan_speed_pct")),
    }
    processes = [
        Process(pid=p["pid"], name=p.get("name"), used_memory_bytes=p.get("used_gpu_memory"))
        for p in dev.get("processes") or []
    ]
    return Accelerator(processes=processes, unsupported=sorted(set(r.unsupported)), **fields)


def events_from_nvml_series(
    path: Path,
    source: Source,
    *,
    now: dt.datetime | None = None,
    workload: dict[str, Any] | None = None,
) -> Iterator[GpuMetadataEvent]:
    """Yield one event per snapshot of an ``nvml-series.json`` capture, idle phase first.

    With ``now``, timestamps are shifted so the last snapshot was taken at ``now`` and the
    spacing between snapshots is kept: a demo then measures a real ingest lag.
    """
    data = json.loads(path.read_text())
    torch = (data.get("torch_device") or {}).get("torch")
    snapshots: list[tuple[str, Mapping[str, Any]]] = [
        (phase.removeprefix("phase_"), snap)
        for phase in ("phase_idle", "phase_load")
        for snap in data.get(phase, [])
    ]
    shift = 0.0
    if now is not None and snapshots:
        shift = now.timestamp() - max(s["captured_at"] for _, s in snapshots)
    for phase, snap in snapshots:
        software = Software(
            driver_version=snap.get("driver_version"),
            nvml_version=snap.get("nvml_version"),
            cuda_driver_version=_cuda_version(snap.get("cuda_driver_version")),
            framework={"torch": torch} if torch else {},
        )
        yield GpuMetadataEvent(
            collected_at=dt.datetime.fromtimestamp(snap["captured_at"] + shift, dt.UTC),
            source=source,
            software=software,
            accelerators=[accelerator_from_nvml(d) for d in snap["devices"]],
            workload={"phase": phase, **(workload or {})},
        )
