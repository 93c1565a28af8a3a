"""API_WORKERS: several server processes on one port, whose metrics a scrape sees added up."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.tools.run import run

SERVICES = str(Path(__file__).resolve().parents[2] / "services")


def _python(code: str, metrics_dir: Path | None) -> str:
    env = {**os.environ, "PYTHONPATH": SERVICES}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    if metrics_dir is not None:
        env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    done = run([sys.executable, "-c", code], env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _worker(requests: int, ready: int) -> str:
    return (
        "from processor_api import metrics\n"
        f"metrics.REQUESTS.labels('POST', '/metadata', '202').inc({requests})\n"
        f"metrics.KAFKA_READY.set({ready})\n"
    )


def _sample(text: str, name: str) -> float:
    lines = [line for line in text.splitlines() if line.startswith(name)]
    assert len(lines) == 1, f"one {name} sample expected in:\n{text}"
    return float(lines[0].rsplit(" ", 1)[1])


def test_a_scrape_adds_up_every_worker_process(tmp_path: Path) -> None:
    _python(_worker(requests=3, ready=1), tmp_path)
    _python(_worker(requests=4, ready=0), tmp_path)
    text = _python("from processor_api import metrics\nprint(metrics.exposition().decode())", tmp_path)
    assert _sample(text, 'ca4_api_requests_total{method="POST",route="/metadata",status="202"}') == 7
    # not ready while any live process reaches no broker
    assert _sample(text, "ca4_api_kafka_ready") == 0


def test_one_process_exposes_its_own_metrics_without_a_directory() -> None:
    text = _python(_worker(requests=2, ready=1) + "print(metrics.exposition().decode())", None)
    assert _sample(text, 'ca4_api_requests_total{method="POST",route="/metadata",status="202"}') == 2
    assert "process_resident_memory_bytes" in text, "the default collectors are there with one process"


@pytest.mark.parametrize("value", ["0", "65", "two"])
def test_a_bad_worker_count_is_a_named_configuration_error(value: str) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": SERVICES,
        "API_TOKENS": "a-token-of-sixteen-chars",
        "API_WORKERS": value,
    }
    done = run([sys.executable, "-m", "processor_api"], env=env, timeout=60)
    assert done.returncode == 2 and "configuration error in API_WORKERS" in done.stderr, done.stderr
