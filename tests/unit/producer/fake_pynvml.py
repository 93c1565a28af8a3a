"""A ``pynvml``-shaped fake answering from the real H200 NVML capture (unit tests only).

Every answer comes from ``nvml-series.json``, one snapshot at a time (``advance()`` moves
on). A few queries the capture script did not record are answered from the other captures
of the same GPU, and say so:

- architecture 9 (Hopper): ``product_architecture`` in ``nvidia-smi-q.xml``;
- memory temperature 37 C idle / 47 C under load: ``memory_temp`` in the two XML files;
- fan speed NotSupported: ``fan_speed`` is ``N/A`` in the XML and ``[N/A]`` in the CSV;
- aggregate ECC counters and remapped rows 0: the XML's ``aggregate`` and ``remapped_rows``;
- process 417 is ``python3``: ``query-compute-apps-load.csv``.

A value written as ``{"error": "NVMLError_NotSupported: ..."}`` (the capture's notation) is
raised as that NVML error. ``fail`` makes any function raise a given error a number of
times, and ``calls`` counts every call, so tests can prove what was (not) asked again.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_FUNCTION_NOT_FOUND = 13
NVML_ERROR_GPU_IS_LOST = 15


class NVMLError(Exception):
    """Same shape as pynvml's: the NVML return code is ``value``."""

    _names: Mapping[int, str] = {
        NVML_ERROR_NOT_SUPPORTED: "Not Supported",
        NVML_ERROR_LIBRARY_NOT_FOUND: "NVML Shared Library Not Found",
        NVML_ERROR_FUNCTION_NOT_FOUND: "Function Not Found",
        NVML_ERROR_GPU_IS_LOST: "GPU is lost",
    }

    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return self._names.get(self.value, f"NVML Error with code {self.value}")


class NVMLError_NotSupported(NVMLError):  # pynvml's class names
    def __init__(self) -> None:
        super().__init__(NVML_ERROR_NOT_SUPPORTED)


class NVMLError_LibraryNotFound(NVMLError):
    def __init__(self) -> None:
        super().__init__(NVML_ERROR_LIBRARY_NOT_FOUND)


class NVMLError_GpuIsLost(NVMLError):
    def __init__(self) -> None:
        super().__init__(NVML_ERROR_GPU_IS_LOST)


NOT_SUPPORTED = {"error": "NVMLError_NotSupported: Not Supported"}

# answers from the other captures of the same GPU (see the module docstring)
FROM_OTHER_CAPTURES: dict[str, dict[str, Any]] = {
    "idle": {"temperature_memory_c": 37},
    "load": {"temperature_memory_c": 47},
    "all": {
        "architecture": 9,
        "fan_speed_pct": NOT_SUPPORTED,
        "ecc_errors_corrected_aggregate": 0,
        "ecc_errors_uncorrected_aggregate": 0,
        "remapped_rows": [0, 0, 0, 0],
        "process_names": {417: "python3"},
    },
}


