"""The control plane's command lines: kine on SQLite (K3s's own datastore), kube-apiserver,
kube-controller-manager and kube-scheduler, all on node 0, as the K3s server runs them.

Node CIDRs are not allocated by the controller-manager: the rehearsal gives node i
10.42.i.0/24 itself (the CNI configuration and the routes between nodes use it), and
writes it into the Node object once the kubelet registered.
"""

from __future__ import annotations

from pathlib import Path

from rehearsal.pki import Pki
from rehearsal.topology import SERVICE_CIDR, Node

KINE_ADDRESS = "127.0.0.1:2379"
# The static tokens of the control plane's own clients (the K3s server holds their credentials too)
USERS = {
    "admin": ("system:masters",),
    "system:kube-controller-manager": (),
    "system:kube-scheduler": (),
    "system:kube-proxy": (),
    "system:kube-router": (),
}


def kine(binary: Path, state: Path) -> list[str]:
    """kine serving the etcd API on loopback, from a SQLite file in WAL mode."""
    return [
        str(binary),
        "--listen-address",
        KINE_ADDRESS,
        "--endpoint",
        f"sqlite://{state}/kine/state.db?_journal=WAL&cache=shared",
    ]


def apiserver(binary: Path, pki: Pki, server: Node, encryption: Path | None = None) -> list[str]:
    """kube-apiserver: Node and RBAC authorization, static and bootstrap tokens (agents join
    with one), its own CA; Secrets encrypted at rest with ``encryption`` (K3s's
    --secrets-encryption)."""
    flags = {
        "etcd-servers": f"http://{KINE_ADDRESS}",
        "advertise-address": server.addr,
        "bind-address": "0.0.0.0",  # noqa: S104 - inside node 0's namespace: the node's address and loopback
        "secure-port": "6443",
        "service-cluster-ip-range": SERVICE_CIDR,
        "tls-cert-file": pki.path("apiserver.crt"),
        "tls-private-key-file": pki.path("apiserver.key"),
        "client-ca-file": pki.path("ca.crt"),
        "token-auth-file": pki.path("tokens.csv"),
        "enable-bootstrap-token-auth": "true",
        "authorization-mode": "Node,RBAC",
        "enable-admission-plugins": "NodeRestriction",
        "service-account-issuer": "https://kubernetes.default.svc.cluster.local",
        "service-account-key-file": pki.path("sa.pub"),
        "service-account-signing-key-file": pki.path("sa.key"),
        "kubelet-client-certificate": pki.path("apiserver-kubelet-client.crt"),
        "kubelet-client-key": pki.path("apiserver-kubelet-client.key"),
        "kubelet-preferred-address-types": "InternalIP",
        "allow-privileged": "true",
        "profiling": "false",
        "anonymous-auth": "false",
    }
    if encryption is not None:
        flags["encryption-provider-config"] = encryption
    return [str(binary), *(f"--{k}={v}" for k, v in flags.items())]


def controller_manager(binary: Path, pki: Pki, kubeconfig: Path) -> list[str]:
    """kube-controller-manager with per-controller service accounts; no CIDR allocation."""
    flags = {
        "kubeconfig": kubeconfig,
        "authentication-kubeconfig": kubeconfig,
        "authorization-kubeconfig": kubeconfig,
        "service-account-private-key-file": pki.path("sa.key"),
        "root-ca-file": pki.path("ca.crt"),
        "cluster-signing-cert-file": pki.path("ca.crt"),
        "cluster-signing-key-file": pki.path("ca.key"),
        "use-service-account-credentials": "true",
        "service-cluster-ip-range": SERVICE_CIDR,
        "allocate-node-cidrs": "false",
        "leader-elect": "false",
        "bind-address": "127.0.0.1",
    }
    return [str(binary), *(f"--{k}={v}" for k, v in flags.items())]


def scheduler(binary: Path, kubeconfig: Path) -> list[str]:
    """kube-scheduler."""
    flags = {
        "kubeconfig": kubeconfig,
        "authentication-kubeconfig": kubeconfig,
        "authorization-kubeconfig": kubeconfig,
        "leader-elect": "false",
        "bind-address": "127.0.0.1",
    }
    return [str(binary), *(f"--{k}={v}" for k, v in flags.items())]


def kubelet(
    binary: Path, node: Node, kubeconfig: Path, labels: list[str], bootstrap: Path | None = None
) -> list[str]:
    """The kubelet of one node (its settings are in its config file, see ``configs``); with
    ``bootstrap`` (an agent's token kubeconfig) it gets ``kubeconfig`` by TLS bootstrapping."""
    flags: dict[str, object] = {
        "config": node.dir / "kubelet.json",
        "kubeconfig": kubeconfig,
        "hostname-override": node.name,
        "node-ip": node.addr,
        "oom-score-adj": "0",
    }
    if labels:
        flags["node-labels"] = ",".join(labels)
    if bootstrap is not None:
        flags["bootstrap-kubeconfig"] = bootstrap
    return [str(binary), *(f"--{k}={v}" for k, v in flags.items())]


def kube_router(binary: Path, node: Node, kubeconfig: Path) -> list[str]:
    """kube-router as K3s embeds it: the network policy controller only (iptables and ipsets
    in the node's namespace); routing and the service proxy are the CNI's and kube-proxy's."""
    flags = {
        "run-firewall": "true",
        "run-router": "false",
        "run-service-proxy": "false",
        "kubeconfig": kubeconfig,
        "hostname-override": node.name,
        "service-cluster-ip-range": SERVICE_CIDR,
        "metrics-port": "0",
    }
    return [str(binary), *(f"--{k}={v}" for k, v in flags.items())]
