"""Live NVIDIA readings through NVML (``nvidia-ml-py``, imported as ``pynvml``).

NVML is the first choice: one library call per value, no process to start, and the same
numbers ``nvidia-smi`` prints. ``nvidia-ml-py`` is an optional extra (``ca4[nvml]``), so the
module is imported only when a collector asks for it, and a missing module or a missing
driver (``NVMLError_LibraryNotFound``) makes the source unavailable instead of failing.

A query the device answers with ``NotSupported`` (or that the driver lacks) is remembered
per device: its fields stay null and listed in ``unsupported``, and a sampling loop never
asks again. Any other NVML error nulls the fields for this snapshot only.
"""

from __future__ import annotations

import functools
import importlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ca4_events.schema import Accelerator, Process
from ca4_producer.readings import (
    NVML_ARCHITECTURES,
    FieldReader,
    Reading,
    SourceUnavailable,
    cuda_version_from_int,
    milli_to_unit,
    nvml_compute_capability,
    nvml_compute_mode,
    nvml_current_mode,
    nvml_pstate,
)

log = logging.getLogger(__name__)

# NVML return codes that mean "this device or driver will never answer this query"
_NOT_SUPPORTED = 3  # NVML_ERROR_NOT_SUPPORTED
_FUNCTION_NOT_FOUND = 13  # NVML_ERROR_FUNCTION_NOT_FOUND (older driver)
_FIELD_MEMORY_TEMP = 82  # NVML_FI_DEV_MEMORY_TEMP
# c_nvmlValue_t member for each nvmlValueType_t
_VALUE_MEMBERS = {0: "dVal", 1: "uiVal", 2: "ulVal", 3: "ullVal", 4: "sllVal", 5: "siVal", 6: "usVal"}


def import_pynvml() -> Any:
    """Import ``pynvml`` from nvidia-ml-py, or raise ``SourceUnavailable`` saying how to get it."""
    try:
        return importlib.import_module("pynvml")
    except ImportError as exc:
        raise SourceUnavailable(
            "NVML: pynvml is not importable (pip install nvidia-ml-py, or the ca4[nvml] extra)"
        ) from exc


def _text(value: Any) -> str:
    # pynvml returns str on Python 3 for most calls, bytes for a few struct members
    return value.decode() if isinstance(value, bytes) else str(value)


class _Device:
    """One GPU: its handle, identity read once, and the queries it cannot answer."""

    def __init__(self, index: int, handle: Any) -> None:
        self.index = index
        self.handle = handle
        self.identity: dict[str, Any] = {}
        self.static: FieldReader | None = None
        self.never_ask: dict[str, tuple[str, ...]] = {}


def _memory_temp(n: Any, h: Any) -> Any:
    # NVML has no direct call for HBM temperature; the field-value API carries it
    (value,) = n.nvmlDeviceGetFieldValues(h, [_FIELD_MEMORY_TEMP])
    if value.nvmlReturn != 0:
        raise n.NVMLError(value.nvmlReturn)
    return getattr(value.value, _VALUE_MEMBERS.get(int(value.valueType), "uiVal"))


def _event_reasons(n: Any, h: Any) -> Any:
    # renamed in driver 535 ("throttle" -> "clocks event"); older nvidia-ml-py has only the old name
    call = (
        getattr(n, "nvmlDeviceGetCurrentClocksEventReasons", None)
        or n.nvmlDeviceGetCurrentClocksThrottleReasons
    )
    return call(h)


def _one(answer: Any) -> tuple[Any]:
    return (answer,)


@dataclass(frozen=True)
class _Query:
    """One NVML query: the fields it feeds, the call (given pynvml and the device handle), and
    how its answer becomes one value per field. ``name`` is what ``never_ask`` remembers."""

    name: str
    fields: tuple[str, ...]
    call: Callable[[Any, Any], Any]
    values: Callable[[Any], Sequence[Any]] = _one


def _field(
    name: str, field: str, call: str | Callable[[Any, Any], Any], convert: Callable[[Any], Any] | None = None
) -> _Query:
    """A query feeding one field: ``call`` names a pynvml function of the handle alone, or is
    ``(pynvml, handle) -> answer``; ``convert`` turns the answer into the field's value."""
    ask: Callable[[Any, Any], Any]
    if isinstance(call, str):
        function = call
        ask = lambda n, h: getattr(n, function)(h)  # noqa: E731 - one of the two forms of call
    else:
        ask = call
    if convert is None:
        return _Query(name, (field,), ask)
    to_value = convert
    return _Query(name, (field,), ask, lambda answer: (to_value(answer),))


def _ecc(name: str, error_type: int, counter: int) -> _Query:
    # error_type 0/1: corrected/uncorrected; counter 0/1: volatile (since boot)/aggregate (lifetime)
    kind = ("corrected", "uncorrected")[error_type]
    scope = ("volatile", "aggregate")[counter]
    return _field(
        name, f"ecc_errors_{kind}_{scope}", lambda n, h: n.nvmlDeviceGetTotalEccErrors(h, error_type, counter)
    )


