"""Start, stop and describe the rehearsal cluster: Kubernetes at the K3s pin's patch, on nodes
in network namespaces behind a bastion (``topology``), reached through a real SSH tunnel.

    up      builds what is missing (once), makes the namespaces, starts sshd on the bastion,
            containerd and sshd on every node (the bare instances), then installs Kubernetes
            with ``scripts/bootstrap_k3s_ca4.sh`` (``make ca4-bootstrap-k3s``) through the K3s
            install interface (``node/install.sh``, ``k3s``): kine (SQLite, K3s's own datastore)
            and the control plane on node 0, the kubelet, kube-proxy and kube-router everywhere,
            agents joining with the token; waits for K3s's bundled parts (CoreDNS, local-path,
            Traefik); prints the kubeconfig and what runs where.
    down    stops everything it started (by PID, then what is left in its namespaces and in
            its nodes' cgroups), deletes the namespaces and links, removes the cgroups,
            restores the sysctls. The state (datastore, certificates) stays for the next up.
    status  each daemon and node, in one table.

``Cluster`` builds on ``nodeimages`` (the images on the nodes) and ``clusterbase`` (its settings
and state, kubectl and ctr, the live scripts and their configuration).
Every wait is bounded and names what it waited for when it gives up.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

from local_stack.procs import Process, note, step
from rehearsal import aws, bastion, configs, host, topology
from rehearsal.clusterbase import ready
from rehearsal.daemons import LIFETIME_S, RehearsalError
from rehearsal.images import Image
from rehearsal.nodeimages import NodeImages
from rehearsal.pins import DEBIAN_COMMANDS
from rehearsal.topology import BASTION_ADDR, DNS_SERVICE_IP, HOST_ADDR, SERVICE_CIDR, Node

MANIFESTS = Path(__file__).resolve().parent / "manifests"


class Cluster(NodeImages):
    """One rehearsal cluster and its state folder."""

    def processes(self) -> list[Process]:
        """Every daemon this rehearsal may have started, in start order."""
        nodes = self.topology.nodes
        names = ["bastion-holder", "bastion-sshd", "api-tunnel", *aws.DAEMONS]
        names += [f"{n.name}-{d}" for n in nodes for d in ("holder", "containerd", "sshd")]
        names += ["kine", "kube-apiserver", "kube-controller-manager", "kube-scheduler"]
        names += [f"{n.name}-{d}" for n in nodes for d in ("kubelet", "kube-proxy", "kube-router")]
        return [self.proc(n) for n in names]

    # --- up ----------------------------------------------------------------------------------

    def up(self) -> None:
        """Build what is missing, start the nodes, install Kubernetes on them over SSH."""
        started = time.monotonic()
        images = self.nodes()
        repo = Path(__file__).resolve().parents[2]
        with step("make ca4-plan ca4-apply: the rehearsal's Terraform root (outputs only, no provider)"):
            self.script(
                ["make", "--no-print-directory", "-C", str(repo), "ca4-plan", "ca4-apply"],
                timeout=300,
                what="make ca4-plan ca4-apply",
            )
        self.install(images)
        note(f"rehearsal cluster up in {time.monotonic() - started:.0f} s")
        self.print_summary()

    def nodes(self) -> dict[str, Image]:
        """The bastion and the bare nodes (containerd, sshd, the images), as ``ca4-apply`` leaves
        the instances; the images of K3s's bundled parts."""
        if self._recorded_nodes() not in (None, self.s.nodes):
            raise RehearsalError(
                f"the rehearsal in {self.state} runs {self._recorded_nodes()} node(s); "
                f"CA4_REHEARSAL_NODES={self.s.nodes} needs 'make rehearsal-down' first"
            )
        require_commands()
        self.builder.ensure()
        images = self._images()
        self.state.mkdir(parents=True, exist_ok=True)
        (self.state / "cluster.json").write_text(json.dumps({"nodes": self.s.nodes}) + "\n")
        host.save_sysctls(self.state / "sysctls.json")
        server = self.topology.nodes[0]
        with step(f"network: bastion and {self.s.nodes} node namespace(s)"):
            self.topology.create()
        with step(f"bastion sshd on {BASTION_ADDR}:22, the API tunnel on 127.0.0.1:{self.s.api_port}"):
            bastion.start(self, self.topology)
            bastion.tunnel(self, "api-tunnel", self.s.api_port, f"{server.addr}:6443")
        for node in self.topology.nodes:
            with step(f"{node.name}: containerd, sshd and the images"):
                self._node_runtime(node, images)
        self._stage_addons(server, images)
        with step("AWS stand-ins: DocumentDB (FerretDB, TLS), S3 (moto, HTTPS), IMDSv2, the load balancer"):
            self.aws.start()
        self.terraform_root()
        return images

    def terraform_root(self) -> Path:
        """The rehearsal's Terraform root (``terraform/``) with ca4/terraform's Makefile and
        preflight.sh beside it, and a terraform.tfvars (mode 600: it holds the database password)
        that describes this rehearsal's hosts: what ``make ca4-plan ca4-apply`` applies here."""
        repo = Path(__file__).resolve().parents[2]
        root = self.state / "terraform"
        root.mkdir(parents=True, exist_ok=True)
        for tf in (Path(__file__).resolve().parent / "terraform").glob("*.tf"):
            shutil.copy2(tf, root / tf.name)
        for name in ("Makefile", "preflight.sh"):
            link = root / name
            if not link.is_symlink():
                link.unlink(missing_ok=True)
                link.symlink_to(repo / "ca4" / "terraform" / name)
        values: dict[str, object] = {
            "my_ip_cidr": f"{HOST_ADDR}/32",
            "ssh_key_name": "ca4-rehearsal",
            "bastion_address": BASTION_ADDR,
            "ssh_user": "root",
            "edge_node_addresses": [n.addr for n in self.topology.nodes],
            **self.aws.tfvars(),
        }
        lines = ["# Written by the rehearsal (services/rehearsal/cluster.py) from its hosts; never commit."]
        lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
        tfvars = root / "terraform.tfvars"
        fd = os.open(tfvars, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write("\n".join(lines) + "\n")
        return root

    def install(self, images: dict[str, Image]) -> None:
        """``scripts/bootstrap_k3s_ca4.sh`` with the rehearsal's installer; then wait for K3s's
        bundled parts, which the server applies from its manifests folder."""
        repo = Path(__file__).resolve().parents[2]
        with step("scripts/bootstrap_k3s_ca4.sh: the K3s install interface over SSH through the bastion"):
            self.script([str(repo / "scripts" / "bootstrap_k3s_ca4.sh")], timeout=900)
        self.admin_kubeconfig()
        with step("K3s's bundled parts: CoreDNS, local-path (the default StorageClass), Traefik"):
            for workload in ("deployment/coredns", "deployment/local-path-provisioner", "daemonset/traefik"):
                self.rollout("kube-system", workload)

    def _stage_addons(self, server: Node, images: dict[str, Image]) -> None:
        """K3s's bundled parts, rendered into the server's manifests folder (K3s applies what is
        there at start): CoreDNS, local-path, Traefik."""
        values = {
            "coredns.yaml": {"IMAGE": images["coredns"].ref, "DNS_IP": DNS_SERVICE_IP},
            "local-path.yaml": {"IMAGE": images["local-path"].ref, "HELPER_IMAGE": images["busybox"].ref},
            "traefik.yaml": {"IMAGE": images["traefik"].ref},
        }
        folder = server.dir / "var-lib" / "rancher" / "k3s" / "server" / "manifests"
        folder.mkdir(parents=True, exist_ok=True)
        for manifest, fill in values.items():
            text = (MANIFESTS / manifest).read_text()
            for key, value in fill.items():
                text = text.replace(f"@{key}@", value)
            (folder / manifest).write_text(text)

    def _node_runtime(self, node: Node, images: dict[str, Image]) -> None:
        for sub in ("var-lib", "var-log", "containerd", "cni-conf", "bin"):
            (node.dir / sub).mkdir(parents=True, exist_ok=True)
        for name, text in configs.node_commands(node, sys.executable, self.s.cache).items():
            (node.dir / "bin" / name).write_text(text)
            (node.dir / "bin" / name).chmod(0o755)
        (node.dir / "containerd.toml").write_text(configs.containerd_config(node, images["pause"].ref))
        (node.dir / "cni-conf" / "10-ca4.conflist").write_text(configs.cni_config(node))
        (node.dir / "resolv.conf").write_text("nameserver 127.0.0.1\n")
        host.make_cgroup(node.cgroup)
        self.start(f"{node.name}-holder", node.holder_argv(LIFETIME_S))
        self.wait_holder(f"{node.name}-holder")
        containerd = self.start(
            f"{node.name}-containerd",
            ["containerd", "--config", str(node.dir / "containerd.toml")],
            join=f"{node.name}-holder",
        )
        answers = lambda: self.ctr(node, "version").returncode == 0  # noqa: E731
        self.wait(f"{node.name}: containerd answering", answers, containerd)
        bastion.start_on_node(self, node, lambda: self._port_in(node, 22, node.addr))
        for image in images.values():
            self.import_image(node, image)

    # --- down and status ---------------------------------------------------------------------

    def clean(self) -> str:
        """After ``down``: delete the state folder; refused while anything is mounted under it."""
        mounted = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
        inside = [m for m in mounted if m == str(self.state) or m.startswith(f"{self.state}/")]
        if inside:
            raise RehearsalError(f"still mounted under {self.state}: {inside[:3]}; run down first")
        if not self.state.exists():
            return f"{self.state}: nothing to delete"
        shutil.rmtree(self.state)
        return f"deleted {self.state} (the build cache stays)"

    def down(self) -> list[str]:
        """Stop everything, delete namespaces and links, remove cgroups, restore sysctls."""
        done = [f"stopped {p.name}" for p in reversed(self.processes()) if p.stop(timeout=15)]
        for node in self.topology.nodes:
            if killed := host.kill_cgroup(node.cgroup):
                done.append(f"killed {killed} container process(es) of {node.name}")
        existing = set(topology.ip("netns", "list", check=False).stdout.split())
        for ns in (ns for ns in self.topology.namespaces() if ns in existing):
            pids = topology.ip("netns", "pids", ns, check=False).stdout.split()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            if pids:
                done.append(f"killed {len(pids)} process(es) left in {ns}")
        self._wait_namespaces_empty()
        done += self.topology.destroy()
        for node in self.topology.nodes:
            if left := host.remove_cgroup(node.cgroup):
                done.append(f"cgroups still in use: {left}")
        done += [f"restored {c}" for c in host.restore_sysctls(self.state / "sysctls.json")]
        (self.state / "cluster.json").unlink(missing_ok=True)
        return done

    def _wait_namespaces_empty(self, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            existing = set(topology.ip("netns", "list", check=False).stdout.split())
            names = [ns for ns in self.topology.namespaces() if ns in existing]
            if not any(topology.ip("netns", "pids", ns, check=False).stdout.split() for ns in names):
                return
            time.sleep(0.2)

    def status(self) -> list[tuple[str, str]]:
        """``(what, state)`` for every daemon, then every node."""
        rows = [(p.name, f"running, pid {p.pid()}" if p.alive() else "stopped") for p in self.processes()]
        if self.proc("api-tunnel").alive() and self.kubeconfig.exists():
            done = self.kubectl("get", "nodes", "-o", "json", check=False)
            for item in json.loads(done.stdout)["items"] if done.returncode == 0 else []:
                version = item["status"]["nodeInfo"]["kubeletVersion"]
                state = f"{'Ready' if ready(item) else 'NotReady'} {version}"
                rows.append((f"node {item['metadata']['name']}", state))
        return rows

    def print_summary(self) -> None:
        """The kubeconfig and what runs where."""
        server = self.topology.nodes[0]
        note(f"kubeconfig: {self.kubeconfig}")
        note(f"  server https://127.0.0.1:{self.s.api_port}: an SSH tunnel through the bastion")
        note(f"  kubectl --kubeconfig {self.kubeconfig} get nodes -o wide")
        note(f"bastion    {BASTION_ADDR}  sshd (key {self.state}/ssh/client_ed25519, user root)")
        for node in self.topology.nodes:
            role = "kine, kube-apiserver :6443, controller-manager, scheduler, " if node == server else ""
            note(f"{node.name} {node.addr}  {role}containerd, kubelet, kube-proxy; pods {node.pod_cidr}")
        note(f"Services {SERVICE_CIDR}, DNS {DNS_SERVICE_IP}; logs in {self.state}/logs")
        note("stop it with: make rehearsal-down")


def require_commands() -> None:
    """Stop before anything starts when a command is missing, naming its package."""
    needed = {**DEBIAN_COMMANDS, "kubectl": "kubectl (https://kubernetes.io/docs/tasks/tools/)"}
    missing = sorted({pkg for cmd, pkg in needed.items() if not (shutil.which(cmd) or Path(cmd).exists())})
    if missing:
        raise RehearsalError(
            f"missing on this machine: {', '.join(missing)}; "
            "'make rehearsal-packages' installs the Debian ones"
        )
