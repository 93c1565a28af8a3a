"""Report which K3s nodes are Ready with the wanted version (scripts/bootstrap_k3s_ca4.sh).

Usage: kubectl get --raw /api/v1/nodes | python3 nodes_ready.py VERSION IP [IP...]
Reads the node list (JSON) on stdin and prints one line per IP: the address, the name of the
node registered with that InternalIP, its kubelet version and whether it is Ready; then a last
line, ALL-READY when every IP is a Ready node of VERSION, else WAITING. Input that is not a
node list (the API not answering yet) counts as no node registered: the caller polls again.
Exit codes: 0 = report printed (ALL-READY or WAITING), 2 = bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

NOT_REGISTERED = ("(not registered)", "-", False)


def read_nodes(stream: TextIO) -> list[dict[str, Any]]:
    """The items of a NodeList; none when the input is not one."""
    try:
        doc = json.load(stream)
    except ValueError:
        return []
    items = doc.get("items", []) if isinstance(doc, dict) else []
    return [n for n in items if isinstance(n, dict)] if isinstance(items, list) else []


def node_states(nodes: list[dict[str, Any]], ips: list[str]) -> dict[str, tuple[str, str, bool]]:
    """IP -> (node name, kubelet version, Ready) for each IP a node has as its InternalIP."""
    seen: dict[str, tuple[str, str, bool]] = {}
    for node in nodes:
        status = node.get("status", {})
        addrs = {a.get("address") for a in status.get("addresses", []) if a.get("type") == "InternalIP"}
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions", [])
        )
        version = status.get("nodeInfo", {}).get("kubeletVersion", "?")
        for ip in ips:
            if ip in addrs:
                seen[ip] = (node.get("metadata", {}).get("name", "?"), version, ready)
    return seen


def report(nodes: list[dict[str, Any]], want_version: str, ips: list[str]) -> list[str]:
    """The lines to print: one per IP, then ALL-READY or WAITING."""
    seen = node_states(nodes, ips)
    lines = []
    ok = True
    for ip in ips:
        name, version, ready = seen.get(ip, NOT_REGISTERED)
        ok = ok and ready and version == want_version
        state = "Ready" if ready else "not ready"
        lines.append(f"   {ip:<16} {name:<28} {version:<16} {state}")
    lines.append("ALL-READY" if ok else "WAITING")
    return lines


def main(argv: list[str]) -> int:
    """Read the node list on stdin, print the report."""
    parser = argparse.ArgumentParser(
        prog="nodes_ready.py",
        description="Read `kubectl get --raw /api/v1/nodes` on stdin; print each IP's node and "
        "state, then ALL-READY (every IP a Ready node of VERSION) or WAITING.",
    )
    parser.add_argument("version", metavar="VERSION", help="the kubelet version wanted, e.g. v1.34.3+k3s3")
    parser.add_argument("ips", metavar="IP", nargs="+", help="the InternalIP of each node expected")
    args = parser.parse_args(argv[1:])
    for line in report(read_nodes(sys.stdin), args.version, args.ips):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
