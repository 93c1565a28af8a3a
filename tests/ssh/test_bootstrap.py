"""scripts/bootstrap_k3s_ca4.sh over real SSH: the hop through the bastion, the server and
agent installs with their flags, one token reused, the idempotent second run, a rejoining
agent, a token recovered from the server, and the kubeconfig (mode 600, server = tunnel)."""

from __future__ import annotations

import base64
import json
import re
import stat
from typing import Any

import pytest
import yaml

from tests.kube import pins
from tests.ssh.conftest import API_TOKEN, LabEnv
from tests.ssh.lab import BASTION_LAN, EDGE_ADDRS

pytestmark = pytest.mark.timeout(600)
SERVER, AGENT = EDGE_ADDRS
VERSION = pins()["CA4_K3S_VERSION_PINNED"]


@pytest.fixture(scope="module")
def first(lab_env: LabEnv) -> dict[str, Any]:
    """The first bootstrap of two bare hosts."""
    code, out = lab_env.run("bootstrap_k3s_ca4.sh")
    kubeconfig = lab_env.root / "kubeconfigs" / "ca4-kubeconfig"
    token = lab_env.root / "kubeconfigs" / "ca4-k3s-token"
    return {
        "code": code,
        "out": out,
        "installs": lab_env.installs(),
        "kubeconfig": kubeconfig.read_bytes() if kubeconfig.exists() else b"",
        "token": token.read_text().strip() if token.exists() else "",
    }


def test_first_run_succeeds(first: dict[str, Any]) -> None:
    """Exit 0 and every node reported Ready with the pinned version."""
    assert first["code"] == 0, f"bootstrap failed ({first['code']}):\n{first['out'][-3000:]}"
    for ip in EDGE_ADDRS:
        assert re.search(rf"{re.escape(ip)}\s+\S+\s+{re.escape(VERSION)}\s+Ready", first["out"]), (
            f"node {ip} not reported Ready:\n{first['out']}"
        )


def test_server_then_agent_installed_on_their_hosts(first: dict[str, Any]) -> None:
    """One server install on the first node, one agent on the second, each run as root on
    the host it was meant for (the stand-in records the addresses it ran with)."""
    installs = first["installs"]
    assert [i["argv"][0] for i in installs] == ["server", "agent"], (
        f"installer calls: {[i['argv'] for i in installs]}"
    )
    for rec, ip in zip(installs, EDGE_ADDRS, strict=True):
        assert rec["addresses"] == [ip], f"{rec['argv'][0]} install ran on {rec['addresses']}, expected {ip}"
        assert rec["uid"] == 0, (
            f"{rec['argv'][0]} install ran as uid {rec['uid']}, expected root through sudo"
        )
        assert rec["env"]["INSTALL_K3S_VERSION"] == VERSION, (
            f"version {rec['env']['INSTALL_K3S_VERSION']}, pinned {VERSION}"
        )


def test_server_flags(first: dict[str, Any]) -> None:
    """--node-ip and --advertise-address = private IP; TLS SANs for it, 127.0.0.1 and localhost;
    kubeconfig mode 600; no K3S_URL (it is the server)."""
    server = first["installs"][0]
    argv = set(server["argv"][1:])
    for flag in (
        f"--node-ip={SERVER}",
        f"--advertise-address={SERVER}",
        f"--tls-san={SERVER}",
        "--tls-san=127.0.0.1",
        "--tls-san=localhost",
        "--write-kubeconfig-mode=600",
    ):
        assert flag in argv, f"server install lacks {flag}: {sorted(argv)}"
    assert server["env"]["K3S_URL"] is None, f"the server got K3S_URL={server['env']['K3S_URL']}"


def test_agent_joins_the_server_with_the_same_token(first: dict[str, Any]) -> None:
    """K3S_URL = https://<server private IP>:6443; K3S_TOKEN = the server's = the local token file."""
    server, agent = first["installs"]
    assert f"--node-ip={AGENT}" in agent["argv"], f"agent flags {agent['argv']}"
    assert agent["env"]["K3S_URL"] == f"https://{SERVER}:6443", f"agent K3S_URL {agent['env']['K3S_URL']}"
    assert re.fullmatch(r"[0-9a-f]{64}", first["token"]), f"token file holds {first['token']!r}"
    assert server["env"]["K3S_TOKEN"] == agent["env"]["K3S_TOKEN"] == first["token"], (
        "server, agent and token file disagree"
    )


def test_token_and_kubeconfig_are_private(lab_env: LabEnv, first: dict[str, Any]) -> None:
    """Mode 600, in a 700 folder."""
    folder = lab_env.root / "kubeconfigs"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700, f"{folder}: {oct(folder.stat().st_mode)}"
    for name in ("ca4-kubeconfig", "ca4-k3s-token"):
        mode = stat.S_IMODE((folder / name).stat().st_mode)
        assert mode == 0o600, f"{folder / name}: mode {oct(mode)}, expected 0o600"


def test_kubeconfig_points_at_the_tunnel_and_keeps_the_credentials(
    lab_env: LabEnv, first: dict[str, Any]
) -> None:
    """Server https://127.0.0.1:16443 in the cluster entry; CA and user taken from the server's k3s.yaml."""
    conf = yaml.safe_load(first["kubeconfig"])
    (cluster,) = conf["clusters"]
    assert cluster["cluster"]["server"] == "https://127.0.0.1:16443", f"server {cluster['cluster']['server']}"
    assert base64.b64decode(cluster["cluster"]["certificate-authority-data"]) == lab_env.ca_pem, (
        "the cluster CA was not kept"
    )
    assert conf["current-context"] == "ca4", f"context {conf['current-context']}"
    assert conf["users"][0]["user"]["token"] == API_TOKEN, "the user's credentials were not kept"


