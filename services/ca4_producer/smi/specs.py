"""Where each event field is printed in nvidia-smi's outputs, and how its text becomes a value.

One ``Spec`` per field names its XML path, its ``-q`` text path and its ``--query-gpu``
name; the three parsers (``xml_format``, ``text_format``, ``csv_format``) read the same table,
so a field is added in one place. ECC counters, printed per memory kind, are tables of
their own (``ECC_XML``, ``ECC_TEXT``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ca4_producer.readings import MIB

# --- value converters: raw nvidia-smi text -> typed value (ValueError when unparsable) -----


def as_str(raw: str) -> str:
    return raw


def as_number(raw: str) -> float:
    # "123.38 W", "37 C", "0 %", "16x", "0x0000000000000004"
    token = raw.split(maxsplit=1)[0]
    if token.lower().startswith("0x"):
        return float(int(token, 16))
    return float(token.removesuffix("x"))


def as_int(raw: str) -> int:
    value = as_number(raw)
    if not value.is_integer():
        raise ValueError(f"{raw!r} is not a whole number")
    return int(value)


def as_enabled(raw: str) -> bool:
    low = raw.strip().lower()
    if low in ("enabled", "yes", "active", "on"):
        return True
    if low in ("disabled", "no", "not active", "off"):
        return False
    raise ValueError(f"{raw!r} is neither enabled nor disabled")


def as_pstate(raw: str) -> str:
    if not re.fullmatch(r"P\d{1,2}", raw.strip()):
        raise ValueError(f"{raw!r} is not a performance state")
    return raw.strip()


def as_mib(raw: str) -> int:
    return as_int(raw) * MIB


# a format's lookup: the first of the given paths the output prints, as text; None if none is
Lookup = Callable[[Sequence[str]], str | None]


@dataclass(frozen=True)
class Spec:
    """Where one event field lives in each output: XML paths, text paths and ``--query-gpu`` names.

    The first one found wins (older drivers' names after the newer ones); an empty tuple
    means that output does not carry the field in this form.
    """

    field: str
    xml: tuple[str, ...] = ()
    text: tuple[str, ...] = ()
    csv: tuple[str, ...] = ()
    convert: Callable[[str], Any] = as_str


# power: average_power_draw is what NVML's power usage and the CSV's power.draw report on
# Ampere and newer (a 1 s average); drivers before 535 printed power_readings/power_draw.
# The XML and text outputs carry the ECC counters per memory kind and the clock-event
# reasons one by one (see ECC_XML and fields.read_fields); the CSV carries their totals.
SPECS: tuple[Spec, ...] = (
    Spec("serial", xml=("serial",), text=("Serial Number",), csv=("serial",), convert=as_str),
    Spec("pci_bus_id", xml=("pci/pci_bus_id",), text=("PCI/Bus Id",), csv=("pci.bus_id",), convert=as_str),
    Spec("architecture", xml=("product_architecture",), text=("Product Architecture",), convert=as_str),
    Spec(
        "pstate", xml=("performance_state",), text=("Performance State",), csv=("pstate",), convert=as_pstate
    ),
    Spec(
        "persistence_mode",
        xml=("persistence_mode",),
        text=("Persistence Mode",),
        csv=("persistence_mode",),
        convert=as_enabled,
    ),
    Spec(
        "compute_mode", xml=("compute_mode",), text=("Compute Mode",), csv=("compute_mode",), convert=as_str
    ),
    Spec(
        "mig_mode",
        xml=("mig_mode/current_mig",),
        text=("MIG Mode/Current",),
        csv=("mig.mode.current",),
        convert=as_enabled,
    ),
    Spec(
        "ecc_mode",
        xml=("ecc_mode/current_ecc",),
        text=("ECC Mode/Current",),
        csv=("ecc.mode.current",),
        convert=as_enabled,
    ),
    Spec(
        "utilization_gpu_pct",
        xml=("utilization/gpu_util",),
        text=("Utilization/GPU",),
        csv=("utilization.gpu",),
        convert=as_number,
    ),
    Spec(
        "utilization_memory_pct",
        xml=("utilization/memory_util",),
        text=("Utilization/Memory",),
        csv=("utilization.memory",),
        convert=as_number,
    ),
    Spec(
        "temperature_gpu_c",
        xml=("temperature/gpu_temp",),
        text=("Temperature/GPU Current Temp",),
        csv=("temperature.gpu",),
        convert=as_number,
    ),
    Spec(
        "temperature_memory_c",
        xml=("temperature/memory_temp",),
        text=("Temperature/Memory Current Temp",),
        csv=("temperature.memory",),
        convert=as_number,
    ),
    Spec(
        "power_draw_w",
        xml=(
            "gpu_power_readings/average_power_draw",
            "gpu_power_readings/power_draw",
            "power_readings/power_draw",
        ),
        text=(
            "GPU Power Readings/Average Power Draw",
            "GPU Power Readings/Power Draw",
            "Power Readings/Power Draw",
        ),
        csv=("power.draw.average", "power.draw"),
        convert=as_number,
    ),
    Spec(
        "power_limit_w",
        xml=(
            "gpu_power_readings/current_power_limit",
            "gpu_power_readings/power_limit",
            "power_readings/power_limit",
        ),
        text=(
            "GPU Power Readings/Current Power Limit",
            "GPU Power Readings/Power Limit",
            "Power Readings/Power Limit",
        ),
        csv=("power.limit",),
        convert=as_number,
    ),
    Spec("fan_speed_pct", xml=("fan_speed",), text=("Fan Speed",), csv=("fan.speed",), convert=as_number),
    Spec(
        "clock_sm_mhz",
        xml=("clocks/sm_clock",),
        text=("Clocks/SM",),
        csv=("clocks.current.sm", "clocks.sm"),
        convert=as_int,
    ),
    Spec(
        "clock_memory_mhz",
        xml=("clocks/mem_clock",),
        text=("Clocks/Memory",),
        csv=("clocks.current.memory", "clocks.mem"),
        convert=as_int,
    ),
    Spec(
        "clock_graphics_mhz",
        xml=("clocks/graphics_clock",),
        text=("Clocks/Graphics",),
        csv=("clocks.current.graphics", "clocks.gr"),
        convert=as_int,
    ),
    Spec(
        "clock_sm_max_mhz",
        xml=("max_clocks/sm_clock",),
        text=("Max Clocks/SM",),
        csv=("clocks.max.sm",),
        convert=as_int,
    ),
    Spec(
        "clock_memory_max_mhz",
        xml=("max_clocks/mem_clock",),
        text=("Max Clocks/Memory",),
        csv=("clocks.max.memory", "clocks.max.mem"),
        convert=as_int,
    ),
    Spec(
        "remapped_rows_correctable",
        xml=("remapped_rows/remapped_row_corr",),
        text=("Remapped Rows/Correctable Error",),
        csv=(),
        convert=as_int,
    ),
    Spec(
        "remapped_rows_uncorrectable",
        xml=("remapped_rows/remapped_row_unc",),
        text=("Remapped Rows/Uncorrectable Error",),
        csv=(),
        convert=as_int,
    ),
    Spec(
        "remapped_rows_pending",
        xml=("remapped_rows/remapped_row_pending",),
        text=("Remapped Rows/Pending",),
        csv=(),
        convert=as_enabled,
    ),
    Spec(
        "remapped_rows_failure",
        xml=("remapped_rows/remapped_row_failure",),
        text=("Remapped Rows/Remapping Failure Occurred",),
        csv=(),
        convert=as_enabled,
    ),
    Spec(
        "pcie_link_gen",
        xml=("pci/pci_gpu_link_info/pcie_gen/current_link_gen",),
        text=("PCI/GPU Link Info/PCIe Generation/Current",),
        csv=("pcie.link.gen.current", "pcie.link.gen.gpucurrent"),
        convert=as_int,
    ),
    Spec(
        "pcie_link_width",
        xml=("pci/pci_gpu_link_info/link_widths/current_link_width",),
        text=("PCI/GPU Link Info/Link Width/Current",),
        csv=("pcie.link.width.current",),
        convert=as_int,
    ),
    Spec("compute_capability", csv=("compute_cap",), convert=as_str),
    Spec(
        "clock_event_reasons_mask",
        csv=("clocks_event_reasons.active", "clocks_throttle_reasons.active"),
        convert=as_int,
    ),
    Spec("ecc_errors_corrected_volatile", csv=("ecc.errors.corrected.volatile.total",), convert=as_int),
    Spec("ecc_errors_uncorrected_volatile", csv=("ecc.errors.uncorrected.volatile.total",), convert=as_int),
    Spec("ecc_errors_corrected_aggregate", csv=("ecc.errors.corrected.aggregate.total",), convert=as_int),
    Spec("ecc_errors_uncorrected_aggregate", csv=("ecc.errors.uncorrected.aggregate.total",), convert=as_int),
)

# ECC counters are printed per memory kind; the event carries their sum. Each entry lists
# layouts (driver 535+ SRAM/DRAM split, then the older single/double-bit totals); the first
# layout with any element present is summed. Names are XML element names; the text format
# prints the same elements under the titles in _ECC_TEXT_NAMES.
_CORRECTABLE = ("sram_correctable", "dram_correctable")
_UNCORRECTABLE = (
    "sram_uncorrectable_parity",
    "sram_uncorrectable_secded",
    "sram_uncorrectable",
    "dram_uncorrectable",
)
_ECC_KINDS = (
    ("ecc_errors_corrected_volatile", "volatile", _CORRECTABLE, "single_bit"),
    ("ecc_errors_uncorrected_volatile", "volatile", _UNCORRECTABLE, "double_bit"),
    ("ecc_errors_corrected_aggregate", "aggregate", _CORRECTABLE, "single_bit"),
    ("ecc_errors_uncorrected_aggregate", "aggregate", _UNCORRECTABLE, "double_bit"),
)
_ECC_TEXT_NAMES = {
    "ecc_errors": "ECC Errors",
    "volatile": "Volatile",
    "aggregate": "Aggregate",
    "sram_correctable": "SRAM Correctable",
    "dram_correctable": "DRAM Correctable",
    "sram_uncorrectable_parity": "SRAM Uncorrectable Parity",
    "sram_uncorrectable_secded": "SRAM Uncorrectable SEC-DED",
    "sram_uncorrectable": "SRAM Uncorrectable",
    "dram_uncorrectable": "DRAM Uncorrectable",
    "single_bit": "Single Bit",
    "double_bit": "Double Bit",
    "total": "Total",
}


def _ecc_layouts(text: bool) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    def path(*parts: str) -> str:
        return "/".join(_ECC_TEXT_NAMES[p] if text else p for p in parts)

    return {
        field: (
            tuple(path("ecc_errors", scope, part) for part in parts),
            (path("ecc_errors", scope, legacy, "total"),),
        )
        for field, scope, parts, legacy in _ECC_KINDS
    }


ECC_XML = _ecc_layouts(text=False)
ECC_TEXT = _ecc_layouts(text=True)
