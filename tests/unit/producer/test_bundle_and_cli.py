"""The Colab bundle (deterministic, importable on its own), the text views and the CLI."""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import pytest

from ca4_events.schema import GpuMetadataEvent
from ca4_producer.__main__ import main
from ca4_producer.bundle import build_bundle
from ca4_producer.client import Delivery
from ca4_producer.report import accelerator_table, delivery_lines
from tests.tools.run import run


def test_the_bundle_is_deterministic_and_holds_producer_and_schema(tmp_path: Path) -> None:
    first = build_bundle(tmp_path / "a")
    second = build_bundle(tmp_path / "b")
    assert first.sha256 == second.sha256, "same sources, same digest: a notebook can pin it"
    names = set(zipfile.ZipFile(first.path).namelist())
    assert {"ca4_producer/__init__.py", "ca4_producer/collector.py", "ca4_events/schema.py"} <= names
    assert not [n for n in names if "__pycache__" in n or n.startswith(("local_stack", "processor_api"))]
    assert first.path.stat().st_size < 200_000, (
        f"the bundle should stay small; it is {first.path.stat().st_size} B"
    )


def test_the_bundle_imports_without_the_repository(tmp_path: Path, h200_dir: Path) -> None:
    bundle = build_bundle(tmp_path)
    # a fresh interpreter that cannot see services/: only the zip provides ca4_producer
    code = (
        "import sys; sys.path = [p for p in sys.path if not p.endswith('services')]; "
        f"sys.path.insert(0, {str(bundle.path)!r}); "
        "import ca4_producer; from ca4_producer import Collector; "
        f"snap = Collector.replay({str(h200_dir)!r}).snapshot(); "
        "print(ca4_producer.__file__); print(snap.event.accelerators[0].uuid)"
    )
    done = run([sys.executable, "-c", code], timeout=60)
    assert done.returncode == 0, done.stderr
    where, uuid = done.stdout.split()
    assert where.startswith(str(bundle.path)), f"imported from {where}, not from the bundle"
    assert uuid == "GPU-bfb5ba6a-db8e-fc7b-5fdc-aeabcd37bce1"


def test_the_accelerator_table(load_event: GpuMetadataEvent) -> None:
    table = accelerator_table(load_event).splitlines()
    assert table[0].split()[:4] == ["idx", "kind", "name", "uuid"]
    row = table[1]
    for cell in ("NVIDIA H200", "GPU-bfb5ba6a-db8e-fc7b-5fdc-aeabcd37bce1", "9.0", "100", "689.9", "700.0"):
        assert cell in row, f"{cell!r} missing from {row!r}"
    cpu = load_event.model_copy(update={"accelerators": []})
    assert "CPU-only" in accelerator_table(cpu)


def test_delivery_lines() -> None:
    text = delivery_lines(
        [
            Delivery(202, ["a"], 1),
            Delivery(207, ["b", "c"], 2, refused=[{"event_id": "c", "status": 422, "errors": ["x"]}]),
        ]
    )
    assert text.splitlines() == [
        "POST /metadata -> 202  1 event(s)  attempts=1",
        "  a",
        "POST /metadata -> 207  2 event(s)  attempts=2  refused=1",
        "  b",
        "  refused c: 422 ['x']",
    ]


def test_cli_snapshot_prints_the_table_and_the_cost(
    h200_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["snapshot", "--replay", str(h200_dir / "nvidia-smi-q-load.xml"), "--repeat", "5", "--json"])
        == 0
    )
    out = capsys.readouterr().out
    assert "NVIDIA H200" in out and '"snapshots": 5' in out and '"utilization_gpu_pct": 99.0' in out


def test_cli_bundle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bundle", "--out", str(tmp_path)]) == 0
    assert "sha256=" in capsys.readouterr().out and (tmp_path / "ca4_producer.zip").exists()
