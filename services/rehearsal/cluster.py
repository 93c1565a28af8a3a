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

Every wait is bounded and names what it waited for when it gives up.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from local_stack.procs import Process, note, step
from rehearsal import aws, bastion, configs, host, topology
from rehearsal.build import Builder
from rehearsal.daemons import LIFETIME_S, WAIT_S, Daemons, RehearsalError
from rehearsal.images import Buildah, DebianBase, Image
from rehearsal.pins import DEBIAN_COMMANDS
from rehearsal.pki import Pki
from rehearsal.standins import StandIns, missing_note
from rehearsal.topology import BASTION_ADDR, DNS_SERVICE_IP, HOST_ADDR, S3_ADDR, SERVICE_CIDR, Node, Topology

MANIFESTS = Path(__file__).resolve().parent / "manifests"
DEFAULT_API_PORT = 26443  # this machine's end of the API tunnel (16443 stays free for ca4-tunnels-up)
IMAGE_PREFIX = "localhost/ca4-rehearsal"  # "localhost/": containerd never resolves them on a registry


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
        self.aws = aws.Aws(self, self.topology, settings.cache)

    def _recorded_nodes(self) -> int | None:
        with contextlib.suppress(OSError, ValueError, KeyError):
            return int(json.loads((self.state / "cluster.json").read_text())["nodes"])
        return None

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

    def script(self, argv: list[str], timeout: float, what: str = "") -> None:
        """A live script (or make target) with the rehearsal's configuration; its output as notes.
        A failure names ``what`` (by default the program ``argv`` runs)."""
        done = subprocess.run(
            argv,
            env={**os.environ, **self.script_env()},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        for line in (done.stdout + done.stderr).strip().splitlines():
            note(f"  {line}")
        if done.returncode != 0:
            name = what or Path(argv[0]).name
            raise RehearsalError(f"{name} exited {done.returncode} (its output is above)")

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

    def project_image(self) -> Image:
        """The project's image built (``build_project_image``) and loaded on every node by
        ``scripts/image_ca4.sh load``, the code path of ``make ca4-image-load``."""
        repo = Path(__file__).resolve().parents[2]
        image = self.build_project_image()
        with step("scripts/image_ca4.sh load: podman save | ssh -J bastion | k3s ctr import, on each node"):
            self.image_load(repo)
        return image

    def build_project_image(self) -> Image:
        """The project's own Dockerfile, built for real with buildah on a Debian 12 base made
        with debootstrap (BASE_IMAGE, trusting the rehearsal's "public" CA as Debian trusts the
        public ones), tagged as ``scripts/image_ca4.sh tag`` names it (so ``make ca4-image-build``
        finds it built). The image's DocumentDB CA bundle is the DocumentDB stand-in's CA."""
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
            self.aws.ensure_certificates()
            base = DebianBase(self.buildah).trusting(self.aws.public_ca.path("ca.crt"))
            ca = base64.b64encode(aws.documentdb_bundle(self.aws)).decode()
            image = self.buildah.dockerfile(
                ref, repo, {"BASE_IMAGE": base, "DOCUMENTDB_CA_BUNDLE_PEM_B64": ca}
            )
        self.images["project"] = image
        return image

    def admin_kubeconfig(self) -> Path:
        """The rehearsal's own admin kubeconfig, through its API tunnel (once the server made
        its certificates and tokens)."""
        return self.pki.kubeconfig("admin", f"https://127.0.0.1:{self.s.api_port}", self.kubeconfig)

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
        repo = Path(__file__).resolve().parents[2]
        return {
            "CA4_TF_DIR": str(self.state / "terraform"),
            "AWS_CHECK": "skip",  # preflight.sh: the rehearsal's root has no provider to credit
            "CA4_S3_ENDPOINT_URL": f"https://{S3_ADDR}",
            "CA4_SSH_KEY": str(self.state / "ssh" / "client_ed25519"),
            "CA4_STATE_DIR": str(self.state / "ca4-state"),
            "CA4_SECRETS_DIR": str(self.state / "secrets"),
            "CA4_RENDER_DIR": str(self.state / "rendered"),
            "CA4_K3S_INSTALL_SCRIPT": str(repo / "services" / "rehearsal" / "node" / "install.sh"),
            "CA4_K3S_VERSION": self.builder.pins.kubernetes,
            "CA4_CONTAINER_CLI": "podman",
            "CONTAINERS_STORAGE_CONF": str(storage),
            "CONTAINERS_CONF": str(engine),
            "CA4_IMAGE_ALLOW_DIRTY": "1",
        }

    def image_load(self, repo: Path) -> None:
        """``scripts/image_ca4.sh load``, as ``make ca4-image-load`` runs it, against these nodes."""
        argv = self.scratch_var_lib([f"{repo}/scripts/image_ca4.sh", "load"])
        self.script(argv, timeout=900, what="scripts/image_ca4.sh load")

    def scratch_var_lib(self, argv: list[str]) -> list[str]:
        """``argv`` in a mount namespace whose /var/lib is a scratch folder of buildah's: podman
        keeps a blob cache in /var/lib/containers, which this machine must not keep."""
        scratch = self.buildah.root / "var-lib"
        scratch.mkdir(parents=True, exist_ok=True)
        script = f'mount --bind {shlex.quote(str(scratch))} /var/lib && exec "$@"'
        return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, "sh", *argv]

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

    def rollout(self, namespace: str, workload: str) -> None:
        """Wait for a workload (``deployment/x``, ``daemonset/x``); fail with the pods seen."""
        done = self.kubectl(
            "-n", namespace, "rollout", "status", workload, f"--timeout={WAIT_S}s", check=False
        )
        if done.returncode != 0:
            pods = self.kubectl("-n", namespace, "get", "pods", "-o", "wide", check=False).stdout
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


def ready(node: dict[str, Any] | None) -> bool:
    """The Node's Ready condition is True."""
    conditions = (node or {}).get("status", {}).get("conditions", [])
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
