"""Start, stop and describe the rehearsal cluster: Kubernetes at the K3s pin's patch, on nodes
in network namespaces behind a bastion (``topology``), reached through a real SSH tunnel.

    up      builds what is missing (once), makes the namespaces, starts sshd on the bastion,
            containerd on every node, kine (SQLite, K3s's own datastore) and the control
            plane on node 0, the kubelet and kube-proxy everywhere, CoreDNS; waits for every
            node Ready; prints the kubeconfig and what runs where.
    down    stops everything it started (by PID, then what is left in its namespaces and in
            its nodes' cgroups), deletes the namespaces and links, removes the cgroups,
            restores the sysctls. The state (datastore, certificates) stays for the next up.
    status  each daemon and node, in one table.

Every wait is bounded and names what it waited for when it gives up.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from local_stack.procs import Process, note, step
from rehearsal import bastion, configs, controlplane, host, topology
from rehearsal.build import Builder
from rehearsal.daemons import LIFETIME_S, WAIT_S, Daemons, RehearsalError, tail
from rehearsal.images import Buildah, DebianBase, Image
from rehearsal.pins import DEBIAN_COMMANDS
from rehearsal.pki import Pki
from rehearsal.standins import StandIns, missing_note
from rehearsal.topology import API_SERVICE_IP, BASTION_ADDR, DNS_SERVICE_IP, SERVICE_CIDR, Node, Topology

MANIFESTS = Path(__file__).resolve().parent / "manifests"
DEFAULT_API_PORT = 26443  # this machine's end of the API tunnel (16443 stays free for ca4-tunnels-up)
IMAGE_PREFIX = "localhost/ca4-rehearsal"  # "localhost/": containerd never resolves them on a registry
USERS = {
    "admin": ("system:masters",),
    "system:kube-controller-manager": (),
    "system:kube-scheduler": (),
    "system:kube-proxy": (),
    "system:kube-router": (),
}


@dataclass(frozen=True)
class Settings:
    """Where the rehearsal keeps its state and how big it is."""

    state: Path
    cache: Path
    nodes: int = 1
    api_port: int = DEFAULT_API_PORT

    @classmethod
    def from_env(cls, repo: Path, cache: Path) -> Settings:
        """``CA4_REHEARSAL_DIR`` (default ``.ca4-rehearsal``), ``CA4_REHEARSAL_NODES`` (1-3),
        ``CA4_REHEARSAL_API_PORT``."""
        raw = os.environ.get("CA4_REHEARSAL_NODES", "") or "1"
        if raw not in ("1", "2", "3"):
            raise RehearsalError(f"CA4_REHEARSAL_NODES={raw}: the rehearsal runs 1 to 3 nodes")
        state = Path(os.environ.get("CA4_REHEARSAL_DIR", "") or repo / ".ca4-rehearsal").resolve()
        port = int(os.environ.get("CA4_REHEARSAL_API_PORT", "") or DEFAULT_API_PORT)
        return cls(state=state, cache=cache, nodes=int(raw), api_port=port)


class Cluster(Daemons):
    """One rehearsal cluster and its state folder."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings.state)
        self.s = settings
        self.topology = Topology(self.state, self._recorded_nodes() or settings.nodes)
        self.pki = Pki(self.state / "pki")
        self.builder = Builder(settings.cache)
        self.buildah = Buildah(settings.cache)
        self.kubeconfig = self.state / "kubeconfig"
        self.images: dict[str, Image] = {}

    def _recorded_nodes(self) -> int | None:
        with contextlib.suppress(OSError, ValueError, KeyError):
            return int(json.loads((self.state / "cluster.json").read_text())["nodes"])
        return None

    def processes(self) -> list[Process]:
        """Every daemon this rehearsal may have started, in start order."""
        nodes = self.topology.nodes
        names = ["bastion-holder", "bastion-sshd", "api-tunnel"]
        names += [f"{n.name}-{d}" for n in nodes for d in ("holder", "containerd", "sshd")]
        names += ["kine", "kube-apiserver", "kube-controller-manager", "kube-scheduler"]
        names += [f"{n.name}-{d}" for n in nodes for d in ("kubelet", "kube-proxy", "kube-router")]
        return [self.proc(n) for n in names]

    # --- up ----------------------------------------------------------------------------------

    def up(self) -> None:
        """Build what is missing, start everything, wait until every node is Ready."""
        started = time.monotonic()
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
        with step("certificates and tokens"):
            nodes = {f"system:node:{n.name}": ("system:nodes",) for n in self.topology.nodes}
            self.pki.ensure(server.addr, API_SERVICE_IP, USERS | nodes)
        with step(f"bastion sshd on {BASTION_ADDR}:22, the API tunnel on 127.0.0.1:{self.s.api_port}"):
            bastion.start(self, self.topology)
            bastion.tunnel(self, "api-tunnel", self.s.api_port, f"{server.addr}:6443")
        for node in self.topology.nodes:
            with step(f"{node.name}: containerd and the images"):
                self._node_runtime(node, images)
        with step("kine (SQLite) and the control plane on ca4-node-0"):
            self._control_plane(server)
        for node in self.topology.nodes:
            with step(f"{node.name}: kubelet and kube-proxy"):
                self._node_agents(node)
        with step("every node Ready; kube-router (network policies) on each"):
            self._nodes_ready()
        with step("K3s's bundled parts: CoreDNS, local-path (the default StorageClass), Traefik"):
            self.addon(
                "coredns.yaml", "deployment/coredns", IMAGE=images["coredns"].ref, DNS_IP=DNS_SERVICE_IP
            )
            self.addon(
                "local-path.yaml",
                "deployment/local-path-provisioner",
                IMAGE=images["local-path"].ref,
                HELPER_IMAGE=images["busybox"].ref,
            )
            self.addon("traefik.yaml", "daemonset/traefik", IMAGE=images["traefik"].ref)
        note(f"rehearsal cluster up in {time.monotonic() - started:.0f} s")
        self.print_summary()

    def _images(self) -> dict[str, Image]:
        """The images of K3s's bundled parts, each ``FROM scratch`` with its binary."""
        p, binary, build = self.builder.pins, self.builder.binary, self.buildah.from_files
        busybox = Path("/bin/busybox")  # Debian's busybox-static; /bin/sh for local-path's helper scripts
        with step("images: pause, busybox, CoreDNS, local-path, Traefik (buildah, from scratch)"):
            self.images = {
                "pause": build(f"{IMAGE_PREFIX}/pause:3.10", {"/pause": binary("pause")}, ["/pause"]),
                "busybox": build(
                    f"{IMAGE_PREFIX}/busybox:1.35",
                    {"/bin/busybox": busybox, "/bin/sh": busybox},
                    ["/bin/sh"],
                    user="0",  # root, as K3s's: local-path's helper pods make the volume folders
                ),
                "coredns": build(
                    f"{IMAGE_PREFIX}/coredns:{p.coredns}", {"/coredns": binary("coredns")}, ["/coredns"]
                ),
                "traefik": build(
                    f"{IMAGE_PREFIX}/traefik:{p.traefik}", {"/traefik": binary("traefik")}, ["/traefik"]
                ),
                "local-path": build(
                    f"{IMAGE_PREFIX}/local-path-provisioner:{p.local_path}",
                    {"/local-path-provisioner": binary("local-path-provisioner")},
                    ["/local-path-provisioner"],
                ),
            }
        return self.images

    def _node_runtime(self, node: Node, images: dict[str, Image]) -> None:
        for sub in ("var-lib", "var-log", "containerd", "cni-conf", "bin"):
            (node.dir / sub).mkdir(parents=True, exist_ok=True)
        (node.dir / "bin" / "k3s").write_text(configs.k3s_command())
        (node.dir / "bin" / "k3s").chmod(0o755)
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

    def project_image(self) -> Image:
        """The project's own Dockerfile, built for real with buildah on a Debian 12 base made
        with debootstrap (BASE_IMAGE), tagged as ``scripts/image_ca4.sh tag`` names it, and
        imported into every node. The image's DocumentDB CA bundle is the rehearsal's CA."""
        repo = Path(__file__).resolve().parents[2]
        done = subprocess.run(
            [str(repo / "scripts" / "image_ca4.sh"), "tag"],
            env={**os.environ, "CA4_IMAGE_ALLOW_DIRTY": "1"},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if done.returncode != 0:
            raise RehearsalError(f"scripts/image_ca4.sh tag: {done.stderr.strip()}")
        ref = done.stdout.strip()
        with step(f"the project's image {ref} (Dockerfile, buildah, a debootstrap base)"):
            base = DebianBase(self.buildah).ensure()
            ca = base64.b64encode(self.pki.path("ca.crt").read_bytes()).decode()
            image = self.buildah.dockerfile(
                ref, repo, {"BASE_IMAGE": base, "DOCUMENTDB_CA_BUNDLE_PEM_B64": ca}
            )
        with step("scripts/image_ca4.sh load: podman save | ssh -J bastion | k3s ctr import, on each node"):
            self.image_load(repo)
        self.images["project"] = image
        return image

    def live_outputs(self) -> Path:
        """The Terraform outputs the live scripts read (``CA4_TF_OUTPUTS``), for this rehearsal's
        hosts: the bastion's address, the nodes' private addresses, the SSH user."""
        nodes = self.topology.nodes
        values: dict[str, Any] = {
            "bastion_public_ip": BASTION_ADDR,
            "ssh_user": "root",
            "edge_node_private_ips": [n.addr for n in nodes],
            "k3s_server_private_ip": nodes[0].addr,
        }
        path = self.state / "tf-outputs.json"
        path.write_text(
            json.dumps({k: {"value": v, "sensitive": False} for k, v in values.items()}, indent=2)
        )
        return path

    def script_env(self) -> dict[str, str]:
        """What the live scripts get here instead of AWS: configuration only. podman (no daemon)
        reads the store buildah built into, through this folder's storage.conf."""
        store = self.buildah.root
        (self.state / "podman").mkdir(parents=True, exist_ok=True)
        storage = self.state / "podman" / "storage.conf"
        storage.write_text(
            f'[storage]\ndriver = "vfs"\ngraphroot = "{store}/store"\nrunroot = "{store}/run"\n'
        )
        engine = self.state / "podman" / "containers.conf"
        engine.write_text(
            "[engine]\n"
            f'tmp_dir = "{self.state}/podman/tmp"\n'
            'events_logger = "none"\n'
            'cgroup_manager = "cgroupfs"\n'
        )
        return {
            "CA4_TF_OUTPUTS": str(self.live_outputs()),
            "CA4_SSH_KEY": str(self.state / "ssh" / "client_ed25519"),
            "CA4_STATE_DIR": str(self.state / "ca4-state"),
            "CA4_CONTAINER_CLI": "podman",
            "CONTAINERS_STORAGE_CONF": str(storage),
            "CONTAINERS_CONF": str(engine),
            "CA4_IMAGE_ALLOW_DIRTY": "1",
        }

    def image_load(self, repo: Path) -> None:
        """``scripts/image_ca4.sh load``, as ``make ca4-image-load`` runs it, against these nodes.
        podman writes a cache under /var/lib like buildah: in a mount namespace whose /var/lib is
        buildah's scratch folder, so this machine keeps no trace."""
        scratch = self.buildah.root / "var-lib"
        scratch.mkdir(parents=True, exist_ok=True)
        script = f"mount --bind {scratch} /var/lib && exec {repo}/scripts/image_ca4.sh load"
        done = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script],
            env={**os.environ, **self.script_env()},
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        for line in (done.stdout + done.stderr).strip().splitlines():
            note(f"  {line}")
        if done.returncode != 0:
            raise RehearsalError(f"scripts/image_ca4.sh load exited {done.returncode} (its output is above)")

    def standin_images(self, load: bool = True) -> dict[str, Image]:
        """The stand-ins for the images the manifests pull from public registries (Kafka,
        Prometheus; ``standins``), built once and (``load``) imported into every node under the
        manifests' own names; says which ones cannot be had."""
        repo = Path(__file__).resolve().parents[2]
        standins = StandIns(repo, self.s.cache, self.builder, self.buildah)
        with step("stand-in images for apache/kafka and prom/prometheus (Maven, Go, Debian)"):
            images = standins.images()
            for node in self.topology.nodes if load else []:
                for image in images.values():
                    self.import_image(node, image)
        for line in missing_note():
            note(line)
        self.images.update(images)
        return images

    def import_image(self, node: Node, image: Image) -> None:
        """Import a saved image into the node's containerd, unless it holds it already; a
        stand-in is also tagged with the manifests' name (moved there when rebuilt)."""
        if image.ref not in self.ctr(node, "-n", "k8s.io", "images", "ls", "-q").stdout.split():
            done = self.ctr(node, "-n", "k8s.io", "images", "import", str(image.tar))
            if done.returncode != 0:
                raise RehearsalError(
                    f"{node.name}: importing {image.ref} failed: {done.stderr.strip()[-400:]}"
                )
        if image.alias:
            done = self.ctr(node, "-n", "k8s.io", "images", "tag", "--force", image.ref, image.alias)
            if done.returncode != 0:
                raise RehearsalError(
                    f"{node.name}: tagging {image.ref} as {image.alias} failed: {done.stderr.strip()[-400:]}"
                )

    def ctr(self, node: Node, *args: str) -> subprocess.CompletedProcess[str]:
        """``ctr`` against the node's containerd (inside its namespaces)."""
        pid = self.proc(f"{node.name}-holder").pid()
        if pid is None:
            raise RehearsalError(f"{node.name} is not running")
        argv = ["nsenter", "-t", str(pid), "-m", "-n", "--", "ctr", "-a", configs.CONTAINERD_SOCKET, *args]
        return subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)

    def _control_plane(self, server: Node) -> None:
        binary, join = self.builder.binary, f"{server.name}-holder"
        (self.state / "kine").mkdir(exist_ok=True)
        kine = self.start("kine", controlplane.kine(binary("kine"), self.state), join=join)
        self.wait("kine on 127.0.0.1:2379", lambda: self._port_in(server, 2379), kine)
        apiserver = self.start(
            "kube-apiserver", controlplane.apiserver(binary("kube-apiserver"), self.pki, server), join=join
        )
        self.pki.kubeconfig("admin", f"https://127.0.0.1:{self.s.api_port}", self.kubeconfig)
        self.wait("kube-apiserver /readyz (through the tunnel)", self._api_ready, apiserver)
        inside = f"https://{server.addr}:6443"
        cm = self.pki.kubeconfig(
            "system:kube-controller-manager", inside, self.state / "controller-manager.kc"
        )
        sched = self.pki.kubeconfig("system:kube-scheduler", inside, self.state / "scheduler.kc")
        self.start(
            "kube-controller-manager",
            controlplane.controller_manager(binary("kube-controller-manager"), self.pki, cm),
            join=join,
        )
        self.start("kube-scheduler", controlplane.scheduler(binary("kube-scheduler"), sched), join=join)
        for rbac in ("kubelet-api.yaml", "kube-router.yaml"):
            self.kubectl("apply", "-f", str(MANIFESTS / rbac))

    def _node_agents(self, node: Node) -> None:
        inside = f"https://{self.topology.nodes[0].addr}:6443"
        kubelet_kc = self.pki.kubeconfig(f"system:node:{node.name}", inside, node.dir / "kubelet.kubeconfig")
        proxy_kc = self.pki.kubeconfig("system:kube-proxy", inside, node.dir / "kube-proxy.kubeconfig")
        kubelet_conf = configs.kubelet_config(node, self.pki.path("ca.crt"), node.dir / "resolv.conf")
        (node.dir / "kubelet.json").write_text(kubelet_conf)
        (node.dir / "kube-proxy.json").write_text(configs.kube_proxy_config(node, proxy_kc))
        join = f"{node.name}-holder"
        kubelet = controlplane.kubelet(self.builder.binary("kubelet"), node, kubelet_kc)
        self.start(f"{node.name}-kubelet", kubelet, join=join)
        proxy = [str(self.builder.binary("kube-proxy")), f"--config={node.dir}/kube-proxy.json"]
        self.start(f"{node.name}-kube-proxy", proxy, join=join)

    def _nodes_ready(self) -> None:
        for node in self.topology.nodes:
            kubelet = self.proc(f"{node.name}-kubelet")
            self.wait(f"{node.name} registered", partial(self.node, node.name), kubelet)
            if not (self.node(node.name) or {}).get("spec", {}).get("podCIDR"):
                patch = {"spec": {"podCIDR": node.pod_cidr, "podCIDRs": [node.pod_cidr]}}
                self.kubectl("patch", "node", node.name, "-p", json.dumps(patch))
            self.wait(f"{node.name} Ready", partial(self.node_ready, node.name), kubelet)
            # kube-router identifies its node (and its pod range) at start: only once registered
            inside = f"https://{self.topology.nodes[0].addr}:6443"
            router_kc = self.pki.kubeconfig("system:kube-router", inside, node.dir / "kube-router.kubeconfig")
            router = controlplane.kube_router(self.builder.binary("kube-router"), node, router_kc)
            started = self.start(f"{node.name}-kube-router", router, join=f"{node.name}-holder")
            time.sleep(1)
            if not started.alive():
                raise RehearsalError(f"{node.name}: kube-router exited at start{tail(started.log_file)}")

    def addon(self, manifest: str, workload: str, **values: str) -> None:
        """Apply one of K3s's bundled parts (a file of manifests/, ``@KEY@`` filled from
        ``values``) and wait for its workload (``deployment/x``, ``daemonset/x``) in kube-system."""
        text = (MANIFESTS / manifest).read_text()
        for key, value in values.items():
            text = text.replace(f"@{key}@", value)
        self.kubectl("apply", "-f", "-", stdin=text)
        rollout = (
            "-n",
            "kube-system",
            "rollout",
            "status",
            workload,
            f"--timeout={WAIT_S}s",
        )
        done = self.kubectl(*rollout, check=False)
        if done.returncode != 0:
            pods = self.kubectl("-n", "kube-system", "get", "pods", "-o", "wide", check=False).stdout
            raise RehearsalError(f"{workload} did not become ready in {WAIT_S} s:\n{pods}{done.stderr}")

    # --- talking to it -----------------------------------------------------------------------

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """kubectl with the admin kubeconfig, through the tunnel."""
        argv = ["kubectl", f"--kubeconfig={self.kubeconfig}", "--request-timeout=20s", *args]
        done = subprocess.run(
            argv, input=stdin, capture_output=True, text=True, timeout=WAIT_S + 30, check=False
        )
        if check and done.returncode != 0:
            raise RehearsalError(f"kubectl {' '.join(args[:4])}: {done.stderr.strip()[-600:]}")
        return done

    def _api_ready(self) -> bool:
        url = f"https://127.0.0.1:{self.s.api_port}/readyz"
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {self.pki.token('admin')}"})
        context = ssl.create_default_context(cafile=str(self.pki.path("ca.crt")))
        try:
            with urllib.request.urlopen(request, timeout=3, context=context) as resp:  # noqa: S310
                return int(resp.status) == 200
        except (urllib.error.URLError, OSError):
            return False

    def node(self, name: str) -> dict[str, Any] | None:
        """The Node object, or None before the kubelet registered."""
        done = self.kubectl("get", "node", name, "-o", "json", check=False)
        return dict(json.loads(done.stdout)) if done.returncode == 0 else None

    def node_ready(self, name: str) -> bool:
        """The Node exists and is Ready."""
        return ready(self.node(name))

    def _port_in(self, node: Node, port: int, host: str = "127.0.0.1") -> bool:
        code = f"import socket; socket.create_connection(('{host}', {port}), timeout=1).close()"
        return topology.in_ns(node.ns, "python3", "-c", code, check=False).returncode == 0

    # --- down and status ---------------------------------------------------------------------

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


def ready(node: dict[str, Any] | None) -> bool:
    """The Node's Ready condition is True."""
    conditions = (node or {}).get("status", {}).get("conditions", [])
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
