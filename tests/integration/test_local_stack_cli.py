"""The local-stack CLI and the demo, against the running stack."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from local_stack import demo
from local_stack.config import port_env, port_fields
from tests.integration.support import Stack
from tests.tools.run import run


def _cli(local_stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    cfg = local_stack.cfg
    env = (
        dict(os.environ)
        | {port_env(field): str(getattr(cfg, field)) for field in port_fields()}
        | {"CA4_LOCAL_STATE_DIR": str(cfg.state_dir), "CA4_LOCAL_BACKEND": cfg.backend}
    )
    return run([sys.executable, "-m", "local_stack", *args], timeout=120, env=env)


def test_status_reports_every_component_healthy(local_stack: Stack) -> None:
    out = _cli(local_stack, "status")
    assert out.returncode == 0, out.stdout + out.stderr
    states = {line.split()[0]: line.split()[1] for line in out.stdout.splitlines() if line.strip()}
    for name in ("s3", "ferretdb", "kafka", "metadata-worker", "processor-api", "prometheus"):
        assert states.get(name) == "healthy", out.stdout


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
