"""Name the nodes whose kubelet does not hold an image (scripts/deploy_edge_ca4.sh).

Usage: kubectl get nodes -o json | python3 nodes_lacking_image.py IMAGE
Reads the node list (JSON) on stdin and prints, one a line, the name of every node whose
status.images does not list IMAGE (a pod of such a node ends in ErrImageNeverPull); nothing
when every node has it.
Exit codes: 0 = list printed (maybe empty), 1 = stdin is not a node list, 2 = bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def lacking(nodes: list[dict[str, Any]], image: str) -> list[str]:
    """The names of the nodes that do not list ``image`` among their images."""
    names = []
    for node in nodes:
        held = {n for i in node.get("status", {}).get("images", []) for n in i.get("names", [])}
        if image not in held:
            names.append(node["metadata"]["name"])
    return names


def main(argv: list[str]) -> int:
    """Read the node list on stdin, print the nodes that lack the image."""
    parser = argparse.ArgumentParser(
        prog="nodes_lacking_image.py",
        description="Read `kubectl get nodes -o json` on stdin; print the name of each node "
        "that does not hold IMAGE.",
    )
    parser.add_argument(
        "image", metavar="IMAGE", help="the image reference, e.g. localhost/ca4-services:git-0123456789ab"
    )
    args = parser.parse_args(argv[1:])
    try:
        doc = json.load(sys.stdin)
    except ValueError as exc:
        print(f"stdin is not JSON (want the output of 'kubectl get nodes -o json'): {exc}", file=sys.stderr)
        return 1
    items = doc.get("items") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        print("stdin holds no node list 'items' (want 'kubectl get nodes -o json')", file=sys.stderr)
        return 1
    try:
        names = lacking(items, args.image)
    except (KeyError, TypeError, AttributeError) as exc:
        print(
            f"a node of the list on stdin has no metadata.name or malformed images: {exc!r}", file=sys.stderr
        )
        return 1
    for name in names:
        print(name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
