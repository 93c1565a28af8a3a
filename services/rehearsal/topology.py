"""The rehearsal's network: AWS's shape in network namespaces this machine creates itself.

    this machine (198.18.0.1) --veth-- bastion ns (198.18.0.2, sshd | bridge 10.0.1.1)
                                            |-- node-0 ns (10.0.1.10)  the K3s server's role
                                            |-- node-1 ns (10.0.1.11)  agents ...
                                            |-- node-2 ns (10.0.1.12)
                                            `-- aws ns (10.0.1.20 DocumentDB, 198.18.1.21 S3,
                                                        169.254.169.254 IMDS: see ``aws``)

This machine has no route to 10.0.1.0/24: a node is reachable only through the bastion's
sshd (an SSH tunnel), as the private subnet is in the VPC. The bastion does not forward, so
nothing from the nodes leaves the namespaces either (no registry, no internet: an image pull
fails at once instead of reaching out). Pods of node i use 10.42.i.0/24 (K3s's cluster CIDR),
Services 10.43.0.0/16; each node routes the other nodes' pod ranges to them over the bridge.

Each node runs in its own mount namespace too (a holder process, see ``Node.holder_argv``):
``/run``, ``/var/lib`` and ``/var/log`` are the node's own there, so the paths the kubelet and
containerd use whatever their configuration says (``/var/lib/kubelet/device-plugins``,
``/run/containerd/s``, ``/var/lib/cni``, ``/var/log/pods``) never touch this machine's, every
mount a pod needs vanishes with the node, and several nodes coexist on one host. ``/etc`` is
an overlay on this machine's: what K3s's installer writes there (``/etc/systemd/system/k3s*``,
``/etc/rancher/k3s/k3s.yaml``) stays the node's.
"""

from __future__ import annotations

import contextlib
import ipaddress
import subprocess
from dataclasses import dataclass
from pathlib import Path

PREFIX = "ca4rh"  # every namespace, link and cgroup of the rehearsal starts with it
# RFC 2544's benchmarking range, which nothing routes: this machine's own network and the
# package registries use the documentation ranges (192.0.2.0/24, 203.0.113.0/24) here, and
# a link of ours there would capture their traffic (``check_free`` refuses any overlap).
HOST_ADDR = "198.18.0.1"
BASTION_ADDR = "198.18.0.2"
HOST_PREFIX = 30
LAN_GATEWAY = "10.0.1.1"
LAN_PREFIX = 24
CLUSTER_CIDR = "10.42.0.0/16"
SERVICE_CIDR = "10.43.0.0/16"
API_SERVICE_IP = "10.43.0.1"
DNS_SERVICE_IP = "10.43.0.10"
CLUSTER_DOMAIN = "cluster.local"
NS_TIMEOUT_S = 30
# The AWS services' stand-ins (``aws``), in a namespace of their own on the LAN: DocumentDB in
# the private subnet, S3 at a public address (outside every private range, as the worker's
# network policy expects of S3), the instance metadata service at its link-local address.
DOCUMENTDB_ADDR = "10.0.1.20"
S3_ADDR = "198.18.1.21"
IMDS_ADDR = "169.254.169.254"
# S3 is public: this machine (the operator's) reaches it too, over a link of its own
S3_HOST_ADDR = "198.18.1.1"
S3_PREFIX = 24


def _veth(ns: str | None, name: str, peer_ns: str, peer: str = "eth0") -> None:
    """A veth pair: ``name`` in ``ns`` (None: this machine), its ``peer`` end in ``peer_ns``."""
    where = () if ns is None else ("-n", ns)
    ip(*where, "link", "add", name, "type", "veth", "peer", "name", peer, "netns", peer_ns)


class TopologyError(RuntimeError):
    """A namespace or link could not be made; the message has the command's error."""


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``ip ARGS``, bounded."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=NS_TIMEOUT_S, check=False)
    if check and done.returncode != 0:
        raise TopologyError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done


