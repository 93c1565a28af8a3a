"""nvidia-smi parsers (XML, text, CSV) on every real H200 capture, and the live nvidia-smi source."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import pytest

from ca4_events.schema import GpuMetadataEvent, Source
from ca4_producer import nvidia_smi
from ca4_producer.collector import Collector
from ca4_producer.nvidia_smi import (
    NvidiaSmiSource,
    parse_query_csv,
    parse_query_gpu_csv,
    parse_text,
    parse_xml,
)
from ca4_producer.readings import MIB, SourceUnavailable, build_event
from ca4_producer.replay import capture_readings
from tests.unit.producer.fake_pynvml import FakeNvml, NVMLError_LibraryNotFound, load_series

H200_UUID = "GPU-bfb5ba6a-db8e-fc7b-5fdc-aeabcd37bce1"
CAPTURES = [
    "nvidia-smi-q.xml",
    "nvidia-smi-q-load.xml",
    "nvidia-smi-q.txt",
    "query-gpu-idle.csv",
    "query-gpu-load.csv",
    "nvml-series.json",
]


@pytest.mark.parametrize("name", CAPTURES)
def test_every_capture_parses_into_valid_events(h200_dir: Path, name: str) -> None:
    readings = capture_readings(h200_dir / name)
    expected_snapshots = 6 if name.endswith(".json") else 1
    assert len(readings) == expected_snapshots, (
        f"{name}: expected {expected_snapshots} snapshot(s), found {len(readings)}"
    )
    source = Source(provider="onprem", host="h200-capture")
    for at, reading in readings:
        event = build_event([reading], source=source, collected_at=at or dt.datetime.now(dt.UTC))
        # what the API does with the body: validate the JSON a producer sends
        again = GpuMetadataEvent.model_validate_json(event.model_dump_json(exclude_none=True))
        assert [a.uuid for a in again.accelerators] == [H200_UUID], f"{name}: uuid {again.accelerators}"
        assert again.accelerators[0].name == "NVIDIA H200"


def test_the_xml_of_the_idle_h200(h200_dir: Path) -> None:
    report = parse_xml((h200_dir / "nvidia-smi-q.xml").read_bytes())
    assert (report.driver_version, report.cuda_version) == ("580.159.04", "13.0")
    assert report.collected_at() == dt.datetime(2026, 11, 28, 2, 42, 19, tzinfo=dt.UTC)
    (acc,) = report.accelerators
    expected = {
        "serial": "1653724064797",
        "pci_bus_id": "00000000:00:06.0",
        "architecture": "Hopper",
        "pstate": "P0",
        "persistence_mode": True,
        "compute_mode": "Default",
        "mig_mode": False,
        "ecc_mode": True,
        "memory_total_bytes": 143771 * MIB,
        "memory_free_bytes": 143156 * MIB,
        # used = total - free (NVML's meaning, reserved memory included), not the XML's <used> 0 MiB
        "memory_used_bytes": (143771 - 143156) * MIB,
        "utilization_gpu_pct": 0,
        "temperature_gpu_c": 37,
        "temperature_memory_c": 37,
        "power_draw_w": 123.38,  # <average_power_draw>, like NVML and the CSV's power.draw
        "power_limit_w": 700.0,
        "clock_sm_mhz": 405,
        "clock_memory_mhz": 3201,
        "clock_sm_max_mhz": 1980,
        "clock_event_reasons_mask": 0x1,  # only clocks_event_reason_gpu_idle is Active
        "ecc_errors_corrected_volatile": 0,
        "remapped_rows_pending": False,
        "pcie_link_gen": 5,
        "pcie_link_width": 16,
    }
    found = {k: getattr(acc, k) for k in expected}
    assert found == expected, f"nvidia-smi-q.xml: expected {expected}, found {found}"
    assert acc.processes == []


def test_the_xml_under_load_shows_power_cap_and_the_process(h200_dir: Path) -> None:
    (acc,) = parse_xml((h200_dir / "nvidia-smi-q-load.xml").read_bytes()).accelerators
    assert (acc.utilization_gpu_pct, acc.utilization_memory_pct) == (99, 25)
    assert acc.clock_event_reasons_mask == 0x4, (
        f"sw_power_cap is Active under load; found {acc.clock_event_reasons_mask:#x}"
    )
    assert (acc.power_draw_w, acc.temperature_gpu_c, acc.clock_sm_mhz) == (690.35, 60, 1530)
    assert [(p.pid, p.name, p.used_memory_bytes) for p in acc.processes] == [(417, "python3", 1002 * MIB)]


def test_na_is_unsupported_but_an_absent_element_is_only_unknown(h200_dir: Path) -> None:
    (acc,) = parse_xml((h200_dir / "nvidia-smi-q.xml").read_bytes()).accelerators
    assert acc.fan_speed_pct is None and acc.unsupported == ["fan_speed_pct"], (
        f"<fan_speed>N/A</fan_speed> must be listed as unsupported; unsupported={acc.unsupported}"
    )
    # the XML (DTD v13) has no compute capability at all: unknown, not "the device cannot report it"
    assert acc.compute_capability is None and "compute_capability" not in acc.unsupported
    assert acc.energy_total_mj is None and "energy_total_mj" not in acc.unsupported


def test_the_text_report_reads_like_the_xml(h200_dir: Path) -> None:
    (text,) = parse_text((h200_dir / "nvidia-smi-q.txt").read_text()).accelerators
    (xml,) = parse_xml((h200_dir / "nvidia-smi-q.xml").read_bytes()).accelerators
    # the same GPU, same idle state; `nvidia-smi -q` ran a moment apart, so sensors moved a little
    instant = {"temperature_gpu_c", "power_draw_w"}
    same = set(type(xml).model_fields) - instant
    differs = {f: (getattr(xml, f), getattr(text, f)) for f in same if getattr(xml, f) != getattr(text, f)}
    assert not differs, f"fields that differ between the XML and the text report (xml, text): {differs}"
    assert (text.temperature_gpu_c, text.power_draw_w) == (36, 117.75)


def test_the_text_report_lists_processes() -> None:
    # the captured text is idle ("Processes : None"); this is the shape nvidia-smi prints under load
    text = """
