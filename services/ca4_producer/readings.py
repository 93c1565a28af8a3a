"""What every accelerator source shares: the field collector, unit tables and the reading type.

A source (NVML, ``nvidia-smi``, JAX, a replayed capture) turns whatever the device tells it
into ``Accelerator`` models. Three outcomes per field are kept apart on purpose:

- a value: stored;
- the device said it cannot report the field (NVML ``NotSupported``, nvidia-smi ``N/A``):
  null and named in ``unsupported``;
- the source never carried the field, or a read failed for a passing reason: null, and not
  named, because nobody knows whether the device supports it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ca4_events.schema import Accelerator, GpuMetadataEvent, HostInfo, Process, Software, Source

MIB = 1 << 20

# nvidia-smi's spellings of "this device cannot report that" (XML, text and CSV outputs)
NOT_AVAILABLE = frozenset({"n/a", "[n/a]", "not supported", "[not supported]"})

# NVML clocks-event (formerly "throttle") reason bits, with the names nvidia-smi uses for them:
# (bit, XML tag suffix, `nvidia-smi -q` label). The XML tags are clocks_event_reason_<suffix>
# (driver >= 535) or clocks_throttle_reason_<suffix> (older drivers).
CLOCK_EVENT_REASONS: tuple[tuple[int, str, str], ...] = (
    (0x001, "gpu_idle", "Idle"),
    (0x002, "applications_clocks_setting", "Applications Clocks Setting"),
    (0x004, "sw_power_cap", "SW Power Cap"),
    (0x008, "hw_slowdown", "HW Slowdown"),
    (0x010, "sync_boost", "Sync Boost"),
    (0x020, "sw_thermal_slowdown", "SW Thermal Slowdown"),
    (0x040, "hw_thermal_slowdown", "HW Thermal Slowdown"),
    (0x080, "hw_power_brake_slowdown", "HW Power Brake Slowdown"),
    (0x100, "display_clocks_setting", "Display Clock Setting"),
)

# nvmlDeviceArchitecture_t -> the name nvidia-smi prints as product_architecture
NVML_ARCHITECTURES: Mapping[int, str] = {
    2: "Kepler",
    3: "Maxwell",
    4: "Pascal",
    5: "Volta",
    6: "Turing",
    7: "Ampere",
    8: "Ada Lovelace",
    9: "Hopper",
    10: "Blackwell",
}

# nvmlComputeMode_t, spelled as nvidia-smi prints it
NVML_COMPUTE_MODES: Mapping[int, str] = {
    0: "Default",
    1: "Exclusive_Thread",
    2: "Prohibited",
    3: "Exclusive_Process",
}


def nvml_pstate(raw: Any) -> str | None:
    """NVML's performance state as nvidia-smi prints it ("P0".."P15"); 32 is NVML_PSTATE_UNKNOWN."""
    value = int(raw)
    return f"P{value}" if 0 <= value <= 15 else None


def nvml_compute_mode(raw: Any) -> str:
    """nvmlComputeMode_t spelled as nvidia-smi spells it."""
    return NVML_COMPUTE_MODES.get(int(raw), str(raw))


def nvml_compute_capability(raw: Sequence[Any]) -> str:
    """(major, minor) -> "major.minor"."""
    return f"{int(raw[0])}.{int(raw[1])}"


def nvml_current_mode(raw: Sequence[Any]) -> bool:
    """MIG and ECC modes come back as (current, pending); the event carries the current one."""
    return bool(raw[0])


def milli_to_unit(raw: Any) -> float:
    """NVML reports power in milliwatts; the event in watts."""
    return float(raw) / 1000


def is_not_available(raw: str | None) -> bool:
    """True when nvidia-smi printed one of its "cannot report" spellings."""
    return raw is not None and raw.strip().lower() in NOT_AVAILABLE


class FieldReader:
    """Collects one accelerator's fields and the names of those the device could not report."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.unsupported: set[str] = set()
        # fields whose read failed for a passing reason this time (null, not unsupported)
        self.failed: set[str] = set()

    def put(self, name: str, value: Any) -> None:
        """Store a value (``None`` means unknown, and is not marked unsupported)."""
        self.values[name] = value

    def mark_unsupported(self, *names: str) -> None:
        """The device cannot report these fields: null, and named in ``unsupported``."""
        for name in names:
            self.values[name] = None
            self.unsupported.add(name)

    def mark_failed(self, *names: str) -> None:
        """A read failed for a passing reason: null now, and worth asking again next time."""
        for name in names:
            self.values[name] = None
            self.failed.add(name)

    def accelerator(self, processes: Iterable[Process] = (), **identity: Any) -> Accelerator:
        """Build the validated model; ``identity`` holds kind, index, uuid and name."""
        fields = {k: v for k, v in self.values.items() if v is not None}
        return Accelerator(
            processes=list(processes),
            unsupported=sorted(self.unsupported),
            **identity,
            **fields,
        )


@dataclass(frozen=True)
class Reading:
    """What one source read in one pass: devices plus the driver and library versions."""

    source: str
    accelerators: tuple[Accelerator, ...] = ()
    driver_version: str | None = None
    cuda_driver_version: str | None = None
    nvml_version: str | None = None
    frameworks: Mapping[str, str] = field(default_factory=dict)
    # where a replayed reading came from (file and snapshot), so a demo never passes for live data
    origin: str | None = None


class SourceUnavailable(Exception):
    """A source cannot run here (no library, no binary, no device); the message says why."""


def cuda_version_from_int(raw: Any) -> str | None:
    """NVML reports the CUDA driver version as ``1000 * major + 10 * minor`` (13000 -> "13.0")."""
    if not isinstance(raw, int) or isinstance(raw, bool) or raw <= 0:
        return None
    return f"{raw // 1000}.{(raw % 1000) // 10}"


def build_event(
    readings: Sequence[Reading],
    *,
    source: Source,
    collected_at: dt.datetime,
    host: HostInfo | None = None,
    workload: Mapping[str, Any] | None = None,
    frameworks: Mapping[str, str] | None = None,
) -> GpuMetadataEvent:
    """One event from the readings of one pass (GPU and TPU sources together)."""
    first = next((r for r in readings if r.driver_version or r.nvml_version), None)
    framework = {**(frameworks or {})}
    for reading in readings:
        framework.update(reading.frameworks)
    software = Software(
        driver_version=first.driver_version if first else None,
        cuda_driver_version=first.cuda_driver_version if first else None,
        nvml_version=first.nvml_version if first else None,
        framework=framework,
    )
    return GpuMetadataEvent(
        collected_at=collected_at,
        source=source,
        host=host,
        software=software,
        accelerators=[a for r in readings for a in r.accelerators],
        workload=dict(workload) if workload is not None else None,
    )
