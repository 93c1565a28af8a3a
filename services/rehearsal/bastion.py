"""The bastion: Debian's sshd in its own namespace, the one way from this machine to the nodes.

It gets a host key and one client key of the rehearsal's own (this machine's ``~/.ssh`` is
never read or written); ``up`` opens the API tunnel through it as a laptop would through
the AWS bastion: ``ssh -N -L 127.0.0.1:<port>:<node 0>:6443 root@<bastion>``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from local_stack.procs import port_open
from rehearsal.daemons import LIFETIME_S, Daemons, RehearsalError, run
from rehearsal.topology import BASTION_ADDR, Node, Topology


def sshd_config(ssh: Path, listen: str = BASTION_ADDR, pid_file: str = "sshd.pid") -> str:
    """Key login only, TCP forwarding on (the tunnels), nothing read from this machine's /etc/ssh."""
    return "\n".join(
        [
            f"ListenAddress {listen}",
            f"HostKey {ssh}/host_ed25519",
            f"AuthorizedKeysFile {ssh}/authorized_keys",
            "PermitRootLogin prohibit-password",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "StrictModes no",
            "AllowTcpForwarding yes",
            "GatewayPorts no",
            "X11Forwarding no",
            f"PidFile {ssh}/{pid_file}",
            "",
        ]
    )


def ssh_options(ssh: Path) -> list[str]:
    """ssh to the bastion as the rehearsal's client: its key, its known_hosts, bounded waits."""
    options = [
        "IdentitiesOnly=yes",
        "BatchMode=yes",
        f"UserKnownHostsFile={ssh}/known_hosts",
        "StrictHostKeyChecking=accept-new",
        "ConnectTimeout=10",
        "ServerAliveInterval=15",
        "ExitOnForwardFailure=yes",
    ]
    return ["ssh", "-i", str(ssh / "client_ed25519"), *(a for o in options for a in ("-o", o))]


def holder_argv(ns: str) -> list[str]:
    """The bastion's namespace holder: its own /run (sshd's privilege separation dir)."""
    script = f"set -e; mount -t tmpfs -o mode=755 ca4rh-run /run; mkdir -p /run/sshd; exec sleep {LIFETIME_S}"
    enter = ["nsenter", f"--net=/run/netns/{ns}", "--"]
    return [*enter, "unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script]


def start(daemons: Daemons, topo: Topology) -> Path:
    """Keys, the sshd config and sshd itself; returns the ssh folder."""
    ssh = daemons.state / "ssh"
    ssh.mkdir(parents=True, exist_ok=True)
    os.chmod(ssh, 0o700)
    for key in ("host_ed25519", "client_ed25519"):
        if not (ssh / key).exists():
            run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(ssh / key)],
                what=f"ssh-keygen {key}",
            )
    shutil.copy(ssh / "client_ed25519.pub", ssh / "authorized_keys")
    (ssh / "sshd_config").write_text(sshd_config(ssh))
    daemons.start("bastion-holder", holder_argv(topo.bastion_ns))
    daemons.wait_holder("bastion-holder")
    sshd = daemons.start(
        "bastion-sshd", ["/usr/sbin/sshd", "-D", "-e", "-f", str(ssh / "sshd_config")], join="bastion-holder"
    )
    daemons.wait(f"sshd on {BASTION_ADDR}:22", lambda: port_open(22, BASTION_ADDR), sshd)
    return ssh


def start_on_node(daemons: Daemons, node: Node, listening: Callable[[], bool]) -> None:
    """sshd on a node's own address, as on an EC2 instance: the way ``ca4-bootstrap-k3s`` and
    ``ca4-image-load`` reach it (``ssh -J`` through the bastion), with the same keys."""
    ssh = daemons.state / "ssh"
    config = ssh / f"sshd_config-{node.name}"
    config.write_text(sshd_config(ssh, node.addr, f"sshd-{node.name}.pid"))
    sshd = daemons.start(
        f"{node.name}-sshd", ["/usr/sbin/sshd", "-D", "-e", "-f", str(config)], join=f"{node.name}-holder"
    )
    daemons.wait(f"{node.name}: sshd on {node.addr}:22", listening, sshd)


def tunnel(daemons: Daemons, name: str, local_port: int, target: str) -> None:
    """``ssh -N -L 127.0.0.1:local_port:target`` through the bastion, as a named daemon."""
    if port_open(local_port) and not daemons.proc(name).alive():
        raise RehearsalError(
            f"127.0.0.1:{local_port} is taken by another program: free it or set CA4_REHEARSAL_API_PORT"
        )
    argv = [*ssh_options(daemons.state / "ssh"), "-N", "-L", f"127.0.0.1:{local_port}:{target}"]
    proc = daemons.start(name, [*argv, f"root@{BASTION_ADDR}"])
    daemons.wait(f"the tunnel on 127.0.0.1:{local_port}", lambda: port_open(local_port), proc, 30)
