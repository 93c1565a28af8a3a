"""What the rehearsal changes on this machine outside its namespaces, saved and put back.

The kubelet rewrites a few global kernel settings at start (``setupKernelTunables``); they
are saved before the first node starts and restored by ``down``. Each node's kubelet gets a
cgroup root of its own in every cgroup v1 hierarchy; ``down`` removes those cgroups once
their processes are gone. The rest (iptables, routes, forwarding, mounts) lives inside the
rehearsal's namespaces and vanishes with them.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path

# the kubelet's kernel tunables, and the global ones a node's daemons could reach
SYSCTLS = (
    "vm.overcommit_memory",
    "vm.panic_on_oom",
    "kernel.panic",
    "kernel.panic_on_oops",
    "kernel.keys.root_maxkeys",
    "kernel.keys.root_maxbytes",
    "net.netfilter.nf_conntrack_max",
)
CGROUP_V1 = Path("/sys/fs/cgroup")


def _sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name.replace(".", "/")


def read_sysctls() -> dict[str, str]:
    """The current value of each setting (one that does not exist here is left out)."""
    values = {}
    for name in SYSCTLS:
        with contextlib.suppress(OSError):
            values[name] = _sysctl_path(name).read_text().strip()
    return values


def save_sysctls(path: Path) -> dict[str, str]:
    """Save the values once: a second ``up`` keeps what was there before the first."""
    if path.exists():
        return dict(json.loads(path.read_text()))
    values = read_sysctls()
    path.write_text(json.dumps(values, indent=2) + "\n")
    return values


def restore_sysctls(path: Path) -> list[str]:
    """Put the saved values back; returns the settings that had changed."""
    if not path.exists():
        return []
    saved: dict[str, str] = json.loads(path.read_text())
    changed = []
    for name, value in saved.items():
        target = _sysctl_path(name)
        with contextlib.suppress(OSError):
            if target.read_text().strip() != value:
                target.write_text(value)
                changed.append(f"{name}={value}")
    path.unlink()
    return changed


def cgroup_hierarchies() -> list[Path]:
    """The mounted cgroup hierarchies: v1's (cpu, memory, pids, ... and, on a hybrid host,
    the v2 ``unified`` one, where runc also makes a cgroup per container), or the v2 root."""
    if (CGROUP_V1 / "cgroup.controllers").exists():
        return [CGROUP_V1]
    return sorted(p for p in CGROUP_V1.iterdir() if p.is_dir() and not p.is_symlink())


def make_cgroup(name: str) -> None:
    """The node's cgroup root in every hierarchy."""
    for hierarchy in cgroup_hierarchies():
        with contextlib.suppress(OSError):
            (hierarchy / name.lstrip("/")).mkdir(exist_ok=True)


def cgroup_pids(name: str) -> set[int]:
    """Every process in the node's cgroups: the pods' containers live in their own network
    namespaces, so this, not the node's namespace, is where to find them all."""
    pids: set[int] = set()
    for hierarchy in cgroup_hierarchies():
        top = hierarchy / name.lstrip("/")
        for procs in top.rglob("cgroup.procs") if top.exists() else []:
            with contextlib.suppress(OSError, ValueError):
                pids.update(int(p) for p in procs.read_text().split())
    return pids


def kill_cgroup(name: str, timeout: float = 10) -> int:
    """SIGKILL every process of the node's cgroups until none is left; how many there were."""
    killed: set[int] = set()
    deadline = time.monotonic() + timeout
    while (pids := cgroup_pids(name)) and time.monotonic() < deadline:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        killed |= pids
        time.sleep(0.2)
    return len(killed)


def remove_cgroup(name: str) -> list[str]:
    """Remove the node's cgroups, deepest first; returns those still there (processes left)."""
    left = []
    for hierarchy in cgroup_hierarchies():
        top = hierarchy / name.lstrip("/")
        if not top.exists():
            continue
        for dirpath, _dirs, _files in sorted(os.walk(top), key=lambda t: -t[0].count("/")):
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)
        if top.exists():
            left.append(str(top))
    return left


def leftover_cgroups(prefix: str) -> list[str]:
    """cgroups of any rehearsal node still on this machine."""
    return [
        str(p) for h in cgroup_hierarchies() if h.exists() for p in h.iterdir() if p.name.startswith(prefix)
    ]