def in_ns(
    ns: str, *argv: str, check: bool = True, timeout: float = NS_TIMEOUT_S
) -> subprocess.CompletedProcess[str]:
    """Run a command in a namespace's network only (``nsenter --net``: the mounts stay this machine's)."""
    done = subprocess.run(
        ["nsenter", f"--net=/run/netns/{ns}", "--", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and done.returncode != 0:
        raise TopologyError(f"{' '.join(argv)} in {ns}: {done.stderr.strip()}")
    return done


@dataclass(frozen=True)
class Node:
    """One edge node: its namespace, address, pod range and state folder."""

    index: int
    state: Path  # the whole rehearsal's state folder

    @property
    def name(self) -> str:
        """The Kubernetes node name (``ca4-node-0``)."""
        return f"ca4-node-{self.index}"

    @property
    def ns(self) -> str:
        """Its network namespace."""
        return f"{PREFIX}-node{self.index}"

    @property
    def addr(self) -> str:
        """Its private address."""
        return f"10.0.1.{10 + self.index}"

    @property
    def pod_cidr(self) -> str:
        """The pods' range on this node."""
        return f"10.42.{self.index}.0/24"

    @property
    def pod_gateway(self) -> str:
        """cni0's address: the pods' default gateway."""
        return f"10.42.{self.index}.1"

    @property
    def dir(self) -> Path:
        """Everything of this node: containerd's store, the kubelet's root, pod logs."""
        return self.state / "nodes" / self.name

    @property
    def cgroup(self) -> str:
        """The kubelet's cgroup root (each node its own, so their kubepods never meet)."""
        return f"/{PREFIX}-{self.name}"

    def holder_argv(self, lifetime_s: int) -> list[str]:
        """The process that owns the node's mount namespace: it mounts the node's own ``/run``,
        ``/var/lib``, ``/var/log`` and a writable ``/etc`` over this machine's, then waits; every
        daemon of the node joins it."""
        script = "\n".join(
            [
                "set -e",
                "mount -t tmpfs -o mode=755 ca4rh-run /run",
                f"mount --bind {self.dir}/var-lib /var/lib",
                f"mount --bind {self.dir}/var-log /var/log",
                # its own /etc over this machine's (what K3s's installer writes: units, k3s.yaml)
                f"mkdir -p {self.dir}/etc/upper {self.dir}/etc/work",
                f"mount -t overlay ca4rh-etc -o lowerdir=/etc,upperdir={self.dir}/etc/upper,"
                f"workdir={self.dir}/etc/work /etc",
                # the node's own commands (k3s), on the PATH sshd gives a login
                f"mount --bind {self.dir}/bin /usr/local/sbin",
                "mkdir -p /run/containerd /run/netns /run/sshd",
                f"exec sleep {lifetime_s}",
            ]
        )
        return [
            "nsenter",
            f"--net=/run/netns/{self.ns}",
            "--",
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            script,
        ]


@dataclass(frozen=True)
class Topology:
    """The bastion and ``count`` nodes."""

    state: Path
    count: int

    @property
    def bastion_ns(self) -> str:
        """The bastion's network namespace."""
        return f"{PREFIX}-bastion"

    @property
    def host_link(self) -> str:
        """This machine's end of the veth to the bastion."""
        return f"{PREFIX}-host"

    @property
    def nodes(self) -> list[Node]:
        """Every node, the server (node 0) first."""
        return [Node(i, self.state) for i in range(self.count)]

    @property
    def aws_ns(self) -> str:
        """The namespace of the AWS services' stand-ins (``aws``)."""
        return f"{PREFIX}-aws"

    def namespaces(self) -> list[str]:
        """Every namespace of the rehearsal."""
        return [self.bastion_ns, self.aws_ns, *(n.ns for n in self.nodes)]

    def create(self) -> None:
        """Namespaces, links, addresses and routes; an existing one is left as it is."""
        existing = set(ip("netns", "list").stdout.split())
        for ns in self.namespaces():
            if ns not in existing:
                ip("netns", "add", ns)
            ip("-n", ns, "link", "set", "lo", "up")
        if ip("link", "show", self.host_link, check=False).returncode != 0:
            _veth(None, self.host_link, self.bastion_ns)
            check_free(f"{HOST_ADDR}/{HOST_PREFIX}")
            ip("addr", "add", f"{HOST_ADDR}/{HOST_PREFIX}", "dev", self.host_link)
            ip("link", "set", self.host_link, "up")
            ip("-n", self.bastion_ns, "addr", "add", f"{BASTION_ADDR}/{HOST_PREFIX}", "dev", "eth0")
            ip("-n", self.bastion_ns, "link", "set", "eth0", "up")
        if ip("-n", self.bastion_ns, "link", "show", "lan", check=False).returncode != 0:
            ip("-n", self.bastion_ns, "link", "add", "lan", "type", "bridge")
            ip("-n", self.bastion_ns, "addr", "add", f"{LAN_GATEWAY}/{LAN_PREFIX}", "dev", "lan")
            ip("-n", self.bastion_ns, "link", "set", "lan", "up")
        for node in self.nodes:
            port = f"n{node.index}"
            if ip("-n", self.bastion_ns, "link", "show", port, check=False).returncode == 0:
                continue
            _veth(self.bastion_ns, port, node.ns)
            ip("-n", self.bastion_ns, "link", "set", port, "master", "lan", "up")
            ip("-n", node.ns, "addr", "add", f"{node.addr}/{LAN_PREFIX}", "dev", "eth0")
            ip("-n", node.ns, "link", "set", "eth0", "up")
            ip("-n", node.ns, "route", "add", "default", "via", LAN_GATEWAY)
            # forwarding inside the node only (per namespace): pods <-> services <-> other nodes
            in_ns(node.ns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        for node in self.nodes:
            for other in self.nodes:
                if other.index != node.index:
                    ip("-n", node.ns, "route", "replace", other.pod_cidr, "via", other.addr)
        self._create_aws()

    @property
    def s3_link(self) -> str:
        """This machine's end of the veth to the stand-ins' namespace (S3 is public)."""
        return f"{PREFIX}-s3"

    def _create_aws(self) -> None:
        """The stand-ins' namespace on the LAN and on a link with this machine (S3 only is
        reached from both sides); the nodes route S3 and IMDS to it, it routes the pods' ranges
        back to their nodes (pod traffic is not masqueraded, as in a VPC)."""
        if ip("-n", self.bastion_ns, "link", "show", "aws", check=False).returncode != 0:
            _veth(self.bastion_ns, "aws", self.aws_ns)
            ip("-n", self.bastion_ns, "link", "set", "aws", "master", "lan", "up")
            ip("-n", self.aws_ns, "addr", "add", f"{DOCUMENTDB_ADDR}/{LAN_PREFIX}", "dev", "eth0")
            ip("-n", self.aws_ns, "addr", "add", f"{IMDS_ADDR}/32", "dev", "eth0")
            ip("-n", self.aws_ns, "link", "set", "eth0", "up")
        if ip("link", "show", self.s3_link, check=False).returncode != 0:
            check_free(f"{S3_HOST_ADDR}/{S3_PREFIX}")
            _veth(None, self.s3_link, self.aws_ns, peer="s3")
            ip("addr", "add", f"{S3_HOST_ADDR}/{S3_PREFIX}", "dev", self.s3_link)
            ip("link", "set", self.s3_link, "up")
            ip("-n", self.aws_ns, "addr", "add", f"{S3_ADDR}/{S3_PREFIX}", "dev", "s3")
            ip("-n", self.aws_ns, "link", "set", "s3", "up")
        for node in self.nodes:
            ip("-n", self.aws_ns, "route", "replace", node.pod_cidr, "via", node.addr)
            for extra in (S3_ADDR, IMDS_ADDR):
                ip("-n", node.ns, "route", "replace", f"{extra}/32", "via", DOCUMENTDB_ADDR)

    def destroy(self) -> list[str]:
        """Delete the namespaces (their links and iptables go with them) and this machine's
        veth end; returns what was removed."""
        removed = []
        existing = set(ip("netns", "list", check=False).stdout.split())
        for ns in self.namespaces():
            if ns in existing:
                ip("netns", "del", ns, check=False)
                removed.append(f"namespace {ns}")
        for link in (self.host_link, self.s3_link):
            if ip("link", "show", link, check=False).returncode == 0:
                ip("link", "del", link, check=False)
                removed.append(f"link {link}")
        return removed


def busy() -> bool:
    """Some process still runs in a rehearsal namespace (a live cluster, not a killed one's remains)."""
    names = [n for n in ip("netns", "list", check=False).stdout.split() if n.startswith(PREFIX)]
    return any(ip("netns", "pids", n, check=False).stdout.split() for n in names)


def check_free(subnet: str) -> None:
    """Refuse a subnet that overlaps a route of this machine (other than the default) or an
    address it resolves names to: our link would capture that traffic."""
    net = ipaddress.ip_network(subnet, strict=False)
    for line in ip("-o", "-4", "route", "show", check=False).stdout.splitlines():
        dest = line.split()[0]
        if dest != "default" and ipaddress.ip_network(dest, strict=False).overlaps(net):
            raise TopologyError(
                f"{subnet} overlaps this machine's route '{line.strip()}': the rehearsal cannot use it"
            )
    for path in ("/etc/hosts", "/etc/resolv.conf"):
        with contextlib.suppress(OSError):
            for word in Path(path).read_text().split():
                with contextlib.suppress(ValueError):
                    if ipaddress.ip_address(word) in net:
                        raise TopologyError(
                            f"{subnet} holds {word}, named in {path}: the rehearsal cannot use it"
                        )


def leftovers() -> list[str]:
    """Namespaces and links of any rehearsal still on this machine (``down`` leaves none)."""
    found = [
        f"namespace {n}" for n in ip("netns", "list", check=False).stdout.split() if n.startswith(PREFIX)
    ]
    for line in ip("-o", "link", "show", check=False).stdout.splitlines():
        name = line.split(":")[1].strip().split("@")[0] if ":" in line else ""
        if name.startswith(PREFIX):
            found.append(f"link {name}")
    return found