Driver Version                            : 580.159.04
GPU 00000000:00:06.0
    Product Name                          : NVIDIA H200
    GPU UUID                              : GPU-bfb5ba6a-db8e-fc7b-5fdc-aeabcd37bce1
    Fan Speed                             : N/A
    Processes
        GPU instance ID                   : N/A
        Compute instance ID               : N/A
        Process ID                        : 417
            Type                          : C
            Name                          : python3
            Used GPU Memory               : 1002 MiB
"""
    (acc,) = parse_text(text).accelerators
    assert [(p.pid, p.name, p.used_memory_bytes) for p in acc.processes] == [(417, "python3", 1002 * MIB)]
    assert acc.unsupported == ["fan_speed_pct"]


@pytest.mark.parametrize(
    ("name", "util", "mask", "power", "processes"),
    [
        ("query-gpu-idle.csv", 0, 0x1, 114.93, []),
        ("query-gpu-load.csv", 99, 0x4, 690.69, [(417, "python3", 1002 * MIB)]),
    ],
)
def test_the_query_gpu_csv(
    h200_dir: Path, *, name: str, util: float, mask: int, power: float, processes: list[tuple[int, str, int]]
) -> None:
    path = h200_dir / name
    apps = h200_dir / "query-compute-apps-load.csv"
    report = parse_query_gpu_csv(path.read_text(), apps.read_text() if "load" in name else None)
    (acc,) = report.accelerators
    assert report.driver_version == "580.159.04"
    found = (acc.utilization_gpu_pct, acc.clock_event_reasons_mask, acc.power_draw_w, acc.compute_capability)
    assert found == (util, mask, power, "9.0"), (
        f"{name}: expected {(util, mask, power, '9.0')}, found {found}"
    )
    assert [(p.pid, p.name, p.used_memory_bytes) for p in acc.processes] == processes
    assert acc.fan_speed_pct is None and acc.unsupported == ["fan_speed_pct"], "fan.speed is [N/A] in the CSV"


def test_csv_header_units_are_stripped_and_values_kept_raw(h200_dir: Path) -> None:
    (row,) = parse_query_csv((h200_dir / "query-gpu-idle.csv").read_text())
    assert row["memory.total"] == "143771 MiB", f"found {row.get('memory.total')!r}"
    assert row["fan.speed"] == "[N/A]"
    assert row["clocks_event_reasons.active"] == "0x0000000000000001"


def test_older_drivers_throttle_reason_tags_are_read() -> None:
    # drivers before 535 print clocks_throttle_reasons/clocks_throttle_reason_*; same bits
    xml = """<nvidia_smi_log><driver_version>525.1</driver_version><gpu id="0">
      <product_name>NVIDIA A100</product_name><uuid>GPU-a</uuid>
      <clocks_throttle_reasons>
        <clocks_throttle_reason_gpu_idle>Not Active</clocks_throttle_reason_gpu_idle>
        <clocks_throttle_reason_sw_power_cap>Active</clocks_throttle_reason_sw_power_cap>
        <clocks_throttle_reason_hw_slowdown>Active</clocks_throttle_reason_hw_slowdown>
      </clocks_throttle_reasons>
      <power_readings><power_draw>250.5 W</power_draw><power_limit>[N/A]</power_limit></power_readings>
    </gpu></nvidia_smi_log>"""
    (acc,) = parse_xml(xml).accelerators
    assert acc.clock_event_reasons_mask == 0x4 | 0x8
    assert acc.power_draw_w == 250.5 and acc.unsupported == ["power_limit_w"]


# --- the live nvidia-smi source, with nvidia-smi's answers taken from the captures ----------


class CapturedSmi:
    """Answers nvidia-smi command lines from the H200 captures (the CSV projected on the asked columns)."""

    def __init__(self, h200_dir: Path, xml: str = "nvidia-smi-q.xml") -> None:
        self.dir = h200_dir
        self.xml = xml
        self.calls: list[list[str]] = []
        self.fail: Exception | None = None  # raised by every call while set (a hung or failing nvidia-smi)

    def __call__(self, argv: Sequence[str], timeout_s: float) -> str:
        self.calls.append(list(argv))
        assert timeout_s > 0, "every nvidia-smi call must be bounded"
        if self.fail is not None:
            raise self.fail
        if list(argv[1:]) == ["-q", "-x"]:
            return (self.dir / self.xml).read_text()
        query = next(a for a in argv if a.startswith("--query-gpu="))
        columns = query.removeprefix("--query-gpu=").split(",")
        (row,) = parse_query_csv((self.dir / "query-gpu-idle.csv").read_text())
        return ", ".join(columns) + "\n" + ", ".join(row[c] for c in columns) + "\n"


def test_the_smi_source_reads_the_xml_and_fills_compute_capability(h200_dir: Path) -> None:
    smi = CapturedSmi(h200_dir, xml="nvidia-smi-q-load.xml")
    source = NvidiaSmiSource.open("/usr/bin/nvidia-smi", smi)
    first, second = source.read(), source.read()
    (acc,) = second.accelerators
    assert acc.compute_capability == "9.0", "compute_cap comes from --query-gpu, the XML has none"
    assert (first.driver_version, first.cuda_driver_version) == ("580.159.04", "13.0")
    assert acc.utilization_gpu_pct == 99
    expected = [["--query-gpu=uuid,compute_cap", "--format=csv"], ["-q", "-x"], ["-q", "-x"]]
    assert [c[1:] for c in smi.calls] == expected, (
        f"compute capability is static and asked once, then one -q -x per snapshot; calls were {smi.calls}"
    )


def test_an_smi_without_driver_leaves_a_cpu_only_collector(h200_dir: Path) -> None:
    def no_driver(argv: Sequence[str], timeout_s: float) -> str:
        raise SourceUnavailable("nvidia-smi exited 9: NVIDIA-SMI has failed because it couldn't communicate")

    with pytest.raises(SourceUnavailable, match="couldn't communicate"):
        NvidiaSmiSource.open("/usr/bin/nvidia-smi", no_driver)
    nvml = FakeNvml(load_series(h200_dir / "nvml-series.json"), init_error=NVMLError_LibraryNotFound())
    collector = Collector.detect(
        nvml_module=nvml, smi_binary="/usr/bin/nvidia-smi", smi_run=no_driver, tpu=False
    )
    event = collector.snapshot().event
    assert event.accelerators == [], "no NVML and no working nvidia-smi: a CPU-only snapshot"
    assert any("couldn't communicate" in why for why in collector.skipped), collector.skipped


def test_run_command_reports_failures_and_bounds_time() -> None:
    with pytest.raises(SourceUnavailable, match="exited 3"):
        nvidia_smi.run_command(["sh", "-c", "echo broken >&2; exit 3"], timeout_s=5)
    with pytest.raises(SourceUnavailable, match="timed out"):
        nvidia_smi.run_command(["sleep", "5"], timeout_s=0.2)
