"""``python -m ca4_producer``: take snapshots, sample and send them, or build the Colab bundle.

python -m ca4_producer snapshot [--replay DIR|FILE] [--repeat N] [--json] [--post]
python -m ca4_producer sample --interval 1 --duration 60 [--replay DIR] [--batch-size 20]
python -m ca4_producer bundle --out dist/

Sending reads EDGE_API_URL and CA4_API_TOKEN, and CA4_CA_BUNDLE (a path or the PEM text of
the API's CA, trusted besides the public roots) when the stack signs its own certificate.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from ca4_producer.bundle import build_bundle
from ca4_producer.client import Ca4Client, Ca4ClientError
from ca4_producer.collector import Collector
from ca4_producer.report import accelerator_table, delivery_lines
from ca4_producer.sampler import BatchSender, SampleStats, sample


def _collector(args: argparse.Namespace) -> Collector:
    return Collector.replay(args.replay) if args.replay else Collector.detect()


def _snapshot(args: argparse.Namespace) -> int:
    with _collector(args) as collector:
        print(collector.describe())
        stats = SampleStats()
        snaps = []
        started = time.monotonic()
        for _ in range(max(1, args.repeat)):
            snap = collector.snapshot(workload={"job": "ca4-producer-cli"})
            snaps.append(snap)
            stats.record(snap)
        stats.elapsed_s = time.monotonic() - started
        last = snaps[-1]
        print(accelerator_table(last.event))
        print("collection cost per snapshot:", json.dumps(stats.summary()))
        if args.json:
            print(last.event.model_dump_json(indent=2, exclude_none=True))
        if args.post:
            with Ca4Client() as client:
                print(delivery_lines([client.post_event(last.event)]))
    return 0


def _sample(args: argparse.Namespace) -> int:
    with (
        _collector(args) as collector,
        Ca4Client() as client,
        BatchSender(client, batch_size=args.batch_size) as sender,
    ):
        print(collector.describe())
        stats = sample(collector, interval_s=args.interval, duration_s=args.duration, sink=sender.add)
    print(delivery_lines(sender.deliveries))
    print("sampling:", json.dumps(stats.summary()))
    return 1 if sender.refused else 0


def _bundle(args: argparse.Namespace) -> int:
    bundle = build_bundle(args.out)
    print(f"{bundle.path}  sha256={bundle.sha256}  files={len(bundle.files)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m ca4_producer",
        description=__doc__.splitlines()[0],
        epilog="Sending reads EDGE_API_URL, CA4_API_TOKEN and, for a stack that signs its own "
        "certificate, CA4_CA_BUNDLE (a path or the PEM text of its CA): the environment, else "
        "Colab secrets of the same names.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    snap = sub.add_parser("snapshot", help="take snapshots, print them and their collection cost")
    snap.add_argument("--replay", help="a capture folder or file instead of this host's devices")
    snap.add_argument(
        "--repeat", type=int, default=1, help="snapshots to take (the cost is measured over all)"
    )
    snap.add_argument("--json", action="store_true", help="print the last event as JSON")
    snap.add_argument("--post", action="store_true", help="send the last snapshot to EDGE_API_URL")
    smp = sub.add_parser("sample", help="sample for a while and send the events in batches")
    smp.add_argument("--replay", help="a capture folder or file instead of this host's devices")
    smp.add_argument("--interval", type=float, default=1.0, help="seconds between snapshots (default 1)")
    smp.add_argument("--duration", type=float, default=10.0, help="seconds to sample for (default 10)")
    smp.add_argument(
        "--batch-size", type=int, default=20, help="events per request, at most 500 (default 20)"
    )
    bnd = sub.add_parser("bundle", help="build the zip a Colab notebook imports the client from")
    bnd.add_argument("--out", type=Path, default=Path("dist"))
    args = parser.parse_args(argv)
    try:
        return {"snapshot": _snapshot, "sample": _sample, "bundle": _bundle}[args.command](args)
    except Ca4ClientError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