def load_series(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """``[(phase, snapshot), ...]`` from an ``nvml-series.json``, idle first."""
    data = json.loads(path.read_text())
    return [(p.removeprefix("phase_"), s) for p in ("phase_idle", "phase_load") for s in data.get(p, [])]


class FakeNvml:
    """Module-like object with the pynvml functions and constants the collector uses."""

    NVMLError = NVMLError
    NVML_CLOCK_GRAPHICS = 0
    NVML_CLOCK_SM = 1
    NVML_CLOCK_MEM = 2
    NVML_TEMPERATURE_GPU = 0

    def __init__(
        self,
        series: list[tuple[str, dict[str, Any]]],
        *,
        init_error: NVMLError | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> None:
        self._series = series
        self._position = 0
        self._init_error = init_error
        self._overrides = dict(overrides or {})
        self.calls: Counter[str] = Counter()
        self.fail: dict[str, tuple[NVMLError, int]] = {}
        self.initialised = False

    # --- test controls -----------------------------------------------------------------

    def advance(self) -> None:
        """Answer from the next captured snapshot (the last one repeats)."""
        self._position = min(self._position + 1, len(self._series) - 1)

    def _snapshot(self) -> dict[str, Any]:
        return self._series[self._position][1]

    def _dev(self, handle: int) -> dict[str, Any]:
        phase, snap = self._series[self._position]
        return {
            **snap["devices"][handle],
            **FROM_OTHER_CAPTURES["all"],
            **FROM_OTHER_CAPTURES[phase],
            **self._overrides,
        }

    def _answer(self, function: str, value: Any) -> Any:
        self.calls[function] += 1
        if function in self.fail:
            error, times = self.fail[function]
            if times > 0:
                self.fail[function] = (error, times - 1)
                raise error
        if isinstance(value, Mapping) and "error" in value:
            raise NVMLError_NotSupported()
        return value

    # --- pynvml's functions ----------------------------------------------------------------

    def nvmlInit(self) -> None:  # pynvml's function names, camelCase
        self.calls["nvmlInit"] += 1
        if self._init_error is not None:
            raise self._init_error
        self.initialised = True

    def nvmlShutdown(self) -> None:
        self.calls["nvmlShutdown"] += 1
        self.initialised = False

    def nvmlDeviceGetCount(self) -> int:
        return int(self._answer("nvmlDeviceGetCount", len(self._snapshot()["devices"])))

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return int(self._answer("nvmlDeviceGetHandleByIndex", index))

    def nvmlSystemGetDriverVersion(self) -> str:
        return str(self._answer("nvmlSystemGetDriverVersion", self._snapshot()["driver_version"]))

    def nvmlSystemGetNVMLVersion(self) -> str:
        return str(self._answer("nvmlSystemGetNVMLVersion", self._snapshot()["nvml_version"]))

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        return int(self._answer("nvmlSystemGetCudaDriverVersion", self._snapshot()["cuda_driver_version"]))

    def nvmlSystemGetProcessName(self, pid: int) -> str:
        names = self._dev(0)["process_names"]
        if pid not in names:
            self.calls["nvmlSystemGetProcessName"] += 1
            raise NVMLError(6)  # NVML_ERROR_NOT_FOUND: the process is gone
        return str(self._answer("nvmlSystemGetProcessName", names[pid]))

    def nvmlDeviceGetName(self, h: int) -> str:
        return str(self._answer("nvmlDeviceGetName", self._dev(h)["name"]))

    def nvmlDeviceGetUUID(self, h: int) -> str:
        return str(self._answer("nvmlDeviceGetUUID", self._dev(h)["uuid"]))

    def nvmlDeviceGetSerial(self, h: int) -> str:
        return str(self._answer("nvmlDeviceGetSerial", self._dev(h)["serial"]))

    def nvmlDeviceGetPciInfo(self, h: int) -> Any:
        bus_id = self._answer("nvmlDeviceGetPciInfo", self._dev(h)["pci_bus_id"])
        return SimpleNamespace(busId=bus_id.encode())  # the real struct member is bytes

    def nvmlDeviceGetCudaComputeCapability(self, h: int) -> tuple[int, int]:
        major, minor = self._answer("nvmlDeviceGetCudaComputeCapability", self._dev(h)["compute_capability"])
        return (major, minor)

    def nvmlDeviceGetArchitecture(self, h: int) -> int:
        return int(self._answer("nvmlDeviceGetArchitecture", self._dev(h)["architecture"]))

    def nvmlDeviceGetMaxClockInfo(self, h: int, clock: int) -> int:
        key = {self.NVML_CLOCK_SM: "max_sm", self.NVML_CLOCK_MEM: "max_mem"}[clock]
        return int(self._answer("nvmlDeviceGetMaxClockInfo", self._dev(h)["clocks_mhz"][key]))

    def nvmlDeviceGetClockInfo(self, h: int, clock: int) -> int:
        names = {self.NVML_CLOCK_SM: "sm", self.NVML_CLOCK_MEM: "mem", self.NVML_CLOCK_GRAPHICS: "graphics"}
        key = names[clock]
        return int(self._answer("nvmlDeviceGetClockInfo", self._dev(h)["clocks_mhz"][key]))

    def nvmlDeviceGetPerformanceState(self, h: int) -> int:
        return int(self._answer("nvmlDeviceGetPerformanceState", self._dev(h)["pstate"]))

    def nvmlDeviceGetPersistenceMode(self, h: int) -> int:
        return int(self._answer("nvmlDeviceGetPersistenceMode", self._dev(h)["persistence_mode"]))

    def nvmlDeviceGetComputeMode(self, h: int) -> int:
        return int(self._answer("nvmlDeviceGetComputeMode", self._dev(h)["compute_mode"]))

    def nvmlDeviceGetMigMode(self, h: int) -> list[int]:
        return list(self._answer("nvmlDeviceGetMigMode", self._dev(h)["mig_mode"]))

    def nvmlDeviceGetEccMode(self, h: int) -> list[int]:
        return list(self._answer("nvmlDeviceGetEccMode", self._dev(h)["ecc_mode"]))

    def nvmlDeviceGetMemoryInfo(self, h: int) -> Any:
        return SimpleNamespace(**self._answer("nvmlDeviceGetMemoryInfo", self._dev(h)["memory"]))

    def nvmlDeviceGetUtilizationRates(self, h: int) -> Any:
        return SimpleNamespace(**self._answer("nvmlDeviceGetUtilizationRates", self._dev(h)["utilization"]))

    def nvmlDeviceGetTemperature(self, h: int, sensor: int) -> int:
        assert sensor == self.NVML_TEMPERATURE_GPU
        return int(self._answer("nvmlDeviceGetTemperature", self._dev(h)["temperature_gpu_c"]))

    def nvmlDeviceGetFieldValues(self, h: int, field_ids: list[int]) -> list[Any]:
        assert field_ids == [82], "the collector asks only for NVML_FI_DEV_MEMORY_TEMP"
        raw = self._dev(h)["temperature_memory_c"]
        self.calls["nvmlDeviceGetFieldValues"] += 1
        if isinstance(raw, Mapping):  # a field-value read reports its error per value
            refused = SimpleNamespace(
                nvmlReturn=NVML_ERROR_NOT_SUPPORTED, valueType=1, value=SimpleNamespace()
            )
            return [refused]
        return [SimpleNamespace(nvmlReturn=0, valueType=1, value=SimpleNamespace(uiVal=raw))]

    def nvmlDeviceGetPowerUsage(self, h: int) -> int:
        return int(self._answer("nvmlDeviceGetPowerUsage", self._dev(h)["power_usage_mw"]))

    def nvmlDeviceGetPowerManagementLimit(self, h: int) -> int:
        return int(self._answer("nvmlDeviceGetPowerManagementLimit", self._dev(h)["power_limit_mw"]))

    def nvmlDeviceGetTotalEnergyConsumption(self, h: int) -> int:
        return int(self._answer("nvmlDeviceGetTotalEnergyConsumption", self._dev(h)["energy_mj"]))

    def nvmlDeviceGetFanSpeed(self, h: int) -> int:
        return int(self._answer("nvmlDeviceGetFanSpeed", self._dev(h)["fan_speed_pct"]))

    def nvmlDeviceGetCurrentClocksEventReasons(self, h: int) -> int:
        return int(self._answer("nvmlDeviceGetCurrentClocksEventReasons", self._dev(h)["throttle_reasons"]))

    def nvmlDeviceGetTotalEccErrors(self, h: int, error_type: int, counter: int) -> int:
        kind = "corrected" if error_type == 0 else "uncorrected"
        scope = "volatile" if counter == 0 else "aggregate"
        return int(self._answer("nvmlDeviceGetTotalEccErrors", self._dev(h)[f"ecc_errors_{kind}_{scope}"]))

    def nvmlDeviceGetRemappedRows(self, h: int) -> tuple[int, int, int, int]:
        a, b, c, d = self._answer("nvmlDeviceGetRemappedRows", self._dev(h)["remapped_rows"])
        return (a, b, c, d)

    def nvmlDeviceGetCurrPcieLinkGeneration(self, h: int) -> int:
        return int(self._answer("nvmlDeviceGetCurrPcieLinkGeneration", self._dev(h)["pcie_link_gen"]))

    def nvmlDeviceGetCurrPcieLinkWidth(self, h: int) -> int:
        return int(self._answer("nvmlDeviceGetCurrPcieLinkWidth", self._dev(h)["pcie_link_width"]))

    def nvmlDeviceGetComputeRunningProcesses(self, h: int) -> list[Any]:
        procs = self._answer("nvmlDeviceGetComputeRunningProcesses", self._dev(h)["processes"])
        return [SimpleNamespace(pid=p["pid"], usedGpuMemory=p.get("used_gpu_memory")) for p in procs]
