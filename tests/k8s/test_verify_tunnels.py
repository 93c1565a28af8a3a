"""The verify targets open the tunnels they need, as make ca4-tunnels-up does, when a stack
exists: the live target runs scripts/tunnels_ca4.sh (through a stand-in ssh that never leaves
the machine) and its Kafka and Prometheus prerequisites are then met."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

from tests.bdd.targets.live import LiveTarget
from tests.k8s.conftest import SAMPLE_OUTPUTS
from tests.k8s.test_scripts import STUB_SSH
from tests.kube import SCRIPTS, pins
from tests.tools.run import run

# the sample outputs list two edge nodes: two brokers
PORTS = ("CA4_K3S_API_LOCAL_PORT", "CA4_GRAFANA_LOCAL_PORT", "CA4_PROMETHEUS_LOCAL_PORT")


def _taken(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_the_live_target_opens_the_tunnels_it_needs(tmp_path: Path) -> None:
    values = pins()
    kafka = int(values["CA4_KAFKA_TUNNEL_PORT_BASE"])
    ports = [int(values[p]) for p in PORTS] + [kafka, kafka + 1]
    if busy := [p for p in ports if _taken(p)]:
        pytest.skip(f"ports {busy} are taken on this machine; the tunnels cannot open there")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "ssh").write_text(STUB_SSH)
    (bin_dir / "ssh").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CA4_", "EDGE_", "KUBECONFIG"))}
    env.update(
        PATH=f"{bin_dir}:{os.environ['PATH']}",
        STUB_SSH_LOG=str(tmp_path / "ssh.log"),
        STUB_PYTHON=sys.executable,
        CA4_TF_OUTPUTS=str(SAMPLE_OUTPUTS),
        CA4_STATE_DIR=str(tmp_path / "state"),
        CA4_SECRETS_DIR=str(tmp_path / "kubeconfigs"),
    )
    target = LiveTarget(env)
    assert target.missing("kafka") and target.missing("prometheus"), "nothing should be up before"
    try:
        target.open_tunnels()
        assert target.tunnel_problem == "", target.tunnel_problem
        assert target.missing("kafka") is None, target.missing("kafka")
        assert target.missing("prometheus") is None, target.missing("prometheus")
        forwarded = (tmp_path / "ssh.log").read_text()
        assert f"-L localhost:{kafka + 1}:" in forwarded, f"one Kafka tunnel per broker:\n{forwarded}"
        target.open_tunnels()  # everything answers: nothing is started a second time
        assert len((tmp_path / "ssh.log").read_text().splitlines()) == len(ports), "a tunnel opened twice"
    finally:
        down = run([str(SCRIPTS / "tunnels_ca4.sh"), "down"], timeout=60, env=env)
    assert down.returncode == 0 and "closed" in down.stdout, down.stdout + down.stderr
    assert not [p for p in ports if _taken(p)], "a tunnel outlived tunnels_ca4.sh down"


def test_without_a_stack_no_tunnel_is_tried(tmp_path: Path) -> None:
    empty = tmp_path / "outputs.json"
    empty.write_text("{}")
    target = LiveTarget({"CA4_TF_OUTPUTS": str(empty), "PATH": "/nonexistent"})
    target.open_tunnels()  # would fail loudly if it ran the script with this PATH
    assert target.tunnel_problem == ""
