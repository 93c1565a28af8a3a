"""``nvidia-smi`` as a source: its XML (``-q -x``), text (``-q``) and CSV (``--query-*``) outputs.

The collector falls back to ``nvidia-smi -q -x`` when NVML cannot be imported: the XML holds
nearly everything NVML reports. Two differences matter and are handled here:

- memory is printed in whole MiB; ``fb_memory_usage/used`` leaves out the memory the driver
  reserves (616 MiB on the H200), whereas NVML's ``used`` includes it. The event follows
  NVML (used = total - free), so the same GPU gives the same ``memory_used_bytes`` from
  either source, to within the MiB rounding of ``free``;
- the XML has no compute capability; the live source asks ``--query-gpu=uuid,compute_cap``
  once and fills it in.

A value printed as ``N/A`` / ``[N/A]`` / ``[Not Supported]`` is null and named in
``unsupported``; an element that is absent (another driver version) is just null.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ca4_events.schema import Accelerator, Process
from ca4_producer.readings import (
    CLOCK_EVENT_REASONS,
    MIB,
    FieldReader,
    Reading,
    SourceUnavailable,
    is_not_available,
)

# --- value converters: raw nvidia-smi text -> typed value (ValueError when unparsable) -----


def _str(raw: str) -> str:
    return raw


def _number(raw: str) -> float:
    # "123.38 W", "37 C", "0 %", "16x", "0x0000000000000004"
    token = raw.split(maxsplit=1)[0]
    if token.lower().startswith("0x"):
        return float(int(token, 16))
    return float(token.removesuffix("x"))


def _int(raw: str) -> int:
    value = _number(raw)
    if not value.is_integer():
        raise ValueError(f"{raw!r} is not a whole number")
    return int(value)


def _enabled(raw: str) -> bool:
    low = raw.strip().lower()
    if low in ("enabled", "yes", "active", "on"):
        return True
    if low in ("disabled", "no", "not active", "off"):
        return False
    raise ValueError(f"{raw!r} is neither enabled nor disabled")


def _pstate(raw: str) -> str:
    if not re.fullmatch(r"P\d{1,2}", raw.strip()):
        raise ValueError(f"{raw!r} is not a performance state")
    return raw.strip()


def _mib(raw: str) -> int:
    return _int(raw) * MIB


# --- one lookup function per format --------------------------------------------------------

Lookup = Callable[[Sequence[str]], str | None]


@dataclass(frozen=True)
class _Spec:
    """Where one event field lives in each output: XML paths, text paths and ``--query-gpu`` names.

    The first one found wins (older drivers' names after the newer ones); an empty tuple
    means that output does not carry the field in this form.
    """

    field: str
    xml: tuple[str, ...] = ()
    text: tuple[str, ...] = ()
    csv: tuple[str, ...] = ()
    convert: Callable[[str], Any] = _str


# power: average_power_draw is what NVML's power usage and the CSV's power.draw report on
# Ampere and newer (a 1 s average); drivers before 535 printed power_readings/power_draw.
# The XML and text outputs carry the ECC counters per memory kind and the clock-event
# reasons one by one (see _ECC_XML and _read_fields); the CSV carries their totals.
_SPECS: tuple[_Spec, ...] = (
    _Spec("serial", xml=("serial",), text=("Serial Number",), csv=("serial",), convert=_str),
    _Spec("pci_bus_id", xml=("pci/pci_bus_id",), text=("PCI/Bus Id",), csv=("pci.bus_id",), convert=_str),
    _Spec("architecture", xml=("product_architecture",), text=("Product Architecture",), convert=_str),
    _Spec(
        "pstate", xml=("performance_state",), text=("Performance State",), csv=("pstate",), convert=_pstate
    ),
    _Spec(
        "persistence_mode",
        xml=("persistence_mode",),
        text=("Persistence Mode",),
        csv=("persistence_mode",),
        convert=_enabled,
    ),
    _Spec("compute_mode", xml=("compute_mode",), text=("Compute Mode",), csv=("compute_mode",), convert=_str),
    _Spec(
        "mig_mode",
        xml=("mig_mode/current_mig",),
        text=("MIG Mode/Current",),
        csv=("mig.mode.current",),
        convert=_enabled,
    ),
    _Spec(
        "ecc_mode",
        xml=("ecc_mode/current_ecc",),
        text=("ECC Mode/Current",),
        csv=("ecc.mode.current",),
        convert=_enabled,
    ),
    _Spec(
        "utilization_gpu_pct",
        xml=("utilization/gpu_util",),
        text=("Utilization/GPU",),
        csv=("utilization.gpu",),
        convert=_number,
    ),
    _Spec(
        "utilization_memory_pct",
        xml=("utilization/memory_util",),
        text=("Utilization/Memory",),
        csv=("utilization.memory",),
        convert=_number,
    ),
    _Spec(
        "temperature_gpu_c",
        xml=("temperature/gpu_temp",),
        text=("Temperature/GPU Current Temp",),
        csv=("temperature.gpu",),
        convert=_number,
    ),
    _Spec(
        "temperature_memory_c",
        xml=("temperature/memory_temp",),
        text=("Temperature/Memory Current Temp",),
        csv=("temperature.memory",),
        convert=_number,
    ),
    _Spec(
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
        convert=_number,
    ),
    _Spec(
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
        convert=_number,
    ),
    _Spec("fan_speed_pct", xml=("fan_speed",), text=("Fan Speed",), csv=("fan.speed",), convert=_number),
    _Spec(
        "clock_sm_mhz",
        xml=("clocks/sm_clock",),
        text=("Clocks/SM",),
        csv=("clocks.current.sm", "clocks.sm"),
        convert=_int,
    ),
    _Spec(
        "clock_memory_mhz",
        xml=("clocks/mem_clock",),
        text=("Clocks/Memory",),
        csv=("clocks.current.memory", "clocks.mem"),
        convert=_int,
    ),
    _Spec(
        "clock_graphics_mhz",
        xml=("clocks/graphics_clock",),
        text=("Clocks/Graphics",),
        csv=("clocks.current.graphics", "clocks.gr"),
        convert=_int,
    ),
    _Spec(
        "clock_sm_max_mhz",
        xml=("max_clocks/sm_clock",),
        text=("Max Clocks/SM",),
        csv=("clocks.max.sm",),
        convert=_int,
    ),
    _Spec(
        "clock_memory_max_mhz",
        xml=("max_clocks/mem_clock",),
        text=("Max Clocks/Memory",),
        csv=("clocks.max.memory", "clocks.max.mem"),
        convert=_int,
    ),
    _Spec(
        "remapped_rows_correctable",
        xml=("remapped_rows/remapped_row_corr",),
        text=("Remapped Rows/Correctable Error",),
        csv=(),
        convert=_int,
    ),
    _Spec(
        "remapped_rows_uncorrectable",
        xml=("remapped_rows/remapped_row_unc",),
        text=("Remapped Rows/Uncorrectable Error",),
        csv=(),
        convert=_int,
    ),
    _Spec(
        "remapped_rows_pending",
        xml=("remapped_rows/remapped_row_pending",),
        text=("Remapped Rows/Pending",),
        csv=(),
        convert=_enabled,
    ),
    _Spec(
        "remapped_rows_failure",
        xml=("remapped_rows/remapped_row_failure",),
        text=("Remapped Rows/Remapping Failure Occurred",),
        csv=(),
        convert=_enabled,
    ),
    _Spec(
        "pcie_link_gen",
        xml=("pci/pci_gpu_link_info/pcie_gen/current_link_gen",),
        text=("PCI/GPU Link Info/PCIe Generation/Current",),
        csv=("pcie.link.gen.current", "pcie.link.gen.gpucurrent"),
        convert=_int,
    ),
    _Spec(
        "pcie_link_width",
        xml=("pci/pci_gpu_link_info/link_widths/current_link_width",),
        text=("PCI/GPU Link Info/Link Width/Current",),
        csv=("pcie.link.width.current",),
        convert=_int,
    ),
    _Spec("compute_capability", csv=("compute_cap",), convert=_str),
    _Spec(
        "clock_event_reasons_mask",
        csv=("clocks_event_reasons.active", "clocks_throttle_reasons.active"),
        convert=_int,
    ),
    _Spec("ecc_errors_corrected_volatile", csv=("ecc.errors.corrected.volatile.total",), convert=_int),
    _Spec("ecc_errors_uncorrected_volatile", csv=("ecc.errors.uncorrected.volatile.total",), convert=_int),
    _Spec("ecc_errors_corrected_aggregate", csv=("ecc.errors.corrected.aggregate.total",), convert=_int),
    _Spec("ecc_errors_uncorrected_aggregate", csv=("ecc.errors.uncorrected.aggregate.total",), convert=_int),
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


_ECC_XML = _ecc_layouts(text=False)
_ECC_TEXT = _ecc_layouts(text=True)


def _put(r: FieldReader, field: str, raw: str | None, convert: Callable[[str], Any]) -> None:
    if raw is None:
        return  # this output does not carry the field
    if is_not_available(raw):
        r.mark_unsupported(field)
        return
    try:
        r.put(field, convert(raw))
    except (ValueError, IndexError):
        r.mark_failed(field)  # printed, but not in a shape we know: unknown, not unsupported


def _put_memory(r: FieldReader, total: str | None, free: str | None) -> None:
    """Memory in bytes, with used = total - free as NVML counts it (the printed "used" leaves
    out reserved memory; see the module docstring)."""
    if total is None or free is None:
        return
    memory_fields = ("memory_total_bytes", "memory_used_bytes", "memory_free_bytes")
    if is_not_available(total) or is_not_available(free):
        r.mark_unsupported(*memory_fields)
        return
    try:
        total_b, free_b = _mib(total), _mib(free)
    except (ValueError, IndexError):
        r.mark_failed(*memory_fields)
        return
    r.put("memory_total_bytes", total_b)
    r.put("memory_free_bytes", free_b)
    r.put("memory_used_bytes", max(total_b - free_b, 0))


def _read_fields(r: FieldReader, lookup: Lookup, text_format: bool) -> None:
    for spec in _SPECS:
        paths = spec.text if text_format else spec.xml
        if paths:
            _put(r, spec.field, lookup(paths), spec.convert)
    _put_memory(
        r,
        lookup(("FB Memory Usage/Total",) if text_format else ("fb_memory_usage/total",)),
        lookup(("FB Memory Usage/Free",) if text_format else ("fb_memory_usage/free",)),
    )

    for field, layouts in (_ECC_TEXT if text_format else _ECC_XML).items():
        _put_sum(r, field, lookup, layouts)

    reasons = [
        (bit, lookup((f"Clocks Event Reasons/{label}", f"Clocks Throttle Reasons/{label}")))
        if text_format
        else (
            bit,
            lookup(
                (
                    f"clocks_event_reasons/clocks_event_reason_{suffix}",
                    f"clocks_throttle_reasons/clocks_throttle_reason_{suffix}",
                )
            ),
        )
        for bit, suffix, label in CLOCK_EVENT_REASONS
    ]
    present = [(bit, raw) for bit, raw in reasons if raw is not None]
    if present and all(is_not_available(raw) for _, raw in present):
        r.mark_unsupported("clock_event_reasons_mask")
    elif present:
        r.put("clock_event_reasons_mask", sum(bit for bit, raw in present if raw.strip().lower() == "active"))


def _put_sum(r: FieldReader, field: str, lookup: Lookup, layouts: Sequence[Sequence[str]]) -> None:
    for parts in layouts:
        raws = [lookup((p,)) for p in parts]
        present = [raw for raw in raws if raw is not None]
        if not present:
            continue
        if all(is_not_available(raw) for raw in present):
            r.mark_unsupported(field)
            return
        try:
            r.put(field, sum(_int(raw) for raw in present if not is_not_available(raw)))
        except (ValueError, IndexError):
            r.mark_failed(field)
        return


# --- nvidia-smi -q -x -----------------------------------------------------------------------


@dataclass(frozen=True)
class SmiReport:
    """One nvidia-smi output, parsed: the accelerators and the versions it printed."""

    accelerators: tuple[Accelerator, ...]
    driver_version: str | None = None
    cuda_version: str | None = None
    timestamp: str | None = None

    def collected_at(self) -> dt.datetime | None:
        """The printed timestamp, read as UTC (nvidia-smi prints the host's local time without a zone)."""
        if not self.timestamp:
            return None
        for fmt in ("%a %b %d %H:%M:%S %Y", "%Y/%m/%d %H:%M:%S.%f"):
            try:
                return dt.datetime.strptime(self.timestamp.strip(), fmt).replace(tzinfo=dt.UTC)
            except ValueError:
                continue
        return None

    def reading(self, source: str, origin: str | None = None) -> Reading:
        """As a collector ``Reading``."""
        return Reading(
            source=source,
            accelerators=self.accelerators,
            driver_version=self.driver_version,
            cuda_driver_version=self.cuda_version,
            origin=origin,
        )


def _clean(raw: str | None) -> str | None:
    return None if raw is None else raw.strip()


def parse_xml(text: str | bytes) -> SmiReport:
    """Parse ``nvidia-smi -q -x``; every ``<gpu>`` becomes an ``Accelerator``, in the printed order."""
    # The input is nvidia-smi's own output on this host (or a capture of it). ElementTree never
    # fetches the external DTD it names and expands no external entities.
    root = ET.fromstring(text)  # noqa: S314
    accelerators = []
    for index, gpu in enumerate(root.findall("gpu")):

        def lookup(paths: Sequence[str], gpu: ET.Element = gpu) -> str | None:
            for path in paths:
                found = gpu.find(path)
                if found is not None:
                    return (found.text or "").strip()
            return None

        r = FieldReader()
        _read_fields(r, lookup, text_format=False)
        processes = [
            Process(
                pid=int(_clean(p.findtext("pid")) or 0),
                name=_clean(p.findtext("process_name")) or None,
                used_memory_bytes=_mib_or_none(p.findtext("used_memory")),
            )
            for p in gpu.findall("processes/process_info")
        ]
        accelerators.append(
            r.accelerator(
                processes=processes,
                kind="gpu",
                index=index,
                uuid=lookup(("uuid",)) or f"GPU-{gpu.get('id', index)}",
                name=lookup(("product_name",)) or "NVIDIA GPU",
            )
        )
    return SmiReport(
        accelerators=tuple(accelerators),
        driver_version=_clean(root.findtext("driver_version")),
        cuda_version=_clean(root.findtext("cuda_version")),
        timestamp=_clean(root.findtext("timestamp")),
    )


def _mib_or_none(raw: str | None) -> int | None:
    if raw is None or is_not_available(raw):
        return None
    try:
        return _mib(raw)
    except (ValueError, IndexError):
        return None


# --- nvidia-smi -q (text) --------------------------------------------------------------------

_KEY_VALUE = re.compile(r"^(?P<key>.+?)\s+:\s?(?P<value>.*)$")


def _text_tree(text: str) -> dict[str, Any]:
    """Indented ``Key : value`` lines -> nested dicts; a repeated key collects its values in a list."""
    root: dict[str, Any] = {}
    stack: list[tuple[int, dict[str, Any]]] = [(-1, root)]
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("="):
            continue
        indent = len(line) - len(line.lstrip(" "))
        while stack[-1][0] >= indent:
            stack.pop()
        parent = stack[-1][1]
        match = _KEY_VALUE.match(line.strip())
        if match:
            _add(parent, match["key"].strip(), match["value"].strip())
        else:
            # a section header ("PCI", "GPU 00000000:00:06.0"); lines indented deeper than a
            # valued line (e.g. "HW Thermal Slowdown" under "HW Slowdown") stay its siblings
            child: dict[str, Any] = {}
            _add(parent, line.strip(), child)
            stack.append((indent, child))
    return root


def _add(parent: dict[str, Any], key: str, value: Any) -> None:
    if key not in parent:
        parent[key] = value
    elif isinstance(parent[key], list):
        parent[key].append(value)
    else:
        parent[key] = [parent[key], value]


def _tree_get(tree: Mapping[str, Any], path: str) -> Any:
    node: Any = tree
    for part in path.split("/"):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def parse_text(text: str) -> SmiReport:
    """Parse ``nvidia-smi -q`` (the human-readable form) into the same report as the XML."""
    tree = _text_tree(text)
    accelerators = []
    gpus = [(k, v) for k, v in tree.items() if k.startswith("GPU ") and isinstance(v, dict)]
    for index, (header, gpu) in enumerate(gpus):

        def lookup(paths: Sequence[str], gpu: dict[str, Any] = gpu) -> str | None:
            for path in paths:
                value = _tree_get(gpu, path)
                if isinstance(value, str):
                    return value
            return None

        r = FieldReader()
        _read_fields(r, lookup, text_format=True)
        accelerators.append(
            r.accelerator(
                processes=_text_processes(gpu.get("Processes")),
                kind="gpu",
                index=index,
                uuid=lookup(("GPU UUID",)) or f"GPU-{header.removeprefix('GPU ')}",
                name=lookup(("Product Name",)) or "NVIDIA GPU",
            )
        )
    return SmiReport(
        accelerators=tuple(accelerators),
        driver_version=tree.get("Driver Version") if isinstance(tree.get("Driver Version"), str) else None,
        cuda_version=tree.get("CUDA Version") if isinstance(tree.get("CUDA Version"), str) else None,
        timestamp=tree.get("Timestamp") if isinstance(tree.get("Timestamp"), str) else None,
    )


def _text_processes(section: Any) -> list[Process]:
    # "Processes : None" when idle; otherwise one "Process ID", "Name", "Used GPU Memory" per process
    if not isinstance(section, dict):
        return []

    def column(key: str) -> list[str]:
        value = section.get(key)
        return value if isinstance(value, list) else [] if value is None else [value]

    pids, names, used = column("Process ID"), column("Name"), column("Used GPU Memory")
    return [
        Process(pid=int(pid), name=name or None, used_memory_bytes=_mib_or_none(mem))
        for pid, name, mem in zip(pids, names, used, strict=False)
        if pid.isdigit()
    ]


# --- nvidia-smi --query-gpu / --query-compute-apps --format=csv ------------------------------

_UNIT = re.compile(r"\s*\[[^\]]*\]$")


def parse_query_csv(text: str) -> list[dict[str, str]]:
    """``--format=csv`` output -> one dict per row, keyed by the query name without its unit."""
    rows = list(csv.reader(io.StringIO(text), skipinitialspace=True))
    if not rows:
        return []
    header = [_UNIT.sub("", h.strip()) for h in rows[0]]
    return [dict(zip(header, (v.strip() for v in row), strict=False)) for row in rows[1:] if row]


def _csv_value(row: Mapping[str, str], names: Sequence[str]) -> str | None:
    for name in names:
        if name in row:
            return row[name]
    return None


def parse_query_gpu_csv(text: str, compute_apps_csv: str | None = None) -> SmiReport:
    """Parse ``--query-gpu=... --format=csv`` (with or without units); add processes when given.

    ``--query-compute-apps`` without a ``gpu_uuid`` column cannot say which GPU a process
    uses, so such processes are attached only when there is exactly one GPU.
    """
    rows = parse_query_csv(text)
    apps = parse_query_csv(compute_apps_csv) if compute_apps_csv else []
    accelerators = []
    for position, row in enumerate(rows):
        r = FieldReader()
        for spec in _SPECS:
            if spec.csv:
                _put(r, spec.field, _csv_value(row, spec.csv), spec.convert)
        _put_memory(r, row.get("memory.total"), row.get("memory.free"))
        uuid = row.get("uuid") or f"GPU-index-{position}"
        mine = [a for a in apps if a.get("gpu_uuid") == uuid or ("gpu_uuid" not in a and len(rows) == 1)]
        processes = [
            Process(
                pid=int(a["pid"]),
                name=a.get("process_name") or None,
                used_memory_bytes=_mib_or_none(a.get("used_gpu_memory") or a.get("used_memory")),
            )
            for a in mine
            if a.get("pid", "").isdigit()
        ]
        index = row.get("index")
        accelerators.append(
            r.accelerator(
                processes=processes,
                kind="gpu",
                index=int(index) if index and index.isdigit() else position,
                uuid=uuid,
                name=row.get("name") or "NVIDIA GPU",
            )
        )
    first = rows[0] if rows else {}
    return SmiReport(
        accelerators=tuple(accelerators),
        driver_version=first.get("driver_version"),
        timestamp=first.get("timestamp"),
    )


# --- the live source -------------------------------------------------------------------------

Runner = Callable[[Sequence[str], float], str]


def run_command(argv: Sequence[str], timeout_s: float) -> str:
    """Run a command and return its stdout; ``SourceUnavailable`` when it fails or hangs."""
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SourceUnavailable(f"{argv[0]}: {exc}") from exc
    if done.returncode != 0:
        detail = (done.stdout + done.stderr).strip().splitlines()
        raise SourceUnavailable(f"{' '.join(argv)} exited {done.returncode}: {detail[0] if detail else ''}")
    return done.stdout


class NvidiaSmiSource:
    """Reads every GPU with ``nvidia-smi -q -x`` (one process per snapshot, about 50-200 ms on a real GPU)."""

    name = "nvidia-smi"

    def __init__(self, binary: str, run: Runner = run_command, timeout_s: float = 20.0) -> None:
        self._binary = binary
        self._run = run
        self._timeout_s = timeout_s
        self._compute_caps = self._query_compute_caps()

    @classmethod
    def open(cls, binary: str | None = None, run: Runner = run_command) -> NvidiaSmiSource:
        """Find ``nvidia-smi`` on PATH and check that it can talk to a driver."""
        found = binary or shutil.which("nvidia-smi")
        if not found:
            raise SourceUnavailable("nvidia-smi: not on PATH (no NVIDIA driver installed here)")
        return cls(found, run)

    def _query_compute_caps(self) -> dict[str, str]:
        # compute_cap is missing from the XML; it is static, so one query at start is enough.
        # This also proves nvidia-smi reaches a driver: if not, the source is unavailable.
        try:
            out = self._run([self._binary, "--query-gpu=uuid,compute_cap", "--format=csv"], self._timeout_s)
        except SourceUnavailable:
            # drivers before 510 do not know compute_cap; the uuid alone still proves the driver answers
            self._run([self._binary, "--query-gpu=uuid", "--format=csv"], self._timeout_s)
            return {}
        return {
            row["uuid"]: row["compute_cap"]
            for row in parse_query_csv(out)
            if row.get("uuid") and re.fullmatch(r"\d{1,2}\.\d{1,2}", row.get("compute_cap", ""))
        }

    def read(self) -> Reading:
        """One ``nvidia-smi -q -x`` call, with the compute capabilities filled in."""
        report = parse_xml(self._run([self._binary, "-q", "-x"], self._timeout_s))
        accelerators = tuple(
            acc.model_copy(update={"compute_capability": self._compute_caps[acc.uuid]})
            if acc.compute_capability is None and acc.uuid in self._compute_caps
            else acc
            for acc in report.accelerators
        )
        return Reading(
            source=self.name,
            accelerators=accelerators,
            driver_version=report.driver_version,
            cuda_driver_version=report.cuda_version,
        )

    def close(self) -> None:
        """Nothing to release."""
