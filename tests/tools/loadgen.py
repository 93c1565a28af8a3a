"""Load generator for the Processor API: its own process, loopback only, bounded in count and time.

Sends ``--events`` real H200 snapshots (the capture's last load snapshot, each with its
own event id, timestamp and sequence number) in requests of ``--batch`` events, with
``--concurrency`` requests in flight, paced at ``--rate`` events per second (0: as fast as
the API answers). It never retries: every request's outcome is recorded as it happened,
one JSON line per request in ``--out``, so a reliability test can account for every id
(sent, acknowledged, refused) and a benchmark can compute latencies. The summary is
printed as one JSON object on stdout.

    python -m tests.tools.loadgen --url http://127.0.0.1:8080 --token-file .ca4-local/api-token \\
        --events 5000 --batch 10 --concurrency 4 --rate 1000 --run chaos-1 --out /tmp/results.jsonl
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import math
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ca4_events.ids import uuid7
from tests.tools import http1

TEMPLATE = Path(__file__).resolve().parents[1] / "fixtures" / "gpu" / "h200" / "nvml-series.json"
KEYS = 8  # producer sessions per run: spreads the events over the topic's partitions


def template_event(run: str) -> dict[str, Any]:
    """The H200 load snapshot as an event body, tagged with the run id."""
    from ca4_events.schema import Source  # noqa: PLC0415 - keeps --help fast
    from ca4_producer.replay import events_from_nvml_series  # noqa: PLC0415

    *_, event = events_from_nvml_series(
        TEMPLATE, Source(provider="onprem", host="loadgen", tags={"run": run})
    )
    return dict(json.loads(event.model_dump_json(exclude_none=True)))


def make_events(
    run: str, count: int, start: int = 0, base: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Event bodies ``start`` .. ``start + count - 1`` of a run, as the generator sends them.

    Each has its own event id and timestamp, ``workload = {"run", "seq"}`` (``seq`` is unique
    within the run, so one event stored under two ids can be told apart), and one of
    ``KEYS`` producer sessions of the run. ``base``: the run's ``template_event`` (made once
    by a caller that builds many batches).
    """
    base = template_event(run) if base is None else base
    events = []
    for seq in range(start, start + count):
        event = dict(base)
        event["event_id"] = str(uuid7())
        event["collected_at"] = dt.datetime.now(dt.UTC).isoformat()
        event["source"] = {**base["source"], "session_id": f"{run}-{seq % KEYS}"}
        event["workload"] = {"run": run, "seq": seq}
        events.append(event)
    return events


def argv(
    url: str,
    token: str,
    *,
    events: int,
    batch: int,
    concurrency: int,
    rate: float = 0.0,
    out: Path | str = "",
    run: str | None = None,
    max_seconds: float = 300.0,
    first_seq: int = 0,
    start_at: float = 0.0,
) -> list[str]:
    """The command line that runs the generator in its own process (this interpreter)."""
    return [
        sys.executable, "-m", "tests.tools.loadgen", "--url", url, f"--token={token}",
        "--events", str(events), "--batch", str(batch), "--concurrency", str(concurrency),
        "--rate", str(rate), "--out", str(out), "--max-seconds", str(max_seconds),
        *(["--run", run] if run else []),
        *(["--first-seq", str(first_seq)] if first_seq else []),
        *(["--start-at", repr(start_at)] if start_at else []),
    ]  # fmt: skip


def percentile(ordered: list[float], q: float) -> float | None:
    """The nearest-rank ``q`` quantile (0 < q <= 1) of sorted values; None when there are none."""
    if not ordered:
        return None
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


