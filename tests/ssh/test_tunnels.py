"""scripts/tunnels_ca4.sh over real SSH: each local port reaches its target through the
bastion (and edge node 0 for NodePorts), `up` is idempotent, a dead tunnel is restarted
alone, a foreign program on a port is refused, `down` leaves no process behind."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator

import pytest

from tests.kube import pins
from tests.ssh.conftest import LabEnv
from tests.ssh.lab import BASTION_LAN, EDGE_ADDRS

pytestmark = pytest.mark.timeout(600)
P = {k: int(v) for k, v in pins().items() if k.endswith("_PORT") or k.endswith("_BASE")}
# local port -> the NodePort banner it must reach on edge0 (two brokers in this lab)
NODE_FORWARDS = {
    P["CA4_KAFKA_TUNNEL_PORT_BASE"]: P["CA4_KAFKA_NODE_PORT_BASE"],
    P["CA4_KAFKA_TUNNEL_PORT_BASE"] + 1: P["CA4_KAFKA_NODE_PORT_BASE"] + 1,
    P["CA4_GRAFANA_LOCAL_PORT"]: P["CA4_GRAFANA_NODE_PORT"],
    P["CA4_PROMETHEUS_LOCAL_PORT"]: P["CA4_PROMETHEUS_NODE_PORT"],
}
NAMES = ["k3s-api", "kafka-0", "kafka-1", "grafana", "prometheus"]


def pids(lab_env: LabEnv) -> dict[str, int]:
    """PID of each tunnel from its PID file."""
    folder = lab_env.root / "state" / "tunnels"
    return {p.stem: int(p.read_text().split()[0]) for p in folder.glob("*.pid")} if folder.exists() else {}


@pytest.fixture(scope="module")
def opened(lab_env: LabEnv) -> Iterator[dict[str, object]]:
    """`up` with two brokers; `down` afterwards whatever happened."""
    code, out = lab_env.run("tunnels_ca4.sh", "up", CA4_KAFKA_BROKERS="2")
    try:
        yield {"code": code, "out": out, "pids": pids(lab_env)}
    finally:
        lab_env.run("tunnels_ca4.sh", "down")


def test_up_opens_one_tunnel_per_broker_and_the_monitoring_ones(opened: dict[str, object]) -> None:
    """k3s-api, kafka-0, kafka-1 (CA4_KAFKA_BROKERS=2), grafana, prometheus; one ssh each."""
    assert opened["code"] == 0, f"up failed:\n{opened['out']}"
    assert sorted(opened["pids"]) == sorted(NAMES), f"tunnels opened: {opened['pids']}"  # type: ignore[arg-type]
    assert len(set(opened["pids"].values())) == len(NAMES), "tunnels share a process"  # type: ignore[union-attr]


def test_node_ports_are_reached_through_edge0(lab_env: LabEnv, opened: dict[str, object]) -> None:
    """localhost:19092+N, 3000 and 19090 answer with the banner of the NodePort they map to,
    connected from edge0 itself (sshd on the node), which accepted the login from the bastion."""
    assert opened["code"] == 0
    for local, node_port in NODE_FORWARDS.items():
        banner = lab_env.lab.connect_from_ws("127.0.0.1", local, read=True)
        assert banner == f"ca4-echo {node_port}", (
            f"localhost:{local} answered {banner!r}, expected the banner of NodePort {node_port}"
        )
    seen = [json.loads(line) for line in lab_env.echo_log.read_text().splitlines()]
    assert {s["client"] for s in seen} == {EDGE_ADDRS[0]}, (
        f"NodePorts were reached from {seen}, expected edge0's own address"
    )
    logins = set(
        re.findall(r"Accepted publickey for ubuntu from (\S+)", lab_env.lab.edges[0].log.read_text())
    )
    assert logins == {BASTION_LAN}, f"edge0 accepted logins from {logins}"


def test_k3s_api_tunnel_goes_through_the_bastion_directly(lab_env: LabEnv, opened: dict[str, object]) -> None:
    """localhost:16443 reaches the K3s API on the server's 6443 with the bastion as client."""
    assert opened["code"] == 0
    before = len(lab_env.api_log.read_text().splitlines()) if lab_env.api_log.exists() else 0
    proc = lab_env.lab.in_ws(
        [
            "curl",
            "-sk",
            "--max-time",
            "10",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "https://127.0.0.1:16443/api/v1/nodes",
        ],
        {},
        timeout=30,
    )
    assert proc.stdout == "401", f"the API behind the tunnel answered {proc.stdout!r} {proc.stderr}"
    calls = [json.loads(line) for line in lab_env.api_log.read_text().splitlines()[before:]]
    assert calls and calls[-1]["client"] == BASTION_LAN, f"API calls through the tunnel: {calls}"


