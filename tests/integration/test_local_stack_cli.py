"""The local-stack CLI and the demo, against the running stack."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from local_stack import demo
from tests.integration.support import Stack


def _cli(local_stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    cfg = local_stack.cfg
    env = {
        **os.environ,
        "CA4_LOCAL_STATE_DIR": str(cfg.state_dir),
        "CA4_LOCAL_KAFKA_PORT": str(cfg.kafka_port),
        "CA4_LOCAL_MONGO_PORT": str(cfg.mongo_port),
        "CA4_LOCAL_S3_PORT": str(cfg.s3_port),
        "CA4_LOCAL_API_PORT": str(cfg.api_port),
        "CA4_LOCAL_WORKER_PORT": str(cfg.worker_port),
        "CA4_LOCAL_PROMETHEUS_PORT": str(cfg.prometheus_port),
    }
    return subprocess.run(
        [sys.executable, "-m", "local_stack", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_status_reports_every_component_healthy(local_stack: Stack) -> None:
    out = _cli(local_stack, "status")
    assert out.returncode == 0, out.stdout + out.stderr
    for name in ("s3", "ferretdb", "kafka", "metadata-worker", "processor-api", "prometheus"):
        assert any(line.startswith(name) and "healthy" in line for line in out.stdout.splitlines()), (
            out.stdout
        )


def test_up_again_is_idempotent(local_stack: Stack) -> None:
    out = _cli(local_stack, "up")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "kafka already running" in out.stdout
    assert "processor-api already running" in out.stdout


def test_the_demo_lands_every_capture(local_stack: Stack, h200_dir: Path) -> None:
    result = demo.run(local_stack.cfg, h200_dir)
    lines = demo.report(result, archive_expected=True)
    assert result.ok(archive_expected=True), "\n".join(lines)
    assert len(result.stored) == 6 and lines[-1] == "RESULT: OK, every event landed"
    assert any(line.startswith("end-to-end latency") for line in lines)
