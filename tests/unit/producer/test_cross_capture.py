"""One H200, three tools: the same quantity must agree across the XML, CSV and NVML captures.

The captures were taken seconds apart (idle XML/CSV at 02:42:19, NVML idle at 02:42:20 UTC;
NVML under load 02:42:28-32, XML/CSV under load at 02:42:33), so identity and configuration
must match exactly, while sensors are compared where the GPU was in a steady state.

Tolerances, and why:

- memory totals: exact. nvidia-smi prints ``fb_memory_usage/total`` in MiB, and NVML's
  total is 150 754 820 096 bytes = 143 771 MiB exactly. (The reserved 616 MiB is not
  missing from nvidia-smi's total, it is missing from its ``used``.)
- memory used: NVML's ``used`` counts driver-reserved memory, nvidia-smi's ``<used>`` does
  not. ``total - free`` (what the collector sends from every source) agrees with NVML within
  1 MiB, because nvidia-smi rounds ``free`` to a whole MiB; ``<used> + <reserved>`` agrees
  within 2 MiB, because both of those are rounded.
- utilization under load: the bf16 matmul held the GPU at 99-100 % in all five NVML
  snapshots; the XML and CSV, taken one second later, must fall in that range (± 1 %).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from ca4_events.schema import Accelerator
from ca4_producer.nvidia_smi import parse_query_csv, parse_query_gpu_csv, parse_text, parse_xml
from ca4_producer.readings import MIB
from ca4_producer.replay import nvml_series_readings


def _nvml(h200_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((h200_dir / "nvml-series.json").read_text())
    return data


def _xml_gpu(h200_dir: Path, name: str) -> ET.Element:
    gpu = ET.parse(h200_dir / name).getroot().find("gpu")  # noqa: S314 - our own fixture
    assert gpu is not None, f"{name} has no <gpu>"
    return gpu


def _mib(text: str | None) -> int:
    assert text is not None
    return int(text.split()[0])


@pytest.fixture
def parsed(h200_dir: Path) -> dict[str, Accelerator]:
    """The single H200 accelerator as each parser sees it, by capture."""
    apps = (h200_dir / "query-compute-apps-load.csv").read_text()
    nvml = nvml_series_readings(h200_dir / "nvml-series.json")
    return {
        "xml-idle": parse_xml((h200_dir / "nvidia-smi-q.xml").read_bytes()).accelerators[0],
        "xml-load": parse_xml((h200_dir / "nvidia-smi-q-load.xml").read_bytes()).accelerators[0],
        "text-idle": parse_text((h200_dir / "nvidia-smi-q.txt").read_text()).accelerators[0],
        "csv-idle": parse_query_gpu_csv((h200_dir / "query-gpu-idle.csv").read_text()).accelerators[0],
        "csv-load": parse_query_gpu_csv((h200_dir / "query-gpu-load.csv").read_text(), apps).accelerators[0],
        "nvml-idle": nvml[0][1].accelerators[0],
        **{f"nvml-load-{i}": r.accelerators[0] for i, (_, r) in enumerate(nvml[1:])},
    }


def test_uuid_serial_and_bus_id_are_one_device_everywhere(parsed: dict[str, Accelerator]) -> None:
    identities = {k: (a.uuid, a.serial, a.pci_bus_id, a.name) for k, a in parsed.items()}
    expected = (
        "GPU-bfb5ba6a-db8e-fc7b-5fdc-aeabcd37bce1",
        "1653724064797",
        "00000000:00:06.0",
        "NVIDIA H200",
    )
    wrong = {k: v for k, v in identities.items() if v != expected}
    assert not wrong, f"expected {expected} in every capture; differing: {wrong}"


def test_memory_total_is_the_same_number_of_bytes(h200_dir: Path, parsed: dict[str, Accelerator]) -> None:
    nvml_total = _nvml(h200_dir)["phase_idle"][0]["devices"][0]["memory"]["total"]
    xml_total_mib = _mib(_xml_gpu(h200_dir, "nvidia-smi-q.xml").findtext("fb_memory_usage/total"))
    (csv_row,) = parse_query_csv((h200_dir / "query-gpu-idle.csv").read_text())
    assert nvml_total == 150_754_820_096 and xml_total_mib == 143_771 == _mib(csv_row["memory.total"])
    assert nvml_total == xml_total_mib * MIB, (
        f"NVML total {nvml_total} B should be exactly nvidia-smi's {xml_total_mib} MiB "
        f"= {xml_total_mib * MIB} B"
    )
    totals = {k: a.memory_total_bytes for k, a in parsed.items()}
    assert set(totals.values()) == {nvml_total}, f"memory_total_bytes by capture: {totals}"


@pytest.mark.parametrize(
    ("xml_name", "nvml_phase"), [("nvidia-smi-q.xml", "idle"), ("nvidia-smi-q-load.xml", "load")]
)
def test_memory_used_agrees_once_reserved_memory_is_counted(
    h200_dir: Path, parsed: dict[str, Accelerator], xml_name: str, nvml_phase: str
) -> None:
    fb = _xml_gpu(h200_dir, xml_name).find("fb_memory_usage")
    assert fb is not None
    used, reserved = _mib(fb.findtext("used")), _mib(fb.findtext("reserved"))
    nvml_used = _nvml(h200_dir)[f"phase_{nvml_phase}"][-1]["devices"][0]["memory"]["used"]
    assert abs((used + reserved) * MIB - nvml_used) <= 2 * MIB, (
        f"{xml_name}: used {used} + reserved {reserved} MiB vs NVML used {nvml_used / MIB:.3f} MiB "
        "(tolerance 2 MiB)"
    )
    event_used = parsed[f"xml-{nvml_phase}"].memory_used_bytes
    assert event_used is not None and abs(event_used - nvml_used) <= MIB, (
        f"memory_used_bytes from {xml_name} is {event_used}, NVML says {nvml_used} (tolerance 1 MiB)"
    )


def test_power_limit_is_700_w_everywhere(parsed: dict[str, Accelerator]) -> None:
    limits = {k: a.power_limit_w for k, a in parsed.items()}
    assert set(limits.values()) == {700.0}, f"power_limit_w by capture: {limits}"


def test_compute_capability_agrees_where_it_is_reported(
    h200_dir: Path, parsed: dict[str, Accelerator]
) -> None:
    torch = _nvml(h200_dir)["torch_device"]
    from_torch = f"{torch['major']}.{torch['minor']}"
    reported = {k: a.compute_capability for k, a in parsed.items() if not k.startswith(("xml", "text"))}
    assert set(reported.values()) == {from_torch} == {"9.0"}, (
        f"compute capability: torch {from_torch}, {reported}"
    )
    # `nvidia-smi -q` has no compute capability (XML DTD v13 or text): the live source asks the CSV
    assert {parsed[k].compute_capability for k in ("xml-idle", "xml-load", "text-idle")} == {None}


def test_utilization_under_load_agrees(parsed: dict[str, Accelerator]) -> None:
    nvml = [a.utilization_gpu_pct for k, a in parsed.items() if k.startswith("nvml-load")]
    assert all(u is not None for u in nvml) and len(nvml) == 5
    low, high = min(u for u in nvml if u is not None), max(u for u in nvml if u is not None)
    assert (low, high) == (99, 100), f"NVML under load: {nvml}"
    for key in ("xml-load", "csv-load"):
        util = parsed[key].utilization_gpu_pct
        assert util is not None and low - 1 <= util <= high + 1, (
            f"{key}: {util} % outside NVML's {low}-{high} % ± 1"
        )
    assert parsed["xml-load"].utilization_memory_pct == parsed["csv-load"].utilization_memory_pct == 25


def test_clock_event_reasons_say_idle_then_power_capped(parsed: dict[str, Accelerator]) -> None:
    masks = {k: a.clock_event_reasons_mask for k, a in parsed.items()}
    expected = {k: 0x1 if k.endswith("idle") else 0x4 for k in parsed}
    assert masks == expected, f"expected GpuIdle (0x1) idle, SwPowerCap (0x4) under load; found {masks}"


def test_the_loaded_process_holds_the_same_memory(parsed: dict[str, Accelerator]) -> None:
    procs = {k: [(p.pid, p.used_memory_bytes) for p in a.processes] for k, a in parsed.items() if "load" in k}
    # nvidia-smi prints 1002 MiB; NVML reports 1 050 673 152 B = exactly 1002 MiB
    assert set(map(tuple, procs.values())) == {((417, 1002 * MIB),)}, f"processes under load: {procs}"