class Pacer:
    """Releases event ``i`` no earlier than ``start + i / rate``."""

    def __init__(self, rate: float) -> None:
        self._rate = rate
        self._start = time.monotonic()

    async def wait(self, i: int) -> None:
        if self._rate > 0:
            delay = self._start + i / self._rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Send everything; return the summary."""
    token = args.token or Path(args.token_file).read_text().strip()
    base = template_event(args.run)
    out = open(args.out, "w") if args.out else None  # noqa: SIM115 - closed below, after the run
    deadline = time.monotonic() + args.max_seconds
    pacer = Pacer(args.rate)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    # requests are serialized before the clock starts: the generator shares the machine with the
    # API and must not spend the measured time building JSON
    queue: asyncio.Queue[tuple[int, list[str], bytes]] = asyncio.Queue()
    for start in range(0, args.events, args.batch):
        batch = make_events(args.run, min(args.batch, args.events - start), args.first_seq + start, base)
        body = batch[0] if args.batch == 1 else {"events": batch}
        request = http1.post_request(args.url, "/metadata", headers, json.dumps(body).encode())
        queue.put_nowait((start, [e["event_id"] for e in batch], request))
    if args.start_at:
        # a soak chains generators: this one starts its clock when the previous one ends
        await asyncio.sleep(min(max(0.0, args.start_at - time.time()), 600.0))
        pacer = Pacer(args.rate)
        deadline = time.monotonic() + args.max_seconds
    statuses: dict[str, int] = {}
    sent_events = acked = refused = 0
    latencies: list[float] = []
    started = time.monotonic()
    cpu_started = time.process_time()  # the generator's own cost, reported beside the API's

    async def one(conn: http1.Connection, first: int, ids: list[str], request: bytes) -> None:
        nonlocal sent_events, acked, refused
        await pacer.wait(first)
        sent_events += len(ids)
        sent = time.monotonic()
        line: dict[str, Any] = {"ids": ids, "t_sent": round(sent - started, 6)}
        try:
            resp = await conn.send(request)
        except http1.HttpError as exc:
            line |= {"status": None, "error": str(exc)}
        else:
            line |= {"status": resp.status, "retry_after": resp.headers.get("retry-after")}
            if resp.status == 202:
                line["acked"] = ids
            elif resp.status == 207:
                line["acked"] = [
                    r["event_id"] for r in json.loads(resp.body)["results"] if r["status"] == 202
                ]
        done = time.monotonic()
        line["t_done"] = round(done - started, 6)
        line["wall_done"] = time.time()  # end-to-end latency is measured against this
        latencies.append(done - sent)
        key = str(line["status"])
        statuses[key] = statuses.get(key, 0) + 1
        acked += len(line.get("acked", []))
        refused += len(ids) - len(line.get("acked", []))
        if out:
            out.write(json.dumps(line) + "\n")
            out.flush()  # a latency prober tails this file while the run goes on

    async def worker() -> None:
        conn = http1.Connection(args.url, args.timeout)
        try:
            while not queue.empty() and time.monotonic() < deadline:
                first, ids, request = queue.get_nowait()
                await one(conn, first, ids, request)
        finally:
            await conn.close()

    await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    if out:
        out.close()
    elapsed = time.monotonic() - started
    cpu_seconds = time.process_time() - cpu_started
    latencies.sort()
    return {
        "run": args.run,
        "events": args.events,
        "sent": sent_events,
        "acknowledged": acked,
        "refused": refused,
        "statuses": statuses,
        "seconds": round(elapsed, 3),
        "cpu_seconds": round(cpu_seconds, 3),
        "events_per_second": round(acked / elapsed, 1) if elapsed else 0.0,
        "latency_ms_p50": _ms(percentile(latencies, 0.5)),
        # a p99 of fewer than 100 requests would only be their maximum
        "latency_ms_p99": _ms(percentile(latencies, 0.99)) if len(latencies) >= 100 else None,
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command line."""
    p = argparse.ArgumentParser(
        prog="python -m tests.tools.loadgen",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--url", required=True, help="API base URL (loopback)")
    p.add_argument("--token", default="", help="bearer token (or --token-file)")
    p.add_argument("--token-file", default=".ca4-local/api-token")
    p.add_argument("--events", type=int, default=1000)
    p.add_argument("--batch", type=int, default=1, help="events per request (1: single-event requests)")
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--rate", type=float, default=0.0, help="events per second; 0 = unpaced")
    p.add_argument(
        "--run", default=f"load-{uuid.uuid4().hex[:8]}", help="tag source.tags.run and the sessions"
    )
    p.add_argument("--out", default="", help="JSON lines, one per request")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    p.add_argument("--max-seconds", type=float, default=600.0, help="stop sending after this long")
    p.add_argument("--first-seq", type=int, default=0, help="workload.seq of the first event (chained runs)")
    p.add_argument(
        "--start-at", type=float, default=0.0, help="Unix time to start sending at (at most 600 s away)"
    )
    args = p.parse_args(argv)
    host = urlsplit(args.url).hostname or ""
    if host not in ("127.0.0.1", "localhost", "::1") and not host.startswith("127."):
        p.error(f"--url must be a loopback address, not {host}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    summary = asyncio.run(run(parse_args(argv)))
    json.dump(summary, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
