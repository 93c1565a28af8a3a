"""A bastion and two edge hosts in network namespaces, each with Debian's real sshd, for
testing the K3s bootstrap and the tunnels over real SSH hops.

    workstation ns (192.0.2.1) --veth-- bastion ns (192.0.2.2 | bridge 198.51.100.1)
                                           |-- edge0 ns (198.51.100.10)
                                           `-- edge1 ns (198.51.100.11)

The workstation has no route to 198.51.100.0/24: an edge host is reachable only by
hopping through the bastion, as in the VPC. Addresses are documentation ranges (RFC 5737)
that exist only inside these namespaces.

Each sshd runs in a private mount namespace with overlays on /etc, /usr/local and
/var/lib, so the user `ubuntu` (passwordless sudo, like the AMI's), and whatever the K3s
installer stand-in writes (/usr/local/bin/k3s, /etc/rancher, /var/lib/rancher), exist on
that host only and vanish with it. Every process is bounded by `timeout`, and `close()`
kills everything left in the namespaces and deletes them.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.tools.run import run

WS_ADDR = "192.0.2.1"
BASTION_ADDR = "192.0.2.2"
BASTION_LAN = "198.51.100.1"
EDGE_ADDRS = ("198.51.100.10", "198.51.100.11")
USER = "ubuntu"
LIFETIME_S = 900  # the longest any process of the lab may live, whatever happens to the test
HERE = Path(__file__).resolve().parent


def sh(*cmd: str, timeout: float = 30, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command, bounded; its output on failure."""
    proc = run(cmd, timeout=timeout)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} -> {proc.returncode}: {proc.stderr.strip()}")
    return proc


