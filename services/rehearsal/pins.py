"""Every version the rehearsal cluster uses, read from the one pin file, ``scripts/lib/pins.sh``.

The live scripts source the same file, so the rehearsal's Kubernetes is by construction the
patch release inside the K3s that ``make ca4-bootstrap-k3s`` installs on AWS.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PINS_FILE = REPO / "scripts" / "lib" / "pins.sh"

# What the rehearsal runs, here or on a node (command or path -> its Debian package, as the
# machine's apt serves it; REHEARSAL.md lists the versions seen). `make rehearsal-packages`
# installs these packages (a unit test keeps the Makefile's list and this one the same).
DEBIAN_COMMANDS = {
    "containerd": "containerd",
    "runc": "runc",
    "/usr/lib/cni/bridge": "containernetworking-plugins",
    "conntrack": "conntrack",
    "iptables": "iptables",
    "ipset": "ipset",
    "ip": "iproute2",
    "buildah": "buildah",
    "podman": "podman",  # scripts/image_ca4.sh load's CA4_CONTAINER_CLI: save without a daemon
    "debootstrap": "debootstrap",
    "/bin/busybox": "busybox-static",
    "/usr/sbin/sshd": "openssh-server",
    "ssh": "openssh-client",
    "openssl": "openssl",
    "gcc": "gcc",
    "sudo": "sudo",  # the live scripts run 'sudo -n k3s ...' on a node, as on AWS
}


@cache
def read() -> dict[str, str]:
    """``CA4_KEY -> value`` of every plain assignment in the pin file."""
    found: dict[str, str] = {}
    for raw in PINS_FILE.read_text().splitlines():
        m = re.fullmatch(r"(CA4_[A-Z0-9_]+)=(\S+)", raw.strip())
        if m:
            found[m.group(1)] = m.group(2)
    return found


@dataclass(frozen=True)
class Pins:
    """The versions of one rehearsal build."""

    k3s: str
    kubernetes: str  # v1.34.3 for v1.34.3+k3s3
    kine: str
    coredns: str
    local_path: str
    traefik: str
    kube_router: str

    @property
    def staging(self) -> str:
        """The published version of Kubernetes' staging modules (k8s.io/api v0.34.3 for v1.34.3)."""
        return "v0" + self.kubernetes.removeprefix("v1")


def pins() -> Pins:
    """The pinned versions; the Kubernetes one derived from the K3s pin."""
    values = read()
    k3s = values["CA4_K3S_VERSION_PINNED"]
    m = re.fullmatch(r"(v1\.\d+\.\d+)\+k3s\d+", k3s)
    if not m:
        raise ValueError(f"{PINS_FILE}: CA4_K3S_VERSION_PINNED={k3s} is not a K3s release tag")
    return Pins(
        k3s=k3s,
        kubernetes=m.group(1),
        kine=values["CA4_REHEARSAL_KINE_VERSION"],
        coredns=values["CA4_REHEARSAL_COREDNS_VERSION"],
        local_path=values["CA4_REHEARSAL_LOCAL_PATH_VERSION"],
        traefik=values["CA4_REHEARSAL_TRAEFIK_VERSION"],
        kube_router=values["CA4_REHEARSAL_KUBE_ROUTER_VERSION"],
    )
