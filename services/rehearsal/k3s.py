"""``k3s`` and ``systemctl`` on a rehearsal node: what K3s's install interface needs from a node.

``make ca4-bootstrap-k3s`` installs K3s by streaming an installer over SSH (``sudo -n sh -s --
server|agent FLAGS`` with ``INSTALL_K3S_VERSION``, ``K3S_TOKEN`` and, for agents, ``K3S_URL``),
then probes the node with ``k3s --version``, ``systemctl is-active k3s|k3s-agent`` and
``/etc/systemd/system/<unit>.service.env``. On the rehearsal the installer is
``services/rehearsal/install.sh`` (``CA4_K3S_INSTALL_SCRIPT``): it writes the same unit and env
files as K3s's and starts the unit with this ``systemctl``. The node's ``k3s`` (a shim in its
``/usr/local/sbin``, as an air-gapped K3s install pre-places the binary) runs this module:

    k3s --version          k3s version <Kubernetes version> (ca4-rehearsal)
    k3s server FLAGS       kine, kube-apiserver, controller-manager, scheduler, then this node's
                           kubelet, kube-proxy and kube-router; writes /etc/rancher/k3s/k3s.yaml
                           and /var/lib/rancher/k3s/server/token as K3s does, then applies the
                           manifests in /var/lib/rancher/k3s/server/manifests (K3s's bundled parts)
    k3s agent FLAGS        joins K3S_URL with K3S_TOKEN: the token (a bootstrap token derived from
                           it, which the server registered) fetches the cluster's CA, trusted on
                           first use as K3s does with a token without a CA hash, and the kubelet
                           gets its client certificate by TLS bootstrapping
    k3s ctr ARGS           containerd's ctr on the node's containerd
    k3s kubectl ARGS       kubectl with /etc/rancher/k3s/k3s.yaml

    systemctl daemon-reload | enable [--now] | disable | start | stop | restart | is-active [--quiet] UNIT

A unit is active while every daemon of its role runs; ``server`` and ``agent`` start what is not
running and return once the node is registered (K3s's unit is Type=notify: systemctl returns when
it is ready). The daemons are the rehearsal's (PID files under its state folder), so
``make rehearsal-down`` stops them like the rest. What ``server`` and ``agent`` do on the node is
``nodehost``'s; how an agent joins with the token, ``join``'s.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from rehearsal import configs
from rehearsal.daemons import WAIT_S, RehearsalError

# the join token's parts are named here too: tests/unit/test_rehearsal_k3s.py reads them from k3s
from rehearsal.nodehost import KUBECONFIG, NodeHost
from rehearsal.pins import pins

UNIT_DIR = Path("/etc/systemd/system")
ROLES = {"k3s": "server", "k3s-agent": "agent"}


# --- command lines --------------------------------------------------------------------------


def _flags(role: str, argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"k3s {role}", description=f"the rehearsal's k3s {role}")
    parser.add_argument("--node-ip")
    parser.add_argument("--node-label", action="append", default=[])
    if role == "server":
        parser.add_argument("--advertise-address")
        parser.add_argument("--tls-san", action="append", default=[])
        parser.add_argument("--write-kubeconfig-mode")
        parser.add_argument("--secrets-encryption", action="store_true")
    flags, unknown = parser.parse_known_args(argv)
    if unknown:
        raise RehearsalError(f"k3s {role}: the rehearsal's k3s does not know {' '.join(unknown)}")
    return flags


def k3s(argv: Sequence[str], env: dict[str, str]) -> int:
    """The node's ``k3s`` command."""
    command, rest = (argv[0], list(argv[1:])) if argv else ("--help", [])
    if command in ("--version", "-v", "version"):
        print(f"k3s version {pins().kubernetes} (ca4-rehearsal)")
        return 0
    if command == "ctr":
        ctr = ["ctr", "--address", configs.CONTAINERD_SOCKET, *rest]
        os.execvp("ctr", ctr)  # noqa: S606 - a multi-call binary's subcommand execs, as K3s's
    if command == "kubectl":
        os.execvp("kubectl", ["kubectl", f"--kubeconfig={KUBECONFIG}", *rest])  # noqa: S606 - as above
    if command in ("server", "agent"):
        token = env.get("K3S_TOKEN", "")
        if not token:
            raise RehearsalError(f"k3s {command}: K3S_TOKEN is not set")
        host = NodeHost(env)
        if command == "server":
            host.server(_flags("server", rest), token)
        else:
            url = env.get("K3S_URL", "")
            if not url:
                raise RehearsalError("k3s agent: K3S_URL is not set")
            host.agent(_flags("agent", rest), token, url.rstrip("/"))
        return 0
    print("usage: k3s --version | server FLAGS | agent FLAGS | ctr ARGS | kubectl ARGS", file=sys.stderr)
    return 0 if command in ("-h", "--help", "help") else 2