def test_up_again_leaves_every_tunnel_alone(lab_env: LabEnv, opened: dict[str, object]) -> None:
    """Same processes, and it says so."""
    code, out = lab_env.run("tunnels_ca4.sh", "up", CA4_KAFKA_BROKERS="2")
    assert code == 0, out
    assert pids(lab_env) == opened["pids"], f"PIDs changed: {opened['pids']} -> {pids(lab_env)}"
    assert out.count("already up") == len(NAMES), out


def test_status_reports_each_tunnel(lab_env: LabEnv, opened: dict[str, object]) -> None:
    """Every open tunnel is up and answers; a named closed one makes status fail."""
    code, out = lab_env.run("tunnels_ca4.sh", "status", *NAMES)
    assert code == 0, out
    for name in NAMES:
        assert re.search(rf"^\s+{name}\s+up\s+pid \d+, localhost:\d+ answers$", out, re.M), (
            f"{name} not up in:\n{out}"
        )
    code, out = lab_env.run("tunnels_ca4.sh", "status", "kafka-2")
    assert code == 1 and re.search(r"kafka-2\s+down", out), f"kafka-2 should be down: {code}\n{out}"


def test_a_dead_tunnel_is_reopened_alone(lab_env: LabEnv, opened: dict[str, object]) -> None:
    """Kill one ssh: status shows it stale, up restarts only that one."""
    before = pids(lab_env)
    subprocess.run(["kill", str(before["kafka-1"])], check=True, timeout=10)
    for _ in range(50):
        if (
            subprocess.run(
                ["kill", "-0", str(before["kafka-1"])], check=False, capture_output=True, timeout=5
            ).returncode
            != 0
        ):
            break
        subprocess.run(["sleep", "0.1"], check=True, timeout=5)
    code, out = lab_env.run("tunnels_ca4.sh", "status", "kafka-1")
    assert code == 1 and "stale PID file" in out, f"status after the kill: {code}\n{out}"
    code, out = lab_env.run("tunnels_ca4.sh", "up", CA4_KAFKA_BROKERS="2")
    assert code == 0, out
    after = pids(lab_env)
    assert after["kafka-1"] != before["kafka-1"], "kafka-1 was not restarted"
    assert {k: v for k, v in after.items() if k != "kafka-1"} == {
        k: v for k, v in before.items() if k != "kafka-1"
    }, "other tunnels were restarted"
    assert (
        lab_env.lab.connect_from_ws("127.0.0.1", P["CA4_KAFKA_TUNNEL_PORT_BASE"] + 1, read=True)
        == f"ca4-echo {P['CA4_KAFKA_NODE_PORT_BASE'] + 1}"
    )


def test_a_port_taken_by_another_program_is_refused(lab_env: LabEnv, opened: dict[str, object]) -> None:
    """grafana closed, a foreign listener on its port: up fails naming the port, kills nothing."""
    code, out = lab_env.run("tunnels_ca4.sh", "down", "grafana")
    assert code == 0 and "grafana: closed" in out, out
    port = P["CA4_GRAFANA_LOCAL_PORT"]
    foreign = lab_env.lab.spawn(
        lab_env.lab.ws_ns,
        [
            "timeout",
            "60",
            "python3",
            "-c",
            # SO_REUSEADDR: the closed tunnel's connections may still be in TIME_WAIT
            "import socket, time; s = socket.socket(); "
            "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
            f"s.bind(('127.0.0.1', {port})); s.listen(); time.sleep(60)",
        ],
        lab_env.root / "foreign.log",
    )
    try:
        lab_env.lab.wait_port(lab_env.lab.ws_ns, "127.0.0.1", port)
        code, out = lab_env.run("tunnels_ca4.sh", "up", "grafana")
        assert code == 1 and f"localhost:{port} is taken by a program this script did not start" in out, (
            f"{code}\n{out}"
        )
        assert foreign.poll() is None, "the foreign listener was killed"
    finally:
        foreign.terminate()
        foreign.wait(timeout=10)


def test_down_closes_everything_and_is_idempotent(lab_env: LabEnv, opened: dict[str, object]) -> None:
    """No ssh left on the workstation, no PID files; a second down does nothing."""
    code, out = lab_env.run("tunnels_ca4.sh", "down")
    assert code == 0, out
    assert lab_env.lab.ws_pids() == [], f"processes left on the workstation: {lab_env.lab.ws_pids()}"
    assert pids(lab_env) == {}, f"PID files left: {pids(lab_env)}"
    code, out = lab_env.run("tunnels_ca4.sh", "down")
    assert code == 0 and "no CA4 tunnel is open" in out, out
