"""``python -m rehearsal up|down|clean|status|build|nodes|image|standins|lifecycle|env``: the
rehearsal cluster (``make rehearsal-up``, ``make rehearsal`` ...)."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Sequence

from local_stack.config import default_cache_dir
from rehearsal.cluster import Cluster
from rehearsal.clusterbase import Settings
from rehearsal.daemons import RehearsalError
from rehearsal.gomod import BuildError
from rehearsal.images import ImageError
from rehearsal.pins import REPO


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m rehearsal",
        description="A real Kubernetes (the K3s pin's patch) on nodes in network namespaces behind a "
        "bastion, built from the Go module proxy and Debian's packages.",
        epilog="Environment: CA4_REHEARSAL_NODES (1-3, default 1), CA4_REHEARSAL_DIR (state, default "
        ".ca4-rehearsal), CA4_REHEARSAL_API_PORT (this machine's end of the API tunnel, default 26443), "
        "CA4_CACHE_DIR (binaries and images, default ~/.cache/ca4).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="build what is missing, start the cluster, wait for every node Ready")
    sub.add_parser("down", help="stop everything, remove namespaces, links, cgroups; restore sysctls")
    sub.add_parser(
        "clean",
        help="down, then delete the state folder (the datastore, certificates, rendered files; "
        "the build cache stays): the next up starts from bare instances, at any size",
    )
    sub.add_parser("status", help="each daemon and node")
    sub.add_parser("build", help="only build the binaries (cached)")
    sub.add_parser("image", help="build the project's Dockerfile with buildah and load it on every node")
    sub.add_parser(
        "nodes", help="only the bare instances: bastion, nodes with containerd and sshd, the AWS stand-ins"
    )
    lifecycle = sub.add_parser(
        "lifecycle",
        help="make rehearsal: the ca4-* targets in the contract's order on the rehearsal, twice "
        "(the second must change nothing); reports/verify-rehearsal.md",
    )
    lifecycle.add_argument(
        "--down",
        action="store_true",
        help="stop the rehearsal at the end, whatever happened (make test); by default it stays up, "
        "with its tunnels open, for exploring",
    )
    sub.add_parser(
        "env",
        help="print the rehearsal's configuration as export lines, to run one ca4-* target by hand: "
        'eval "$(python -m rehearsal env)"; make ca4-verify-preflight',
    )
    standins = sub.add_parser(
        "standins",
        help="build the stand-ins for apache/kafka and prom/prometheus and load them on every node "
        "(Kafka's jars from Maven Central, Prometheus from its Go module); name those that cannot be had",
    )
    standins.add_argument(
        "--build-only", action="store_true", help="only build them (cached), with no cluster running"
    )
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("rehearsal: needs root (network namespaces, mounts, containerd)", file=sys.stderr)
        return 2
    try:
        return run(Cluster(Settings.from_env(REPO, default_cache_dir())), args)
    except (RehearsalError, BuildError, ImageError) as exc:
        print(f"rehearsal: {exc}", file=sys.stderr)
        return 1


def run(cluster: Cluster, args: argparse.Namespace) -> int:
    """One command; its exit status."""
    if args.command == "status":
        rows = cluster.status()
        for what, state in rows:
            print(f"  {what:32} {state}")
        return 0 if any("running" in s for _, s in rows) else 3
    if args.command in ("lifecycle", "env"):
        return _lifecycle(cluster, args.command, down=getattr(args, "down", False))
    if args.command in ("down", "clean"):
        for line in cluster.down() or ["nothing was running"]:
            print(f"  {line}")
        if args.command == "clean":
            print(f"  {cluster.clean()}")
        return 0
    if args.command == "standins":
        for ref, image in cluster.standin_images(load=not args.build_only).items():
            print(f"{ref} <- {image.ref}")
    elif args.command == "image":
        print(cluster.project_image().ref)
    elif args.command == "nodes":
        cluster.nodes()
    elif args.command == "up":
        cluster.up()
    else:
        cluster.builder.ensure()
    return 0


def _lifecycle(cluster: Cluster, command: str, down: bool = False) -> int:
    """``lifecycle``: both rounds and the report (``down``: stop it all afterwards, always);
    ``env``: the configuration as export lines."""
    from rehearsal.lifecycle import Lifecycle  # noqa: PLC0415 - only these commands need it

    lifecycle = Lifecycle(cluster)
    if command == "lifecycle":
        try:
            return 0 if lifecycle.run() else 1
        finally:
            if down:
                for line in cluster.down():
                    print(f"  {line}")
    for key, value in sorted(lifecycle.configuration().items()):
        print(f"export {key}={shlex.quote(value)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