def unit_command(unit: str) -> tuple[list[str], dict[str, str]]:
    """ExecStart and EnvironmentFile of a unit the installer wrote, as argv and variables."""
    path = UNIT_DIR / f"{unit}.service"
    if not path.exists():
        raise RehearsalError(f"Unit {unit}.service not found.")
    text = path.read_text().replace("\\\n", " ")
    fields = dict(
        line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#")
    )
    env: dict[str, str] = {}
    env_file = Path(fields.get("EnvironmentFile", "").lstrip("-"))
    if env_file.is_file():
        for line in env_file.read_text().splitlines():
            if "=" in line and not line.lstrip().startswith("#"):
                key, value = line.split("=", 1)
                env[key.strip()] = " ".join(shlex.split(value))
    return shlex.split(fields.get("ExecStart", "")), env


def is_active(host: NodeHost, unit: str) -> bool:
    """A unit is active when the installer wrote it and every daemon of its role runs."""
    return (UNIT_DIR / f"{unit}.service").exists() and host.active(ROLES[unit])


def run_unit(host: NodeHost, unit: str, env: dict[str, str], restart: bool) -> int:
    """(Re)start a unit: its ExecStart with its EnvironmentFile, as systemd would."""
    if restart:
        host.stop(ROLES[unit])
    command, unit_env = unit_command(unit)
    done = subprocess.run(command, env={**env, **unit_env}, timeout=WAIT_S * 3, check=False)
    if done.returncode != 0:
        print(f"Job for {unit}.service failed (exit {done.returncode}).", file=sys.stderr)
        return 1
    return 0


def systemctl(argv: Sequence[str], env: dict[str, str]) -> int:
    """The node's ``systemctl``, for the units of K3s's installer (exit codes as systemd's)."""
    args = [a for a in argv if not a.startswith("-")]
    quiet, now = bool({"--quiet", "-q"} & set(argv)), "--now" in argv
    if not args:
        print(
            "usage: systemctl daemon-reload | enable|disable|start|stop|restart|is-active UNIT",
            file=sys.stderr,
        )
        return 2
    verb, units = args[0], [u.removesuffix(".service") for u in args[1:]]
    if verb == "daemon-reload":
        return 0
    if verb != "is-active" and (unknown := [u for u in units if u not in ROLES]):
        print(f"Unit {unknown[0]}.service not found.", file=sys.stderr)
        return 5
    host = NodeHost(env) if any(u in ROLES for u in units) else None
    status = 0
    for unit in units:
        if host is None or unit not in ROLES:
            active = False
            if verb == "is-active" and not quiet:
                print("inactive")
            status = status or 3
        elif verb == "is-active":
            active = is_active(host, unit)
            if not quiet:
                print("active" if active else "inactive")
            status = status or (0 if active else 3)
        elif verb == "stop" or (verb == "disable" and now):
            host.stop(ROLES[unit])
        elif verb in ("start", "restart") or (verb == "enable" and now):
            status = status or run_unit(host, unit, env, restart=verb == "restart")
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m rehearsal.k3s k3s|systemctl ARGS`` (the node's shims call it)."""
    args = list(sys.argv[1:] if argv is None else argv)
    tool, rest = (args[0], args[1:]) if args else ("k3s", [])
    env = dict(os.environ)
    try:
        return systemctl(rest, env) if tool == "systemctl" else k3s(rest, env)
    except RehearsalError as exc:
        print(f"{tool}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