def lab_problem() -> str | None:
    """Why this machine cannot run the lab, or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, sshd, mounts)"
    for tool in ("ip", "unshare", "ssh", "ssh-keygen", "openssl", "timeout"):
        if not shutil.which(tool):
            return f"{tool} is not installed"
    for path in ("/usr/sbin/sshd", "/usr/bin/sudo"):
        if not Path(path).exists():
            return f"{path} is missing: scripts/ensure_packages.sh openssh-server sudo (make test does it)"
    return None


@dataclass
class Host:
    """One namespace with its sshd."""

    name: str
    ns: str
    addr: str
    dir: Path
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.dir / "sshd.log"


class Lab:
    """The namespaces, keys, sshds and helpers; use as a context manager."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tag = secrets.token_hex(2)
        prefix = f"ca4t{self.tag}"
        self.ws_ns = f"{prefix}-ws"
        self.bastion = Host("bastion", f"{prefix}-bas", BASTION_ADDR, root / "bastion")
        self.edges = [
            Host(f"edge{i}", f"{prefix}-e{i}", a, root / f"edge{i}") for i, a in enumerate(EDGE_ADDRS)
        ]
        self.namespaces = [self.ws_ns, self.bastion.ns, *(e.ns for e in self.edges)]
        self.procs: list[subprocess.Popen[bytes]] = []
        self.key = root / "id_ed25519"
        self.created_run_sshd = False

    # --- lifecycle ------------------------------------------------------------------------------

    def __enter__(self) -> Lab:
        try:
            self._network()
            self._keys()
            for host in [self.bastion, *self.edges]:
                self._sshd(host)
            for host in [self.bastion, *self.edges]:
                self.wait_port(host.ns, host.addr, 22)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Kill every process of the lab (ours and any left in its namespaces), delete them."""
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        for ns in self.namespaces:
            pids = sh("ip", "netns", "pids", ns, check=False).stdout.split()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), 9)
            sh("ip", "netns", "del", ns, check=False)
        if self.created_run_sshd:
            with contextlib.suppress(OSError):
                Path("/run/sshd").rmdir()

    def leftovers(self) -> list[str]:
        """Namespaces of this lab that still exist (for the cleanup test)."""
        existing = sh("ip", "netns", "list", check=False).stdout
        return [ns for ns in self.namespaces if ns in existing]

    # --- setup --------------------------------------------------------------------------------------

    def _network(self) -> None:
        t = self.tag
        for ns in self.namespaces:
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        ws_if, bas_if = f"c4{t}w", f"c4{t}b"
        sh("ip", "link", "add", ws_if, "type", "veth", "peer", "name", bas_if)
        sh("ip", "link", "set", ws_if, "netns", self.ws_ns)
        sh("ip", "link", "set", bas_if, "netns", self.bastion.ns)
        sh("ip", "-n", self.ws_ns, "addr", "add", f"{WS_ADDR}/24", "dev", ws_if)
        sh("ip", "-n", self.ws_ns, "link", "set", ws_if, "up")
        sh("ip", "-n", self.bastion.ns, "addr", "add", f"{BASTION_ADDR}/24", "dev", bas_if)
        sh("ip", "-n", self.bastion.ns, "link", "set", bas_if, "up")
        sh("ip", "-n", self.bastion.ns, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", self.bastion.ns, "addr", "add", f"{BASTION_LAN}/24", "dev", "br0")
        sh("ip", "-n", self.bastion.ns, "link", "set", "br0", "up")
        for i, edge in enumerate(self.edges):
            e_if, p_if = f"c4{t}e{i}", f"c4{t}p{i}"
            sh("ip", "link", "add", e_if, "type", "veth", "peer", "name", p_if)
            sh("ip", "link", "set", e_if, "netns", edge.ns)
            sh("ip", "link", "set", p_if, "netns", self.bastion.ns)
            sh("ip", "-n", self.bastion.ns, "link", "set", p_if, "master", "br0", "up")
            sh("ip", "-n", edge.ns, "addr", "add", f"{edge.addr}/24", "dev", e_if)
            sh("ip", "-n", edge.ns, "link", "set", e_if, "up")

    def _keys(self) -> None:
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ca4-lab", "-f", str(self.key))
        (self.root / "authorized_keys").write_text(Path(f"{self.key}.pub").read_text())
        if not Path("/run/sshd").exists():
            Path("/run/sshd").mkdir(mode=0o755)
            self.created_run_sshd = True

    def _sshd(self, host: Host) -> None:
        host.dir.mkdir(parents=True)
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host.dir / "host_ed25519"))
        config = host.dir / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    "Port 22",
                    f"ListenAddress {host.addr}",
                    f"HostKey {host.dir / 'host_ed25519'}",
                    "PidFile none",
                    "AuthorizedKeysFile .ssh/authorized_keys",
                    "UsePAM no",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PubkeyAuthentication yes",
                    "PermitRootLogin no",
                    f"AllowUsers {USER}",
                    "AllowTcpForwarding yes",
                    # DEBUG1 logs each forwarded connection ("direct-tcpip") on the bastion
                    f"LogLevel {'DEBUG1' if host is self.bastion else 'VERBOSE'}",
                    "",
                ]
            )
        )
        overlays = []
        for d in ("etc", "usr/local", "var/lib"):
            upper, work = (
                host.dir / "ov" / d.replace("/", "-") / "upper",
                host.dir / "ov" / d.replace("/", "-") / "work",
            )
            upper.mkdir(parents=True)
            work.mkdir(parents=True)
            overlays.append(f"mount -t overlay overlay -o lowerdir=/{d},upperdir={upper},workdir={work} /{d}")
        setup = " && ".join(
            [
                *overlays,
                "mkdir -p /var/lib/ca4-lab-home",
                f"useradd --home-dir /var/lib/ca4-lab-home/{USER} --create-home --shell /bin/bash {USER}",
                # no password, but not locked (sshd without PAM refuses locked accounts)
                f"usermod -p '*' {USER}",
                # sshd reads the key file as the user, who cannot enter pytest's private tmp folder
                f"install -d -m 700 -o {USER} -g {USER} /var/lib/ca4-lab-home/{USER}/.ssh",
                f"install -m 600 -o {USER} -g {USER} {self.root / 'authorized_keys'} "
                f"/var/lib/ca4-lab-home/{USER}/.ssh/authorized_keys",
                f"printf '%s\\n' '{USER} ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/ca4-lab",
                "chmod 0440 /etc/sudoers.d/ca4-lab",
                f"exec timeout {LIFETIME_S} /usr/sbin/sshd -D -f {config} -E {host.log}",
            ]
        )
        self.spawn(
            host.ns,
            ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", setup],
            host.dir / "launch.log",
        )

    # --- helpers ------------------------------------------------------------------------------------

    def spawn(self, ns: str, cmd: list[str], log: Path) -> subprocess.Popen[bytes]:
        """A background process in a namespace, output to log; killed by close()."""
        with log.open("ab") as out:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", ns, *cmd],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self.procs.append(proc)
        return proc

    def wait_port(self, ns: str, addr: str, port: int, timeout: float = 20) -> None:
        """Until addr:port accepts TCP inside ns (bounded)."""
        deadline = time.monotonic() + timeout
        code = f"import socket; socket.create_connection(({addr!r}, {port}), 1).close()"
        while time.monotonic() < deadline:
            if sh("ip", "netns", "exec", ns, "python3", "-c", code, check=False, timeout=10).returncode == 0:
                return
            time.sleep(0.2)
        logs = "\n".join(p.read_text()[-800:] for p in self.root.rglob("*.log") if p.exists())
        raise RuntimeError(f"{addr}:{port} in {ns} did not open within {timeout} s\n{logs}")

    def in_ws(self, cmd: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
        """Run a command on the workstation (bounded)."""
        return run(
            ["ip", "netns", "exec", self.ws_ns, "env", *(f"{k}={v}" for k, v in env.items()), *cmd],
            timeout=timeout,
        )

    def connect_from_ws(self, addr: str, port: int, read: bool = False) -> str | None:
        """Connect from the workstation; what the peer sends first (read=True), "" when only
        connected, None when the connection failed."""
        code = (
            "import socket, sys\n"
            "try:\n"
            f"    s = socket.create_connection(({addr!r}, {port}), 3)\n"
            "except OSError:\n    sys.exit(3)\n"
            f"s.settimeout(5)\nprint(s.recv(200).decode().strip() if {read} else '')\n"
        )
        proc = sh("ip", "netns", "exec", self.ws_ns, "python3", "-c", code, check=False, timeout=20)
        return None if proc.returncode == 3 else proc.stdout.strip()

    def ws_pids(self) -> list[int]:
        """Processes still living in the workstation namespace."""
        return [int(p) for p in sh("ip", "netns", "pids", self.ws_ns, check=False).stdout.split()]

    def edge_ssh(self, edge: int, command: str) -> subprocess.CompletedProcess[str]:
        """A command on an edge host, through the bastion, with the lab's key."""
        config = self.root / "client_config"
        config.write_text(
            f"Host lab-bastion\n  HostName {BASTION_ADDR}\nHost *\n  User {USER}\n  IdentityFile {self.key}\n"
            "  UserKnownHostsFile /dev/null\n  StrictHostKeyChecking no\n  BatchMode yes\n"
            "  ConnectTimeout 5\n  LogLevel ERROR\n"
        )
        return self.in_ws(
            ["ssh", "-F", str(config), "-J", "lab-bastion", f"{USER}@{EDGE_ADDRS[edge]}", command],
            {},
            timeout=30,
        )
