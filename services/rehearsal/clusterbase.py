"""The rehearsal cluster's settings and state, and talking to it: ``ClusterBase`` holds its
state folder, topology, certificates, builders and AWS stand-ins, and runs kubectl (through the
API tunnel), ctr (in a node) and the live scripts (with the configuration they get here instead
of AWS). ``nodeimages`` and ``cluster`` build on it.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from local_stack.procs import note
from rehearsal import aws, configs, topology
from rehearsal.build import Builder
from rehearsal.daemons import WAIT_S, Daemons, RehearsalError
from rehearsal.images import Buildah, Image
from rehearsal.pki import Pki
from rehearsal.topology import S3_ADDR, Node, Topology

DEFAULT_API_PORT = 26443  # this machine's end of the API tunnel (16443 stays free for ca4-tunnels-up)


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


class ClusterBase(Daemons):
    """One rehearsal cluster and its state folder: what it holds, and how to talk to it."""

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

    # --- the live scripts --------------------------------------------------------------------

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

    # --- talking to it -----------------------------------------------------------------------

    def admin_kubeconfig(self) -> Path:
        """The rehearsal's own admin kubeconfig, through its API tunnel (once the server made
        its certificates and tokens)."""
        return self.pki.kubeconfig("admin", f"https://127.0.0.1:{self.s.api_port}", self.kubeconfig)

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


def ready(node: dict[str, Any] | None) -> bool:
    """The Node's Ready condition is True."""
    conditions = (node or {}).get("status", {}).get("conditions", [])
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
