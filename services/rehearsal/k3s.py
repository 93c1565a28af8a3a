"""``k3s`` and ``systemctl`` on a rehearsal node: what K3s's install interface needs from a node.

``make ca4-bootstrap-k3s`` installs K3s by streaming an installer over SSH (``sudo -n sh -s --
server|agent FLAGS`` with ``INSTALL_K3S_VERSION``, ``K3S_TOKEN`` and, for agents, ``K3S_URL``),
then probes the node with ``k3s --version``, ``systemctl is-active k3s|k3s-agent`` and
``/etc/systemd/system/<unit>.service.env``. On the rehearsal the installer is
``services/rehearsal/install.sh`` (``CA4_K3S_INSTALL_SCRIPT``): it writes the same unit and env
files as K3s's and starts the unit with this ``systemctl``. The node's ``k3s`` (a shim in its
``/usr/local/sbin``, as an air-gapped K3s install pre-places the binary) runs this module:

    k3s --version          k3s version <Kubernetes version> (ca4-rehearsal)
    k3s server FLAGS       kine, kube-apiserver, controller-manager, scheduler, then this node's
                           kubelet, kube-proxy and kube-router; writes /etc/rancher/k3s/k3s.yaml
                           and /var/lib/rancher/k3s/server/token as K3s does, then applies the
                           manifests in /var/lib/rancher/k3s/server/manifests (K3s's bundled parts)
    k3s agent FLAGS        joins K3S_URL with K3S_TOKEN: the token (a bootstrap token derived from
                           it, which the server registered) fetches the cluster's CA, trusted on
                           first use as K3s does with a token without a CA hash, and the kubelet
                           gets its client certificate by TLS bootstrapping
    k3s ctr ARGS           containerd's ctr on the node's containerd
    k3s kubectl ARGS       kubectl with /etc/rancher/k3s/k3s.yaml

    systemctl daemon-reload | enable [--now] | disable | start | stop | restart | is-active [--quiet] UNIT

A unit is active while every daemon of its role runs; ``server`` and ``agent`` start what is not
running and return once the node is registered (K3s's unit is Type=notify: systemctl returns when
it is ready). The daemons are the rehearsal's (PID files under its state folder), so
``make rehearsal-down`` stops them like the rest.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import shlex
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from local_stack.procs import Process
from rehearsal import configs, controlplane
from rehearsal.build import Builder
from rehearsal.daemons import WAIT_S, Daemons, RehearsalError, tail
from rehearsal.pins import pins
from rehearsal.pki import Pki
from rehearsal.topology import API_SERVICE_IP, Topology

MANIFESTS = Path(__file__).resolve().parent / "manifests"
UNIT_DIR = Path("/etc/systemd/system")
KUBECONFIG = Path("/etc/rancher/k3s/k3s.yaml")
SERVER_DIR = Path("/var/lib/rancher/k3s/server")
AGENT_DIR = Path("/var/lib/rancher/k3s/agent")
ROLES = {"k3s": "server", "k3s-agent": "agent"}
SERVER_DAEMONS = ("kine", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
NODE_DAEMONS = ("kubelet", "kube-proxy", "kube-router")
JOIN_WAIT_S = 120


def bootstrap_token(k3s_token: str) -> tuple[str, str]:
    """The Kubernetes bootstrap token (id, secret) both roles derive from K3S_TOKEN."""
    digest = hashlib.sha256(k3s_token.encode()).hexdigest()
    return digest[:6], digest[6:22]


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


# --- the pieces -----------------------------------------------------------------------------


def bootstrap_secret(k3s_token: str) -> str:
    """The bootstrap-token Secret (kube-system) that lets agents holding K3S_TOKEN join."""
    token_id, secret = bootstrap_token(k3s_token)
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": f"bootstrap-token-{token_id}", "namespace": "kube-system"},
            "type": "bootstrap.kubernetes.io/token",
            "stringData": {
                "description": "K3S_TOKEN's bootstrap token: agents join with it (services/rehearsal/k3s.py)",
                "token-id": token_id,
                "token-secret": secret,
                "usage-bootstrap-authentication": "true",
            },
        }
    )


def fetch_ca(url: str, bearer: str) -> str:
    """The cluster's CA from the server, authenticated by the bootstrap token. The TLS connection
    cannot be verified yet (that is what the CA is for): trust on first use, as K3s does with a
    token that carries no CA hash."""
    request = urllib.request.Request(  # noqa: S310 - K3S_URL: https:// (the agent's own setting)
        f"{url}/api/v1/namespaces/kube-public/configmaps/kube-root-ca.crt",
        headers={"Authorization": f"Bearer {bearer}"},
    )
    context = ssl._create_unverified_context()  # noqa: S323 - trust on first use, see above
    deadline = time.monotonic() + JOIN_WAIT_S
    last = ""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(request, timeout=5, context=context) as resp:  # noqa: S310
                return str(json.loads(resp.read())["data"]["ca.crt"])
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code} (a wrong K3S_TOKEN is refused with 401)"
            if exc.code == 401:
                break
        except (urllib.error.URLError, OSError, KeyError, ValueError) as exc:
            last = str(exc)
        time.sleep(2)
    raise RehearsalError(f"k3s agent: cannot fetch the cluster's CA from {url}: {last}")


def token_kubeconfig(url: str, ca: str, bearer: str) -> str:
    """The kubelet's bootstrap kubeconfig: the server, its CA, the bootstrap token."""
    data = base64.b64encode(ca.encode()).decode()
    return (
        "apiVersion: v1\nkind: Config\n"
        f"clusters:\n- name: k3s\n  cluster:\n    server: {url}\n    certificate-authority-data: {data}\n"
        f"users:\n- name: bootstrap\n  user:\n    token: {bearer}\n"
        "contexts:\n- name: k3s\n  context:\n    cluster: k3s\n    user: bootstrap\ncurrent-context: k3s\n"
    )


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


