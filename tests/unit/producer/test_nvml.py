"""The NVML source, against a pynvml-shaped fake answering from the real H200 NVML capture."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ca4_events.schema import Source
from ca4_producer import nvml as nvml_mod
from ca4_producer.collector import Collector
from ca4_producer.nvml import NvmlSource
from ca4_producer.readings import SourceUnavailable
from ca4_producer.replay import nvml_series_readings
from ca4_producer.sampler import sample
from tests.unit.producer.fake_pynvml import (
    NOT_SUPPORTED,
    FakeNvml,
    NVMLError_GpuIsLost,
    NVMLError_LibraryNotFound,
    load_series,
)


@pytest.fixture
def fake(h200_dir: Path) -> FakeNvml:
    """NVML answering from the six captured snapshots, idle first."""
    return FakeNvml(load_series(h200_dir / "nvml-series.json"))


class FakeClock:
    """Monotonic time that moves only when the sampler sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_live_nvml_reads_what_the_capture_recorded(fake: FakeNvml, h200_dir: Path) -> None:
    captured = [r.accelerators[0] for _, r in nvml_series_readings(h200_dir / "nvml-series.json")]
    source = NvmlSource.open(fake)
    for i, expected in enumerate(captured):
        (acc,) = source.read().accelerators
        shared = set(expected.model_dump(exclude_none=True)) - {"unsupported", "processes"}
        found, wanted = acc.model_dump(include=shared), expected.model_dump(include=shared)
        assert found == wanted, f"snapshot {i}: NVML source {found} != capture {wanted}"
        pids = [(p.pid, p.used_memory_bytes) for p in acc.processes]
        assert pids == [(p.pid, p.used_memory_bytes) for p in expected.processes], f"snapshot {i}: {pids}"
        fake.advance()
    reading = source.read()
    assert (reading.driver_version, reading.nvml_version, reading.cuda_driver_version) == (
        "580.159.04",
        "13.580.159.04",
        "13.0",
    )
    (acc,) = reading.accelerators
    # answered from the XML/CSV of the same GPU (see fake_pynvml): architecture, HBM temperature, names
    assert (acc.architecture, acc.temperature_memory_c) == ("Hopper", 47)
    assert [(p.pid, p.name) for p in acc.processes] == [(417, "python3")]
    assert acc.ecc_errors_corrected_aggregate == 0 and acc.remapped_rows_pending is False


def test_not_supported_is_null_listed_and_never_asked_again(fake: FakeNvml) -> None:
    source = NvmlSource.open(fake)
    collector = Collector(sources=[source], source=_source())
    clock = FakeClock()
    events = []
    stats = sample(
        collector,
        interval_s=1.0,
        duration_s=4.0,
        sink=events.append,
        on_snapshot=lambda i, snap: fake.advance(),
        clock=clock,
        sleep=clock.sleep,
    )
    assert stats.snapshots == 5 and len(events) == 5
    for event in events:
        (acc,) = event.accelerators
        assert acc.fan_speed_pct is None and "fan_speed_pct" in acc.unsupported, (
            f"fan speed is NotSupported on the H200; found {acc.fan_speed_pct}, unsupported={acc.unsupported}"
        )
    assert fake.calls["nvmlDeviceGetFanSpeed"] == 1, (
        "a NotSupported query must not be repeated; "
        f"asked {fake.calls['nvmlDeviceGetFanSpeed']} times in 5 snapshots"
    )
    assert fake.calls["nvmlDeviceGetUtilizationRates"] == 5, "supported queries are asked every snapshot"
    assert source.never_asked_again(0) == {"fan_speed": ("fan_speed_pct",)}


def test_a_query_feeding_several_fields_marks_them_all(h200_dir: Path) -> None:
    fake = FakeNvml(load_series(h200_dir / "nvml-series.json"), overrides={"memory": NOT_SUPPORTED})
    source = NvmlSource.open(fake)
    first, second = source.read().accelerators[0], source.read().accelerators[0]
    memory = ["memory_free_bytes", "memory_total_bytes", "memory_used_bytes"]
    for acc in (first, second):
        assert [f for f in acc.unsupported if f.startswith("memory_")] == memory, acc.unsupported
        assert acc.memory_total_bytes is None
    assert fake.calls["nvmlDeviceGetMemoryInfo"] == 1


def test_a_passing_error_is_unknown_now_and_asked_again(fake: FakeNvml) -> None:
    fake.fail["nvmlDeviceGetPowerUsage"] = (NVMLError_GpuIsLost(), 1)
    source = NvmlSource.open(fake)
    (first,), (second,) = source.read().accelerators, source.read().accelerators
    assert first.power_draw_w is None and "power_draw_w" not in first.unsupported, (
        f"a GPU-is-lost error is not 'unsupported'; unsupported={first.unsupported}"
    )
    assert second.power_draw_w == 109.417, "asked again on the next snapshot, and answered"
    assert fake.calls["nvmlDeviceGetPowerUsage"] == 2


def test_identity_is_read_once_and_retried_after_a_passing_failure(fake: FakeNvml) -> None:
    fake.fail["nvmlDeviceGetSerial"] = (NVMLError_GpuIsLost(), 1)
    source = NvmlSource.open(fake)
    serials = [source.read().accelerators[0].serial for _ in range(4)]
    assert serials == [None, "1653724064797", "1653724064797", "1653724064797"]
    assert fake.calls["nvmlDeviceGetSerial"] == 2, "read again after the failure, then cached"
    assert fake.calls["nvmlDeviceGetCudaComputeCapability"] == 2


def test_a_function_missing_from_an_old_pynvml_counts_as_unsupported(
    fake: FakeNvml, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(FakeNvml, "nvmlDeviceGetRemappedRows", property(lambda self: _missing()))
    (acc,) = NvmlSource.open(fake).read().accelerators
    assert {"remapped_rows_correctable", "remapped_rows_pending"} <= set(acc.unsupported)


def _missing() -> None:
    raise AttributeError("module 'pynvml' has no attribute 'nvmlDeviceGetRemappedRows'")


def test_no_driver_means_the_nvml_source_is_unavailable(h200_dir: Path) -> None:
    fake = FakeNvml(load_series(h200_dir / "nvml-series.json"), init_error=NVMLError_LibraryNotFound())
    with pytest.raises(SourceUnavailable, match="NVML Shared Library Not Found"):
        NvmlSource.open(fake)


def test_without_nvidia_ml_py_the_import_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # what an environment without the extra looks like
    with pytest.raises(SourceUnavailable, match=r"pip install nvidia-ml-py"):
        nvml_mod.import_pynvml()


def test_close_shuts_nvml_down(fake: FakeNvml) -> None:
    collector = Collector.detect(nvml_module=fake, smi_binary=None, tpu=False)
    assert [s.name for s in collector.sources] == ["nvml"]
    with collector:
        assert fake.initialised, "NVML was shut down while the collector still held it"
    assert not fake.initialised and fake.calls["nvmlShutdown"] == 1


def _source() -> Source:
    return Source(provider="onprem", host="unit-test", session_id="nvml-unit")
