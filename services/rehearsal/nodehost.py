"""The node's side of ``k3s server`` and ``k3s agent`` (``k3s``): ``NodeHost`` starts the control
plane (on the server) and this node's kubelet, kube-proxy and kube-router as the rehearsal's
daemons, and writes what K3s writes (its kubeconfig, its token file).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from local_stack.procs import Process
from rehearsal import configs, controlplane
from rehearsal.build import Builder
from rehearsal.daemons import WAIT_S, Daemons, RehearsalError, tail
from rehearsal.join import JOIN_WAIT_S, bootstrap_secret, bootstrap_token, fetch_ca, token_kubeconfig
from rehearsal.pki import Pki
from rehearsal.topology import API_SERVICE_IP, Topology

MANIFESTS = Path(__file__).resolve().parent / "manifests"
KUBECONFIG = Path("/etc/rancher/k3s/k3s.yaml")
SERVER_DIR = Path("/var/lib/rancher/k3s/server")
AGENT_DIR = Path("/var/lib/rancher/k3s/agent")
SERVER_DAEMONS = ("kine", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
NODE_DAEMONS = ("kubelet", "kube-proxy", "kube-router")


class NodeHost(Daemons):
    """This node of the rehearsal, as its ``k3s`` sees it (the shim's environment names it)."""

    def __init__(self, env: dict[str, str]) -> None:
        state = Path(env["CA4_REHEARSAL_DIR"])
        super().__init__(state)
        recorded = json.loads((state / "cluster.json").read_text())["nodes"]
        self.topology = Topology(state, int(recorded))
        self.node = next(n for n in self.topology.nodes if n.name == env["CA4_REHEARSAL_NODE"])
        self.builder = Builder(Path(env["CA4_CACHE_DIR"]))
        self.pki = Pki(state / "pki")

    def daemons(self, role: str) -> list[str]:
        """The daemons of a unit on this node."""
        node = [f"{self.node.name}-{d}" for d in NODE_DAEMONS]
        return [*SERVER_DAEMONS, *node] if role == "server" else node

    def active(self, role: str) -> bool:
        """Every daemon of the role runs."""
        return all(self.proc(name).alive() for name in self.daemons(role))

    def stop(self, role: str) -> None:
        """Stop the role's daemons, the node's first (its pods keep running in containerd)."""
        for name in reversed(self.daemons(role)):
            self.proc(name).stop(timeout=15)

    def start_here(self, name: str, argv: list[str]) -> Process:
        """Start a daemon in this node's namespaces (this process already runs in them)."""
        return self.start(name, argv)

    def kubectl(self, kubeconfig: Path, *args: str, stdin: str | None = None) -> str:
        """kubectl against the API, inside the node; its stdout."""
        argv = ["kubectl", f"--kubeconfig={kubeconfig}", "--request-timeout=20s", *args]
        done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=WAIT_S, check=False)
        if done.returncode != 0:
            raise RehearsalError(f"kubectl {' '.join(args[:3])}: {done.stderr.strip()[-600:]}")
        return done.stdout

    # --- server -----------------------------------------------------------------------------

    def server(self, flags: argparse.Namespace, token: str) -> None:
        """The control plane and this node's agents; K3s's kubeconfig, token and manifests."""
        node = self.node
        if node != self.topology.nodes[0] or flags.node_ip not in (None, node.addr):
            raise RehearsalError(f"k3s server: the rehearsal's server is {self.topology.nodes[0].addr}")
        users = controlplane.USERS | {f"system:node:{n.name}": ("system:nodes",) for n in self.topology.nodes}
        self.pki.ensure(node.addr, API_SERVICE_IP, users)
        covered = {node.addr, "127.0.0.1", "localhost", API_SERVICE_IP}
        if uncovered := [san for san in flags.tls_san if san not in covered]:
            raise RehearsalError(
                f"k3s server: --tls-san {uncovered}: the rehearsal's certificate covers {sorted(covered)}"
            )
        encryption = self.pki.encryption_config() if flags.secrets_encryption else None
        binary = self.builder.binary
        (self.state / "kine").mkdir(exist_ok=True)
        kine = self.start_here("kine", controlplane.kine(binary("kine"), self.state))
        self.wait("kine on 127.0.0.1:2379", lambda: port_open("127.0.0.1", 2379), kine)
        apiserver = controlplane.apiserver(binary("kube-apiserver"), self.pki, node, encryption)
        started = self.start_here("kube-apiserver", apiserver)
        admin = self.pki.kubeconfig("admin", "https://127.0.0.1:6443", self.state / "run" / "node-admin.kc")
        self.wait("kube-apiserver /readyz", lambda: self._readyz(admin), started)
        for rbac in ("kubelet-api.yaml", "kube-router.yaml", "node-join.yaml"):
            self.kubectl(admin, "apply", "-f", str(MANIFESTS / rbac))
        self.kubectl(admin, "apply", "-f", "-", stdin=bootstrap_secret(token))
        inside = f"https://{node.addr}:6443"
        cm = self.pki.kubeconfig(
            "system:kube-controller-manager", inside, self.state / "controller-manager.kc"
        )
        sched = self.pki.kubeconfig("system:kube-scheduler", inside, self.state / "scheduler.kc")
        manager = controlplane.controller_manager(binary("kube-controller-manager"), self.pki, cm)
        self.start_here("kube-controller-manager", manager)
        self.start_here("kube-scheduler", controlplane.scheduler(binary("kube-scheduler"), sched))
        kubelet_kc = self.pki.kubeconfig(f"system:node:{node.name}", inside, node.dir / "kubelet.kubeconfig")
        proxy_kc = self.pki.kubeconfig("system:kube-proxy", inside, node.dir / "kube-proxy.kubeconfig")
        router_kc = self.pki.kubeconfig("system:kube-router", inside, node.dir / "kube-router.kubeconfig")
        self._agents(
            self.pki.path("ca.crt"),
            flags.node_label,
            kubelet_kc=kubelet_kc,
            proxy_kc=proxy_kc,
            router_kc=router_kc,
            bootstrap=None,
        )
        ca_hash = hashlib.sha256(self.pki.path("ca.crt").read_bytes()).hexdigest()
        write_private(SERVER_DIR / "token", f"K10{ca_hash}::server:{token}\n", 0o600)
        write_private(KUBECONFIG, admin.read_text(), int(flags.write_kubeconfig_mode or "600", 8))
        for manifest in sorted((SERVER_DIR / "manifests").glob("*.yaml")):
            self.kubectl(admin, "apply", "-f", str(manifest))

    def _readyz(self, admin: Path) -> bool:
        argv = ["kubectl", f"--kubeconfig={admin}", "--request-timeout=3s", "get", "--raw", "/readyz"]
        return subprocess.run(argv, capture_output=True, timeout=10, check=False).returncode == 0

    # --- agent ------------------------------------------------------------------------------

    def agent(self, flags: argparse.Namespace, token: str, url: str) -> None:
        """Join ``url`` with the token: the CA, the kubelet's TLS bootstrap, kube-proxy, kube-router."""
        node = self.node
        if flags.node_ip not in (None, node.addr):
            raise RehearsalError(f"k3s agent: --node-ip {flags.node_ip} is not this node's {node.addr}")
        token_id, secret = bootstrap_token(token)
        bearer = f"{token_id}.{secret}"
        ca = fetch_ca(url, bearer)
        ca_file = AGENT_DIR / "server-ca.crt"
        write_private(ca_file, ca, 0o644)
        bootstrap = AGENT_DIR / "bootstrap.kubeconfig"
        write_private(bootstrap, token_kubeconfig(url, ca, bearer), 0o600)
        kubeconfig = AGENT_DIR / "kubelet.kubeconfig"
        self._agents(
            ca_file,
            flags.node_label,
            kubelet_kc=kubeconfig,
            proxy_kc=kubeconfig,
            router_kc=kubeconfig,
            bootstrap=bootstrap,
        )

    # --- both -------------------------------------------------------------------------------

    def _agents(
        self,
        ca_file: Path,
        labels: list[str],
        *,
        kubelet_kc: Path,
        proxy_kc: Path,
        router_kc: Path,
        bootstrap: Path | None,
    ) -> None:
        """This node's kubelet and kube-proxy; once registered, its pod range, then kube-router."""
        node = self.node
        (node.dir / "kubelet.json").write_text(
            configs.kubelet_config(node, ca_file, node.dir / "resolv.conf")
        )
        (node.dir / "kube-proxy.json").write_text(configs.kube_proxy_config(node, proxy_kc))
        argv = controlplane.kubelet(self.builder.binary("kubelet"), node, kubelet_kc, labels, bootstrap)
        kubelet = self.start_here(f"{node.name}-kubelet", argv)
        if bootstrap is not None:
            self.wait(
                f"{node.name}: the kubelet's client certificate (TLS bootstrap)", kubelet_kc.exists, kubelet
            )
        proxy = [str(self.builder.binary("kube-proxy")), f"--config={node.dir}/kube-proxy.json"]
        self.start_here(f"{node.name}-kube-proxy", proxy)
        self.wait(
            f"{node.name} registered", lambda: self._get_node(kubelet_kc) is not None, kubelet, JOIN_WAIT_S
        )
        if not (self._get_node(kubelet_kc) or {}).get("spec", {}).get("podCIDR"):
            patch = {"spec": {"podCIDR": node.pod_cidr, "podCIDRs": [node.pod_cidr]}}
            self.kubectl(kubelet_kc, "patch", "node", node.name, "-p", json.dumps(patch))
        router = controlplane.kube_router(self.builder.binary("kube-router"), node, router_kc)
        started = self.start_here(f"{node.name}-kube-router", router)
        time.sleep(1)
        if not started.alive():
            raise RehearsalError(f"{node.name}: kube-router exited at start{tail(started.log_file)}")

    def _get_node(self, kubeconfig: Path) -> dict[str, Any] | None:
        argv = [
            "kubectl",
            f"--kubeconfig={kubeconfig}",
            "--request-timeout=5s",
            "get",
            "node",
            self.node.name,
            "-o",
            "json",
        ]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=15, check=False)
        return dict(json.loads(done.stdout)) if done.returncode == 0 else None


def write_private(path: Path, text: str, mode: int) -> None:
    """Write ``text`` with ``mode`` from the first byte."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    path.chmod(mode)


def port_open(host: str, port: int) -> bool:
    """Something accepts TCP there (1 s)."""
    import socket  # noqa: PLC0415

    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError:
        return False
    return True