# --- command lines --------------------------------------------------------------------------


def _flags(role: str, argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"k3s {role}", description=f"the rehearsal's k3s {role}")
    parser.add_argument("--node-ip")
    parser.add_argument("--node-label", action="append", default=[])
    if role == "server":
        parser.add_argument("--advertise-address")
        parser.add_argument("--tls-san", action="append", default=[])
        parser.add_argument("--write-kubeconfig-mode")
        parser.add_argument("--secrets-encryption", action="store_true")
    flags, unknown = parser.parse_known_args(argv)
    if unknown:
        raise RehearsalError(f"k3s {role}: the rehearsal's k3s does not know {' '.join(unknown)}")
    return flags


def k3s(argv: Sequence[str], env: dict[str, str]) -> int:
    """The node's ``k3s`` command."""
    command, rest = (argv[0], list(argv[1:])) if argv else ("--help", [])
    if command in ("--version", "-v", "version"):
        print(f"k3s version {pins().kubernetes} (ca4-rehearsal)")
        return 0
    if command == "ctr":
        ctr = ["ctr", "--address", configs.CONTAINERD_SOCKET, *rest]
        os.execvp("ctr", ctr)  # noqa: S606 - a multi-call binary's subcommand execs, as K3s's
    if command == "kubectl":
        os.execvp("kubectl", ["kubectl", f"--kubeconfig={KUBECONFIG}", *rest])  # noqa: S606 - as above
    if command in ("server", "agent"):
        token = env.get("K3S_TOKEN", "")
        if not token:
            raise RehearsalError(f"k3s {command}: K3S_TOKEN is not set")
        host = NodeHost(env)
        if command == "server":
            host.server(_flags("server", rest), token)
        else:
            url = env.get("K3S_URL", "")
            if not url:
                raise RehearsalError("k3s agent: K3S_URL is not set")
            host.agent(_flags("agent", rest), token, url.rstrip("/"))
        return 0
    print("usage: k3s --version | server FLAGS | agent FLAGS | ctr ARGS | kubectl ARGS", file=sys.stderr)
    return 0 if command in ("-h", "--help", "help") else 2


def unit_command(unit: str) -> tuple[list[str], dict[str, str]]:
    """ExecStart and EnvironmentFile of a unit the installer wrote, as argv and variables."""
    path = UNIT_DIR / f"{unit}.service"
    if not path.exists():
        raise RehearsalError(f"Unit {unit}.service not found.")
    text = path.read_text().replace("\\\n", " ")
    fields = dict(
        line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#")
    )
    env: dict[str, str] = {}
    env_file = Path(fields.get("EnvironmentFile", "").lstrip("-"))
    if env_file.is_file():
        for line in env_file.read_text().splitlines():
            if "=" in line and not line.lstrip().startswith("#"):
                key, value = line.split("=", 1)
                env[key.strip()] = " ".join(shlex.split(value))
    return shlex.split(fields.get("ExecStart", "")), env


def is_active(host: NodeHost, unit: str) -> bool:
    """A unit is active when the installer wrote it and every daemon of its role runs."""
    return (UNIT_DIR / f"{unit}.service").exists() and host.active(ROLES[unit])


def run_unit(host: NodeHost, unit: str, env: dict[str, str], restart: bool) -> int:
    """(Re)start a unit: its ExecStart with its EnvironmentFile, as systemd would."""
    if restart:
        host.stop(ROLES[unit])
    command, unit_env = unit_command(unit)
    done = subprocess.run(command, env={**env, **unit_env}, timeout=WAIT_S * 3, check=False)
    if done.returncode != 0:
        print(f"Job for {unit}.service failed (exit {done.returncode}).", file=sys.stderr)
        return 1
    return 0


def systemctl(argv: Sequence[str], env: dict[str, str]) -> int:
    """The node's ``systemctl``, for the units of K3s's installer (exit codes as systemd's)."""
    args = [a for a in argv if not a.startswith("-")]
    quiet, now = bool({"--quiet", "-q"} & set(argv)), "--now" in argv
    if not args:
        print(
            "usage: systemctl daemon-reload | enable|disable|start|stop|restart|is-active UNIT",
            file=sys.stderr,
        )
        return 2
    verb, units = args[0], [u.removesuffix(".service") for u in args[1:]]
    if verb == "daemon-reload":
        return 0
    if verb != "is-active" and (unknown := [u for u in units if u not in ROLES]):
        print(f"Unit {unknown[0]}.service not found.", file=sys.stderr)
        return 5
    host = NodeHost(env) if any(u in ROLES for u in units) else None
    status = 0
    for unit in units:
        if host is None or unit not in ROLES:
            active = False
            if verb == "is-active" and not quiet:
                print("inactive")
            status = status or 3
        elif verb == "is-active":
            active = is_active(host, unit)
            if not quiet:
                print("active" if active else "inactive")
            status = status or (0 if active else 3)
        elif verb == "stop" or (verb == "disable" and now):
            host.stop(ROLES[unit])
        elif verb in ("start", "restart") or (verb == "enable" and now):
            status = status or run_unit(host, unit, env, restart=verb == "restart")
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m rehearsal.k3s k3s|systemctl ARGS`` (the node's shims call it)."""
    args = list(sys.argv[1:] if argv is None else argv)
    tool, rest = (args[0], args[1:]) if args else ("k3s", [])
    env = dict(os.environ)
    try:
        return systemctl(rest, env) if tool == "systemctl" else k3s(rest, env)
    except RehearsalError as exc:
        print(f"{tool}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