# identity and capabilities: asked once per device (name and uuid are read first, apart)
_STATIC: tuple[_Query, ...] = (
    _field("serial", "serial", "nvmlDeviceGetSerial", _text),
    _field("pci_info", "pci_bus_id", "nvmlDeviceGetPciInfo", lambda pci: _text(pci.busId)),
    _field(
        "compute_capability",
        "compute_capability",
        "nvmlDeviceGetCudaComputeCapability",
        nvml_compute_capability,
    ),
    _field(
        "architecture", "architecture", "nvmlDeviceGetArchitecture", lambda a: NVML_ARCHITECTURES.get(int(a))
    ),
    _field("max_clock_sm", "clock_sm_max_mhz", lambda n, h: n.nvmlDeviceGetMaxClockInfo(h, n.NVML_CLOCK_SM)),
    _field(
        "max_clock_mem", "clock_memory_max_mhz", lambda n, h: n.nvmlDeviceGetMaxClockInfo(h, n.NVML_CLOCK_MEM)
    ),
)

# everything else: asked at every snapshot
_DYNAMIC: tuple[_Query, ...] = (
    _field("pstate", "pstate", "nvmlDeviceGetPerformanceState", nvml_pstate),
    _field("persistence_mode", "persistence_mode", "nvmlDeviceGetPersistenceMode", bool),
    _field("compute_mode", "compute_mode", "nvmlDeviceGetComputeMode", nvml_compute_mode),
    _field("mig_mode", "mig_mode", "nvmlDeviceGetMigMode", nvml_current_mode),
    _field("ecc_mode", "ecc_mode", "nvmlDeviceGetEccMode", nvml_current_mode),
    _Query(
        "memory_info",
        ("memory_total_bytes", "memory_used_bytes", "memory_free_bytes"),
        lambda n, h: n.nvmlDeviceGetMemoryInfo(h),
        lambda mem: (int(mem.total), int(mem.used), int(mem.free)),
    ),
    _Query(
        "utilization",
        ("utilization_gpu_pct", "utilization_memory_pct"),
        lambda n, h: n.nvmlDeviceGetUtilizationRates(h),
        lambda util: (float(util.gpu), float(util.memory)),
    ),
    _field(
        "temperature_gpu",
        "temperature_gpu_c",
        lambda n, h: n.nvmlDeviceGetTemperature(h, n.NVML_TEMPERATURE_GPU),
    ),
    _field("memory_temperature", "temperature_memory_c", _memory_temp),
    _field("power_usage", "power_draw_w", "nvmlDeviceGetPowerUsage", milli_to_unit),
    _field("power_limit", "power_limit_w", "nvmlDeviceGetPowerManagementLimit", milli_to_unit),
    _field("energy", "energy_total_mj", "nvmlDeviceGetTotalEnergyConsumption"),
    _field("fan_speed", "fan_speed_pct", "nvmlDeviceGetFanSpeed"),
    _field("clock_sm", "clock_sm_mhz", lambda n, h: n.nvmlDeviceGetClockInfo(h, n.NVML_CLOCK_SM)),
    _field("clock_mem", "clock_memory_mhz", lambda n, h: n.nvmlDeviceGetClockInfo(h, n.NVML_CLOCK_MEM)),
    _field(
        "clock_graphics",
        "clock_graphics_mhz",
        lambda n, h: n.nvmlDeviceGetClockInfo(h, n.NVML_CLOCK_GRAPHICS),
    ),
    _field("clock_event_reasons", "clock_event_reasons_mask", _event_reasons),
    _ecc("ecc_corrected_volatile", 0, 0),
    _ecc("ecc_uncorrected_volatile", 1, 0),
    _ecc("ecc_corrected_aggregate", 0, 1),
    _ecc("ecc_uncorrected_aggregate", 1, 1),
    _Query(
        "remapped_rows",
        (
            "remapped_rows_correctable",
            "remapped_rows_uncorrectable",
            "remapped_rows_pending",
            "remapped_rows_failure",
        ),
        lambda n, h: n.nvmlDeviceGetRemappedRows(h),
        lambda rows: (int(rows[0]), int(rows[1]), bool(rows[2]), bool(rows[3])),
    ),
    _field("pcie_link_gen", "pcie_link_gen", "nvmlDeviceGetCurrPcieLinkGeneration"),
    _field("pcie_link_width", "pcie_link_width", "nvmlDeviceGetCurrPcieLinkWidth"),
)


