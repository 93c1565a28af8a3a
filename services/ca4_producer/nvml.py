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
        serial = self._ask(dev, r, "serial", ("serial",), lambda: n.nvmlDeviceGetSerial(h))
        if serial is not None:
            r.put("serial", _text(serial))
        pci = self._ask(dev, r, "pci_info", ("pci_bus_id",), lambda: n.nvmlDeviceGetPciInfo(h))
        if pci is not None:
            r.put("pci_bus_id", _text(pci.busId))
        cc = self._ask(
            dev,
            r,
            "compute_capability",
            ("compute_capability",),
            lambda: n.nvmlDeviceGetCudaComputeCapability(h),
        )
        if cc is not None:
            r.put("compute_capability", nvml_compute_capability(cc))
        arch = self._ask(dev, r, "architecture", ("architecture",), lambda: n.nvmlDeviceGetArchitecture(h))
        if arch is not None:
            r.put("architecture", NVML_ARCHITECTURES.get(int(arch)))
        max_sm = self._ask(
            dev,
            r,
            "max_clock_sm",
            ("clock_sm_max_mhz",),
            lambda: n.nvmlDeviceGetMaxClockInfo(h, n.NVML_CLOCK_SM),
        )
        r.put("clock_sm_max_mhz", max_sm)
        max_mem = self._ask(
            dev,
            r,
            "max_clock_mem",
            ("clock_memory_max_mhz",),
            lambda: n.nvmlDeviceGetMaxClockInfo(h, n.NVML_CLOCK_MEM),
        )
        r.put("clock_memory_max_mhz", max_mem)
        return r

    def _read_device(self, dev: _Device) -> Accelerator:  # noqa: PLR0915 - one block per NVML query
        n, h = self._nvml, dev.handle
        static = dev.static or self._read_static(dev)
        # identity is cached only once it was read completely; a passing failure is retried
        dev.static = None if static.failed else static
        r = FieldReader()
        r.values.update(static.values)
        r.unsupported.update(static.unsupported)

        def ask(query: str, fields: Sequence[str], call: Callable[[], Any]) -> Any:
            return self._ask(dev, r, query, fields, call)

        pstate = ask("pstate", ("pstate",), lambda: n.nvmlDeviceGetPerformanceState(h))
        if pstate is not None:
            r.put("pstate", nvml_pstate(pstate))
        persistence = ask(
            "persistence_mode", ("persistence_mode",), lambda: n.nvmlDeviceGetPersistenceMode(h)
        )
        if persistence is not None:
            r.put("persistence_mode", bool(persistence))
        mode = ask("compute_mode", ("compute_mode",), lambda: n.nvmlDeviceGetComputeMode(h))
        if mode is not None:
            r.put("compute_mode", nvml_compute_mode(mode))
        mig = ask("mig_mode", ("mig_mode",), lambda: n.nvmlDeviceGetMigMode(h))
        if mig is not None:
            r.put("mig_mode", nvml_current_mode(mig))
        ecc = ask("ecc_mode", ("ecc_mode",), lambda: n.nvmlDeviceGetEccMode(h))
        if ecc is not None:
            r.put("ecc_mode", nvml_current_mode(ecc))

        mem = ask(
            "memory_info",
            ("memory_total_bytes", "memory_used_bytes", "memory_free_bytes"),
            lambda: n.nvmlDeviceGetMemoryInfo(h),
        )
        if mem is not None:
            r.put("memory_total_bytes", int(mem.total))
            r.put("memory_used_bytes", int(mem.used))
            r.put("memory_free_bytes", int(mem.free))
        util = ask(
            "utilization",
            ("utilization_gpu_pct", "utilization_memory_pct"),
            lambda: n.nvmlDeviceGetUtilizationRates(h),
        )
        if util is not None:
            r.put("utilization_gpu_pct", float(util.gpu))
            r.put("utilization_memory_pct", float(util.memory))
        temp = ask(
            "temperature_gpu",
            ("temperature_gpu_c",),
            lambda: n.nvmlDeviceGetTemperature(h, n.NVML_TEMPERATURE_GPU),
        )
        r.put("temperature_gpu_c", temp)
        r.put(
            "temperature_memory_c",
            ask("memory_temperature", ("temperature_memory_c",), lambda: self._memory_temp(h)),
        )
        power = ask("power_usage", ("power_draw_w",), lambda: n.nvmlDeviceGetPowerUsage(h))
        r.put("power_draw_w", milli_to_unit(power) if power is not None else None)
        limit = ask("power_limit", ("power_limit_w",), lambda: n.nvmlDeviceGetPowerManagementLimit(h))
        r.put("power_limit_w", milli_to_unit(limit) if limit is not None else None)
        r.put(
            "energy_total_mj",
            ask("energy", ("energy_total_mj",), lambda: n.nvmlDeviceGetTotalEnergyConsumption(h)),
        )
        r.put("fan_speed_pct", ask("fan_speed", ("fan_speed_pct",), lambda: n.nvmlDeviceGetFanSpeed(h)))

        for query, field, clock in (
            ("clock_sm", "clock_sm_mhz", n.NVML_CLOCK_SM),
            ("clock_mem", "clock_memory_mhz", n.NVML_CLOCK_MEM),
            ("clock_graphics", "clock_graphics_mhz", n.NVML_CLOCK_GRAPHICS),
        ):
            r.put(field, ask(query, (field,), functools.partial(n.nvmlDeviceGetClockInfo, h, clock)))
        r.put(
            "clock_event_reasons_mask",
            ask("clock_event_reasons", ("clock_event_reasons_mask",), lambda: self._event_reasons(h)),
        )

        for query, field, error_type, counter in (
            ("ecc_corrected_volatile", "ecc_errors_corrected_volatile", 0, 0),
            ("ecc_uncorrected_volatile", "ecc_errors_uncorrected_volatile", 1, 0),
            ("ecc_corrected_aggregate", "ecc_errors_corrected_aggregate", 0, 1),
            ("ecc_uncorrected_aggregate", "ecc_errors_uncorrected_aggregate", 1, 1),
        ):
            r.put(
                field,
                ask(
                    query, (field,), functools.partial(n.nvmlDeviceGetTotalEccErrors, h, error_type, counter)
                ),
            )
        rows = ask(
            "remapped_rows",
            (
                "remapped_rows_correctable",
                "remapped_rows_uncorrectable",
                "remapped_rows_pending",
                "remapped_rows_failure",
            ),
            lambda: n.nvmlDeviceGetRemappedRows(h),
        )
        if rows is not None:
            r.put("remapped_rows_correctable", int(rows[0]))
            r.put("remapped_rows_uncorrectable", int(rows[1]))
            r.put("remapped_rows_pending", bool(rows[2]))
            r.put("remapped_rows_failure", bool(rows[3]))
        r.put(
            "pcie_link_gen",
            ask("pcie_link_gen", ("pcie_link_gen",), lambda: n.nvmlDeviceGetCurrPcieLinkGeneration(h)),
        )
        r.put(
            "pcie_link_width",
            ask("pcie_link_width", ("pcie_link_width",), lambda: n.nvmlDeviceGetCurrPcieLinkWidth(h)),
        )
        procs = ask("processes", (), lambda: n.nvmlDeviceGetComputeRunningProcesses(h))
        return r.accelerator(processes=self._processes(procs or []), **dev.identity)

    def _memory_temp(self, handle: Any) -> Any:
        # NVML has no direct call for HBM temperature; the field-value API carries it
        (value,) = self._nvml.nvmlDeviceGetFieldValues(handle, [_FIELD_MEMORY_TEMP])
        if value.nvmlReturn != 0:
            raise self._nvml.NVMLError(value.nvmlReturn)
        return getattr(value.value, _VALUE_MEMBERS.get(int(value.valueType), "uiVal"))

    def _event_reasons(self, handle: Any) -> Any:
        n = self._nvml
        # renamed in driver 535 ("throttle" -> "clocks event"); older nvidia-ml-py has only the old name
        call = (
            getattr(n, "nvmlDeviceGetCurrentClocksEventReasons", None)
            or n.nvmlDeviceGetCurrentClocksThrottleReasons
        )
        return call(handle)

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