def test_every_hop_went_through_the_bastion(lab_env: LabEnv, first: dict[str, Any]) -> None:
    """The workstation cannot reach the nodes; their sshds saw logins from the bastion only;
    the bastion forwarded to both; the node check reached the API through the tunnel."""
    lab = lab_env.lab
    for ip in EDGE_ADDRS:
        assert lab.connect_from_ws(ip, 22) is None, (
            f"the workstation reaches {ip}:22 directly: the test would prove nothing"
        )
    for edge in lab.edges:
        log = edge.log.read_text()
        sources = set(re.findall(r"Accepted publickey for ubuntu from (\S+)", log))
        assert sources == {BASTION_LAN}, (
            f"{edge.name} accepted logins from {sources}, expected only the bastion {BASTION_LAN}"
        )
    bastion_log = lab.bastion.log.read_text()
    for ip in EDGE_ADDRS:
        assert re.search(
            rf"direct-tcpip.*{re.escape(ip)} port 22|target {re.escape(ip)} port 22", bastion_log
        ), f"the bastion did not forward to {ip}:22"
    api_calls = [json.loads(line) for line in lab_env.api_log.read_text().splitlines()]
    assert any(
        c["path"].startswith("/api/v1/nodes")
        and c["client"] == BASTION_LAN
        and c["auth"] == f"Bearer {API_TOKEN}"
        for c in api_calls
    ), f"no authenticated node list through the bastion's tunnel: {api_calls}"


def test_the_temporary_tunnel_is_closed_again(lab_env: LabEnv, first: dict[str, Any]) -> None:
    """The bootstrap opened the K3s API tunnel for its check and closed it: nothing left running."""
    assert first["code"] == 0
    assert lab_env.lab.ws_pids() == [], f"processes left on the workstation: {lab_env.lab.ws_pids()}"
    assert not (lab_env.root / "state" / "tunnels" / "k3s-api.pid").exists(), "the tunnel's PID file is left"


@pytest.fixture(scope="module")
def second(lab_env: LabEnv, first: dict[str, Any]) -> dict[str, Any]:
    """The same bootstrap again, nothing changed in between."""
    code, out = lab_env.run("bootstrap_k3s_ca4.sh")
    return {"code": code, "out": out, "installs": lab_env.installs()}


def test_second_run_changes_nothing(lab_env: LabEnv, first: dict[str, Any], second: dict[str, Any]) -> None:
    """No installer call, both nodes left alone, the same kubeconfig and token bytes."""
    assert second["code"] == 0, f"second run failed:\n{second['out'][-2000:]}"
    assert second["installs"] == first["installs"], (
        f"the second run installed again: {second['installs'][len(first['installs']) :]}"
    )
    assert second["out"].count("already running; left alone") == 2, (
        f"expected both nodes left alone:\n{second['out']}"
    )
    assert (lab_env.root / "kubeconfigs" / "ca4-kubeconfig").read_bytes() == first["kubeconfig"], (
        "the kubeconfig changed"
    )
    assert (lab_env.root / "kubeconfigs" / "ca4-k3s-token").read_text().strip() == first["token"], (
        "the token changed"
    )


@pytest.fixture(scope="module")
def rejoin(lab_env: LabEnv, second: dict[str, Any]) -> dict[str, Any]:
    """K3s uninstalled from the agent (a replaced node), then the bootstrap again."""
    proc = lab_env.lab.edge_ssh(1, "sudo -n /usr/local/bin/k3s-agent-uninstall.sh")
    assert proc.returncode == 0, f"uninstalling the agent stand-in failed: {proc.stderr}"
    before = len(lab_env.installs())
    code, out = lab_env.run("bootstrap_k3s_ca4.sh")
    return {"code": code, "out": out, "new": lab_env.installs()[before:]}


def test_a_replaced_agent_rejoins_with_the_kept_token(first: dict[str, Any], rejoin: dict[str, Any]) -> None:
    """Only the agent is installed again, with the token kept from the first run."""
    assert rejoin["code"] == 0, f"rejoin run failed:\n{rejoin['out'][-2000:]}"
    assert [(r["argv"][0], r["addresses"]) for r in rejoin["new"]] == [("agent", [AGENT])], (
        f"installs: {rejoin['new']}"
    )
    assert rejoin["new"][0]["env"]["K3S_TOKEN"] == first["token"], "the agent got another token"
    assert "node 198.51.100.10 (server): K3s" in rejoin["out"] and "left alone" in rejoin["out"], rejoin[
        "out"
    ]


def test_a_lost_token_file_is_recovered_from_the_server(
    lab_env: LabEnv, first: dict[str, Any], rejoin: dict[str, Any]
) -> None:
    """Without the local token the running cluster is kept: the token comes back from the
    server (mode 600) and nothing is reinstalled."""
    token_file = lab_env.root / "kubeconfigs" / "ca4-k3s-token"
    token_file.unlink()
    before = len(lab_env.installs())
    code, out = lab_env.run("bootstrap_k3s_ca4.sh")
    assert code == 0, f"run without a token file failed:\n{out[-2000:]}"
    assert "recovered from the running server" in out, out
    assert token_file.read_text().strip() == first["token"], "the recovered token differs"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600, "the recovered token file is not mode 600"
    assert lab_env.installs()[before:] == [], "a node was reinstalled although the cluster runs"