class NvmlSource:
    """Reads every GPU through NVML; one instance per collector (it keeps NVML initialised)."""

    name = "nvml"

    def __init__(self, nvml: Any) -> None:
        self._nvml = nvml
        self._devices = [
            _Device(i, nvml.nvmlDeviceGetHandleByIndex(i)) for i in range(int(nvml.nvmlDeviceGetCount()))
        ]
        self.driver_version = self._system(nvml.nvmlSystemGetDriverVersion)
        self.nvml_version = self._system(nvml.nvmlSystemGetNVMLVersion)
        self.cuda_driver_version = cuda_version_from_int(self._system(nvml.nvmlSystemGetCudaDriverVersion))

    @classmethod
    def open(cls, module: Any | None = None) -> NvmlSource:
        """Initialise NVML (``module`` replaces ``pynvml`` in tests); ``SourceUnavailable`` if it cannot."""
        nvml = module if module is not None else import_pynvml()
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as exc:
            raise SourceUnavailable(f"NVML: nvmlInit failed ({exc}); no NVIDIA driver here") from exc
        try:
            source = cls(nvml)
        except nvml.NVMLError as exc:
            nvml.nvmlShutdown()
            raise SourceUnavailable(f"NVML: cannot list devices ({exc})") from exc
        if not source._devices:
            nvml.nvmlShutdown()
            raise SourceUnavailable("NVML: the driver reports no GPU")
        return source

    def close(self) -> None:
        """Release NVML."""
        try:
            self._nvml.nvmlShutdown()
        except self._nvml.NVMLError as exc:  # shutting down twice is harmless
            log.debug("nvmlShutdown: %s", exc)

    def never_asked_again(self, index: int) -> dict[str, tuple[str, ...]]:
        """Queries device ``index`` answered NotSupported, with the fields each one feeds."""
        return dict(self._devices[index].never_ask)

    def read(self) -> Reading:
        """One pass over every GPU."""
        return Reading(
            source=self.name,
            accelerators=tuple(self._read_device(d) for d in self._devices),
            driver_version=self.driver_version,
            cuda_driver_version=self.cuda_driver_version,
            nvml_version=self.nvml_version,
        )

    # --- one device ------------------------------------------------------------------

    def _system(self, call: Callable[[], Any]) -> Any:
        try:
            value = call()
        except self._nvml.NVMLError as exc:
            log.info("NVML system query %s failed: %s", getattr(call, "__name__", call), exc)
            return None
        return _text(value) if isinstance(value, bytes | str) else value

    def _ask(
        self, dev: _Device, r: FieldReader, query: str, fields: Sequence[str], call: Callable[[], Any]
    ) -> Any:
        """Run one NVML query for ``fields``; ``None`` when it gave no value."""
        if query in dev.never_ask:
            r.mark_unsupported(*fields)
            return None
        try:
            return call()
        except self._nvml.NVMLError as exc:
            if getattr(exc, "value", None) in (_NOT_SUPPORTED, _FUNCTION_NOT_FOUND):
                dev.never_ask[query] = tuple(fields)
                r.mark_unsupported(*fields)
            else:
                # a passing failure (GPU busy, lost, timeout): unknown now, ask again next time
                log.info("NVML %s on GPU %d failed: %s", query, dev.index, exc)
                r.mark_failed(*(fields or (query,)))
            return None
        except AttributeError:
            # an older nvidia-ml-py without this function: the answer will not change either
            dev.never_ask[query] = tuple(fields)
            r.mark_unsupported(*fields)
            return None

    def _read_static(self, dev: _Device) -> FieldReader:
        """Identity and capabilities: read once per device, they do not change while it runs."""
        n, h = self._nvml, dev.handle
        r = FieldReader()
        name = self._ask(dev, r, "name", (), lambda: n.nvmlDeviceGetName(h))
        uuid = self._ask(dev, r, "uuid", (), lambda: n.nvmlDeviceGetUUID(h))
        dev.identity = {
            "kind": "gpu",
            "index": dev.index,
            # both are required by the schema; without them the PCI slot still names the device
            "uuid": _text(uuid) if uuid else f"GPU-index-{dev.index}",
            "name": _text(name) if name else "NVIDIA GPU",
        }
        self._run_queries(dev, r, _STATIC)
        return r

    def _read_device(self, dev: _Device) -> Accelerator:
        static = dev.static or self._read_static(dev)
        # identity is cached only once it was read completely; a passing failure is retried
        dev.static = None if static.failed else static
        r = FieldReader()
        r.values.update(static.values)
        r.unsupported.update(static.unsupported)
        self._run_queries(dev, r, _DYNAMIC)
        n, h = self._nvml, dev.handle
        procs = self._ask(dev, r, "processes", (), lambda: n.nvmlDeviceGetComputeRunningProcesses(h))
        return r.accelerator(processes=self._processes(procs or []), **dev.identity)

    def _run_queries(self, dev: _Device, r: FieldReader, queries: Sequence[_Query]) -> None:
        n, h = self._nvml, dev.handle
        for query in queries:
            answer = self._ask(dev, r, query.name, query.fields, functools.partial(query.call, n, h))
            if answer is not None:
                for field, value in zip(query.fields, query.values(answer), strict=True):
                    r.put(field, value)

    def _processes(self, procs: Sequence[Any]) -> list[Process]:
        out: list[Process] = []
        for p in procs:
            try:
                name: str | None = _text(self._nvml.nvmlSystemGetProcessName(p.pid))
            except self._nvml.NVMLError:
                name = None  # a process may exit between the two calls, or live in another container
            used = getattr(p, "usedGpuMemory", None)  # None: NVML_VALUE_NOT_AVAILABLE (e.g. under MIG)
            out.append(Process(pid=int(p.pid), name=name or None, used_memory_bytes=used))
        return out
