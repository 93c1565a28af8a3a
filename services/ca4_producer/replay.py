"""Replay sources: captured readings turned into version-1 events, for tests and demos.

``nvml-series.json`` (see ``tests/fixtures/gpu/h200``) holds what ``nvidia-ml-py`` read on
a real H200, idle and under load. Replaying it gives demos and tests the exact values a
live collector would send. A reading NVML refused appears as ``{"error": "..."}``: that
field becomes null and is named in ``unsupported``.

``ReplaySource`` plays any capture (NVML JSON, ``nvidia-smi -q -x`` XML, ``nvidia-smi -q``
text, ``--query-gpu`` CSV) through the same ``Collector`` a live host uses, so a notebook
or a test runs the real code path without a GPU. Replayed readings carry their origin
(file and snapshot) so they are never mistaken for live data.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ca4_events.schema import Accelerator, GpuMetadataEvent, Process, Source
from ca4_producer import nvidia_smi, readings
from ca4_producer.readings import FieldReader, Reading, build_event, cuda_version_from_int

NVML_SERIES = "nvml-series.json"


def _unsupported(value: Any) -> bool:
    return isinstance(value, Mapping) and "error" in value


def _take(r: FieldReader, field: str, value: Any, convert: Callable[[Any], Any] | None = None) -> None:
    if value is None:
        return
    if _unsupported(value):
        r.mark_unsupported(field)
        return
    r.put(field, convert(value) if convert else value)


def _compute_capability(value: Any) -> str:
    return readings.nvml_compute_capability(value) if isinstance(value, list) else str(value)


# event field <- where an NVML capture holds it ("key" of the device, or "section/key"), converted
_CAPTURED: tuple[tuple[str, str, Callable[[Any], Any] | None], ...] = (
    ("serial", "serial", None),
    ("pci_bus_id", "pci_bus_id", None),
    ("compute_capability", "compute_capability", _compute_capability),
    ("pstate", "pstate", readings.nvml_pstate),
    ("persistence_mode", "persistence_mode", bool),
    ("compute_mode", "compute_mode", readings.nvml_compute_mode),
    ("mig_mode", "mig_mode", readings.nvml_current_mode),
    ("ecc_mode", "ecc_mode", readings.nvml_current_mode),
    ("memory_total_bytes", "memory/total", None),
    ("memory_used_bytes", "memory/used", None),
    ("memory_free_bytes", "memory/free", None),
    ("utilization_gpu_pct", "utilization/gpu", None),
    ("utilization_memory_pct", "utilization/memory", None),
    ("temperature_gpu_c", "temperature_gpu_c", None),
    ("temperature_memory_c", "temperature_memory_c", None),
    ("power_draw_w", "power_usage_mw", readings.milli_to_unit),
    ("power_limit_w", "power_limit_mw", readings.milli_to_unit),
    ("energy_total_mj", "energy_mj", None),
    ("clock_sm_mhz", "clocks_mhz/sm", None),
    ("clock_memory_mhz", "clocks_mhz/mem", None),
    ("clock_graphics_mhz", "clocks_mhz/graphics", None),
    ("clock_sm_max_mhz", "clocks_mhz/max_sm", None),
    ("clock_memory_max_mhz", "clocks_mhz/max_mem", None),
    ("clock_event_reasons_mask", "throttle_reasons", None),
    ("ecc_errors_corrected_volatile", "ecc_errors_corrected_volatile", None),
    ("ecc_errors_uncorrected_volatile", "ecc_errors_uncorrected_volatile", None),
    ("pcie_link_gen", "pcie_link_gen", None),
    ("pcie_link_width", "pcie_link_width", None),
    ("fan_speed_pct", "fan_speed_pct", None),
)


def accelerator_from_nvml(dev: Mapping[str, Any]) -> Accelerator:
    """One NVML device reading -> an ``Accelerator``."""
    r = FieldReader()
    mem = dev.get("memory") or {}
    util = dev.get("utilization") or {}
    clocks = dev.get("clocks_mhz") or {}
    if _unsupported(mem):
        r.mark_unsupported("memory_total_bytes", "memory_used_bytes", "memory_free_bytes")
        mem = {}
    if _unsupported(util):
        r.mark_unsupported("utilization_gpu_pct", "utilization_memory_pct")
        util = {}
    sections = {"memory": mem, "utilization": util, "clocks_mhz": clocks}
    for field, where, convert in _CAPTURED:
        section, _, key = where.rpartition("/")
        _take(r, field, (sections[section] if section else dev).get(key), convert)
    processes = [
        Process(pid=p["pid"], name=p.get("name"), used_memory_bytes=p.get("used_gpu_memory"))
        for p in dev.get("processes") or []
    ]
    return r.accelerator(
        processes=processes, kind="gpu", index=dev["index"], uuid=dev["uuid"], name=dev["name"]
    )


Loader = Callable[[], Reading]


def _nvml_reading(path_name: str, phase: str, i: int, snap: Mapping[str, Any], torch: str | None) -> Reading:
    return Reading(
        source="replay",
        accelerators=tuple(accelerator_from_nvml(d) for d in snap["devices"]),
        driver_version=snap.get("driver_version"),
        nvml_version=snap.get("nvml_version"),
        cuda_driver_version=cuda_version_from_int(snap.get("cuda_driver_version")),
        frameworks={"torch": torch} if torch else {},
        origin=f"{path_name}#{phase}[{i}]",
    )


def _nvml_series(path: Path) -> list[tuple[dt.datetime, str, Loader]]:
    """(capture time, phase, loader) per snapshot of an ``nvml-series.json`` capture, idle first."""
    data = json.loads(path.read_text())
    torch = (data.get("torch_device") or {}).get("torch")
    return [
        (
            dt.datetime.fromtimestamp(snap["captured_at"], dt.UTC),
            phase.removeprefix("phase_"),
            functools.partial(_nvml_reading, path.name, phase.removeprefix("phase_"), i, snap, torch),
        )
        for phase in ("phase_idle", "phase_load")
        for i, snap in enumerate(data.get(phase, []))
    ]


def nvml_series_loaders(path: Path) -> list[tuple[dt.datetime, Loader]]:
    """One loader per snapshot of an ``nvml-series.json`` capture (idle first), with its capture time."""
    return [(at, load) for at, _, load in _nvml_series(path)]


def nvml_series_readings(path: Path) -> list[tuple[dt.datetime, Reading]]:
    """Every snapshot of an ``nvml-series.json`` capture, idle phase first, with its capture time."""
    return [(at, load()) for at, load in nvml_series_loaders(path)]


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
    snapshots = _nvml_series(path)
    shift = dt.timedelta(0)
    if now is not None and snapshots:
        shift = now - max(at for at, _, _ in snapshots)
    for at, phase, load in snapshots:
        yield build_event(
            [load()],
            source=source,
            collected_at=at + shift,
            workload={"phase": phase, **(workload or {})},
        )


def _smi_parser(path: Path) -> Callable[[], nvidia_smi.SmiReport]:
    """Parses an nvidia-smi capture (XML, text or CSV) again at each call."""
    name = path.name
    if name.endswith(".xml"):
        return functools.partial(nvidia_smi.parse_xml, path.read_bytes())
    if name.endswith(".txt"):
        return functools.partial(nvidia_smi.parse_text, path.read_text())
    if name.startswith("query-gpu") and name.endswith(".csv"):
        apps = path.with_name(name.replace("query-gpu", "query-compute-apps", 1))
        return functools.partial(
            nvidia_smi.parse_query_gpu_csv, path.read_text(), apps.read_text() if apps.exists() else None
        )
    raise ValueError(f"{path}: not a capture this replay knows (NVML JSON, nvidia-smi XML/text/CSV)")


def capture_loaders(path: Path) -> list[Loader]:
    """Loaders for one capture file, whatever its format.

    ``*.json``: an NVML series; ``*.xml``: ``nvidia-smi -q -x``; ``*.txt``: ``nvidia-smi -q``;
    ``query-gpu*.csv``: ``--query-gpu`` (joined with ``query-compute-apps<same suffix>.csv``
    from the same folder when present). A ``query-compute-apps`` CSV alone holds no device.
    Each loader parses the captured text again, so replaying costs what the live source's
    parsing costs (only the device query itself is missing).
    """
    if path.name.endswith(".json"):
        return [load for _, load in nvml_series_loaders(path)]
    parse = _smi_parser(path)
    return [lambda: parse().reading("replay", origin=path.name)]


def capture_readings(path: Path) -> list[tuple[dt.datetime | None, Reading]]:
    """Readings from one capture file (see ``capture_loaders``), with the capture time when known."""
    if path.name.endswith(".json"):
        return list(nvml_series_readings(path))
    report = _smi_parser(path)()
    return [(report.collected_at(), report.reading("replay", origin=path.name))]


def capture_files(folder: Path) -> list[Path]:
    """The replayable captures in ``folder``: the NVML series when present, else XML, text, CSV."""
    if (folder / NVML_SERIES).exists():
        return [folder / NVML_SERIES]
    for pattern in ("*.xml", "*.txt", "query-gpu*.csv"):
        found = sorted(folder.glob(pattern))
        if found:
            return found
    return []


class ReplaySource:
    """Plays captured readings in order, one per ``read()``, starting over after the last."""

    name = "replay"

    def __init__(self, loaders: Sequence[Loader]) -> None:
        if not loaders:
            raise ValueError("a replay needs at least one captured snapshot")
        self.loaders = tuple(loaders)
        self._next = itertools.cycle(self.loaders)

    @classmethod
    def from_path(cls, path: Path | str) -> ReplaySource:
        """A folder (see ``capture_files``) or one capture file."""
        path = Path(path)
        files = capture_files(path) if path.is_dir() else [path]
        if not files:
            raise FileNotFoundError(
                f"{path} holds no capture (nvml-series.json, *.xml, *.txt, query-gpu*.csv)"
            )
        return cls([load for f in files for load in capture_loaders(f)])

    def __len__(self) -> int:
        return len(self.loaders)

    def read(self) -> Reading:
        """The next captured snapshot, parsed now."""
        return next(self._next)()

    def close(self) -> None:
        """Nothing to release."""
