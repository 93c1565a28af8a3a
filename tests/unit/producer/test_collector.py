"""The collector: source fallbacks, the CPU-only event, replay, timing recorded in the event."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path

import pytest

from ca4_events.schema import GpuMetadataEvent
from ca4_producer import host
from ca4_producer.collector import Collector
from ca4_producer.readings import SourceUnavailable
from tests.unit.producer.fake_pynvml import FakeNvml, NVMLError_LibraryNotFound, load_series
from tests.unit.producer.test_nvidia_smi import CapturedSmi


def _no_nvml(h200_dir: Path) -> FakeNvml:
    return FakeNvml(load_series(h200_dir / "nvml-series.json"), init_error=NVMLError_LibraryNotFound())


def test_nvml_first(h200_dir: Path) -> None:
    nvml = FakeNvml(load_series(h200_dir / "nvml-series.json"))
    smi = CapturedSmi(h200_dir)
    collector = Collector.detect(nvml_module=nvml, smi_binary="/usr/bin/nvidia-smi", smi_run=smi, tpu=False)
    assert [s.name for s in collector.sources] == ["nvml"]
    assert smi.calls == [], "nvidia-smi is not started when NVML works"


def test_nvidia_smi_when_nvml_cannot_start(h200_dir: Path) -> None:
    smi = CapturedSmi(h200_dir, xml="nvidia-smi-q-load.xml")
    collector = Collector.detect(
        nvml_module=_no_nvml(h200_dir), smi_binary="/usr/bin/nvidia-smi", smi_run=smi, tpu=False
    )
    assert [s.name for s in collector.sources] == ["nvidia-smi"]
    assert "NVML: nvmlInit failed (NVML Shared Library Not Found)" in collector.describe()
    (acc,) = collector.snapshot().event.accelerators
    assert (acc.uuid, acc.compute_capability, acc.utilization_gpu_pct) == (
        "GPU-bfb5ba6a-db8e-fc7b-5fdc-aeabcd37bce1",
        "9.0",
        99,
    )


def test_a_cpu_only_runtime_sends_a_valid_event_without_accelerators(h200_dir: Path) -> None:
    collector = Collector.detect(nvml_module=_no_nvml(h200_dir), smi_binary=None, jax_module=None)
    snap = collector.snapshot(workload={"job": "cpu"})
    event = GpuMetadataEvent.model_validate_json(snap.event.model_dump_json(exclude_none=True))
    assert event.accelerators == []
    assert event.host is not None and event.host.cpu_count and event.host.python_version
    assert event.workload is not None and event.workload["job"] == "cpu"
    assert event.workload["ca4_collector"]["sources"] == ["none"]
    assert "CPU-only" in collector.describe()


def test_each_snapshot_records_its_collection_time(h200_dir: Path) -> None:
    ticks = itertools.count(step=0.0025)  # every clock reading is 2.5 ms after the previous one
    collector = Collector.replay(h200_dir, session_id="s-1")
    collector.clock = lambda: next(ticks)
    snap = collector.snapshot()
    assert snap.collect_ms == pytest.approx(2.5)
    assert snap.event.workload is not None
    assert snap.event.workload["ca4_collector"]["collect_ms"] == pytest.approx(2.5)


def test_a_failed_read_is_recorded_and_the_next_snapshot_goes_on(h200_dir: Path) -> None:
    smi = CapturedSmi(h200_dir, xml="nvidia-smi-q-load.xml")
    collector = Collector.detect(
        nvml_module=_no_nvml(h200_dir), smi_binary="/usr/bin/nvidia-smi", smi_run=smi, tpu=False
    )
    timeout = SourceUnavailable("nvidia-smi -q -x: timed out after 20 s")
    smi.fail = timeout
    failed = collector.snapshot().event
    assert failed.accelerators == []
    assert failed.workload is not None
    assert failed.workload["ca4_collector"]["errors"] == {"nvidia-smi": f"SourceUnavailable: {timeout}"}
    smi.fail = None
    (acc,) = collector.snapshot().event.accelerators
    assert acc.utilization_gpu_pct == 99


def test_replay_plays_the_capture_in_order_with_the_current_time(h200_dir: Path) -> None:
    now = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    collector = Collector.replay(h200_dir, session_id="replay-1")
    collector.now = lambda: now
    events = [collector.snapshot().event for _ in range(7)]
    utils = [e.accelerators[0].utilization_gpu_pct for e in events]
    assert utils == [0, 99, 99, 99, 99, 100, 0], f"idle, five load snapshots, then over again; found {utils}"
    assert {e.collected_at for e in events} == {now}, "a replay is stamped with the time it is sent"
    assert events[0].source.tags == {"replay": "true"} and events[0].source.session_id == "replay-1"
    assert events[1].workload is not None
    assert events[1].workload["ca4_collector"]["replay_of"] == ["nvml-series.json#load[0]"]
    assert events[0].software is not None and events[0].software.framework["torch"] == "2.11.0+cu130"


def test_replay_of_a_single_xml_file(h200_dir: Path) -> None:
    collector = Collector.replay(h200_dir / "nvidia-smi-q-load.xml")
    (acc,) = collector.snapshot().event.accelerators
    assert (acc.utilization_gpu_pct, acc.clock_event_reasons_mask) == (99, 4)


def test_replay_of_a_folder_without_captures_says_so(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="holds no capture"):
        Collector.replay(tmp_path)


def test_provider_is_colab_inside_colab() -> None:
    assert host.detect_provider({"COLAB_RELEASE_TAG": "release-colab_20260101"}) == "colab"
    assert host.in_colab({}) is False
