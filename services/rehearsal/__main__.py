"""``python -m rehearsal up|down|status|build``: the rehearsal cluster (``make rehearsal-up`` ...)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from local_stack.config import default_cache_dir
from rehearsal.build import BuildError
from rehearsal.cluster import Cluster, Settings
from rehearsal.daemons import RehearsalError
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
    sub.add_parser("status", help="each daemon and node")
    sub.add_parser("build", help="only build the binaries (cached)")
    sub.add_parser("image", help="build the project's Dockerfile with buildah and load it on every node")
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
        cluster = Cluster(Settings.from_env(REPO, default_cache_dir()))
        if args.command == "up":
            cluster.up()
        elif args.command == "down":
            for line in cluster.down() or ["nothing was running"]:
                print(f"  {line}")
        elif args.command == "status":
            rows = cluster.status()
            for what, state in rows:
                print(f"  {what:32} {state}")
            return 0 if any("running" in s for _, s in rows) else 3
        elif args.command == "image":
            print(cluster.project_image().ref)
        elif args.command == "standins":
            images = cluster.standin_images(load=not args.build_only)
            for ref, image in images.items():
                print(f"{ref} <- {image.ref}")
        else:
            cluster.builder.ensure()
    except (RehearsalError, BuildError, ImageError) as exc:
        print(f"rehearsal: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
