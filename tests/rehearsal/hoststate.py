"""What the rehearsal may touch on this machine, read before and after, to prove ``down``
leaves it as it found it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rehearsal import host, topology

WATCHED_PATHS = ("/etc/cni", "/var/lib/containers", "/var/lib/kubelet", "/run/containerd", "/var/lib/cni")


@dataclass(frozen=True)
class HostState:
    """Mounts, namespaces, links, cgroups, sysctls and the fixed paths of the tools."""

    mounts: frozenset[str]
    leftovers: tuple[str, ...]
    cgroups: tuple[str, ...]
    sysctls: tuple[tuple[str, str], ...]
    paths: tuple[str, ...]

    @classmethod
    def read(cls) -> HostState:
        """The state now."""
        mounts = frozenset(
            " ".join(line.split()[3:5]) for line in Path("/proc/self/mountinfo").read_text().splitlines()
        )
        return cls(
            mounts=mounts,
            leftovers=tuple(topology.leftovers()),
            cgroups=tuple(host.leftover_cgroups(topology.PREFIX)),
            sysctls=tuple(sorted(host.read_sysctls().items())),
            paths=tuple(p for p in WATCHED_PATHS if Path(p).exists()),
        )

    def differences(self, other: HostState) -> list[str]:
        """What ``other`` has that this one did not (or lost), in words."""
        out = [f"mount appeared: {m}" for m in sorted(other.mounts - self.mounts)]
        out += [f"left over: {x}" for x in other.leftovers if x not in self.leftovers]
        out += [f"cgroup left: {c}" for c in other.cgroups if c not in self.cgroups]
        mine = dict(self.sysctls)
        out += [f"sysctl {k} is {v}, was {mine.get(k)}" for k, v in other.sysctls if mine.get(k) != v]
        out += [f"path appeared: {p}" for p in other.paths if p not in self.paths]
        return out
