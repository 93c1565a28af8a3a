"""Fault-injection harness: streams real snapshots, breaks things, and accounts for every event.

Each scenario yields one row of figures, measured the way a user would ask:

- sent: events the load generator put on the wire;
- acknowledged: events the API answered 202 for (it promises they are in Kafka);
- stored: acknowledged events found in ``gpu_metadata`` once the pipeline settled;
- duplicates: extra copies, in the database (two documents for one event id) and in the
  archive (one event in two enriched objects);
- lost: acknowledged but not stored. The promise is lost = 0 and duplicates = 0;
- dlq: records of the run in the dead-letter topic (only the poison scenario has any).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from ca4_events import names
from ca4_events.ids import uuid7
from local_stack.config import BUCKET
from tests.integration.support import Stack
from tests.tools.loadgen import template_event

SETTLE_TIMEOUT_S = 180.0


@dataclass(frozen=True)
class Scale:
    """How hard the scenarios push: ``smoke`` for make test, ``full`` for nox -s chaos."""

    name: str
    events: int
    rate: float
    kills: int
    outage_s: float
    poison: int
    fuzz_examples: int

    @classmethod
    def from_env(cls) -> Scale:
        """CA4_RELIABILITY_SCALE=smoke (default) or full."""
        if os.environ.get("CA4_RELIABILITY_SCALE", "smoke") == "full":
            return cls(
                "full", events=5000, rate=400.0, kills=3, outage_s=10.0, poison=100, fuzz_examples=2000
            )
        return cls("smoke", events=1200, rate=300.0, kills=1, outage_s=5.0, poison=20, fuzz_examples=500)


@dataclass
class Row:
    """The figures of one scenario."""

    scenario: str
    sent: int = 0
    acknowledged: int = 0
    stored: int = 0
    duplicates: int = 0
    lost: int = 0
    dlq: int = 0
    seconds: float = 0.0
    checks: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """For the JSON report."""
        return asdict(self)


@dataclass
class StreamResult:
    """What the load generator (or a test posting by itself) did."""

    summary: dict[str, Any]
    acked: list[str]
    lines: list[dict[str, Any]]

    @classmethod
    def from_lines(cls, lines: list[dict[str, Any]]) -> StreamResult:
        """From per-request lines shaped like the load generator's."""
        acked = [i for line in lines for i in line.get("acked", [])]
        sent = sum(len(line["ids"]) for line in lines)
        statuses = Counter(str(line["status"]) for line in lines)
        return cls({"sent": sent, "refused": sent - len(acked), "statuses": dict(statuses)}, acked, lines)


class Stream:
    """The load generator running in its own process."""

    def __init__(
        self,
        stack: Stack,
        run: str,
        *,
        events: int,
        rate: float,
        out: Path,
        batch: int = 10,
        concurrency: int = 4,
    ) -> None:
        self._out = out
        self._proc = subprocess.Popen(
            [
                sys.executable, "-m", "tests.tools.loadgen",
                "--url", stack.cfg.api_url, f"--token={stack.token}",
                "--events", str(events), "--batch", str(batch), "--concurrency", str(concurrency),
                "--rate", str(rate), "--run", run, "--out", str(out), "--max-seconds", "300",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip

    def wait(self, timeout: float = 400.0) -> StreamResult:
        """Wait for the generator to finish; its per-request lines and summary."""
        stdout, stderr = self._proc.communicate(timeout=timeout)
        assert self._proc.returncode == 0, f"load generator failed: {stderr[-2000:]}"
        lines = [json.loads(line) for line in self._out.read_text().splitlines()]
        acked = [i for line in lines for i in line.get("acked", [])]
        return StreamResult(json.loads(stdout.strip().splitlines()[-1]), acked, lines)


class Reliability:
    """Measures scenarios against the session's local stack."""

    def __init__(self, stack: Stack, scale: Scale, workdir: Path) -> None:
        self.stack = stack
        self.scale = scale
        self.workdir = workdir
        self.rows: list[Row] = []

    def events(self, run: str, count: int) -> list[dict[str, Any]]:
        """Event bodies tagged with the run, as the load generator makes them."""
        base = template_event(run)
        out = []
        for seq in range(count):
            event = dict(base, event_id=str(uuid7()), collected_at=dt.datetime.now(dt.UTC).isoformat())
            event["source"] = {**base["source"], "session_id": f"{run}-{seq % 8}"}
            out.append(event)
        return out

    def stream(
        self, run: str, events: int | None = None, rate: float | None = None, concurrency: int = 4
    ) -> Stream:
        """Start streaming ``events`` snapshots tagged with ``run``."""
        return Stream(
            self.stack,
            run,
            events=events or self.scale.events,
            rate=self.scale.rate if rate is None else rate,
            out=self.workdir / f"{run}-{uuid.uuid4().hex[:4]}.jsonl",
            concurrency=concurrency,
        )

    # --- observations -------------------------------------------------------------------

    def committed(self) -> dict[int, int]:
        """The worker group's committed offset per partition."""
        admin = KafkaAdminClient(bootstrap_servers=self.stack.cfg.kafka_bootstrap, request_timeout_ms=10_000)
        try:
            offsets = admin.list_group_offsets(names.CONSUMER_GROUP).get(names.CONSUMER_GROUP, {})
        finally:
            admin.close()
        return {tp.partition: int(meta.offset) for tp, meta in offsets.items() if tp.topic == names.TOPIC}

    def worker_ready(self) -> bool:
        """GET /readyz of the worker."""
        try:
            with urllib.request.urlopen(f"{self.stack.cfg.worker_url}/readyz", timeout=2):  # noqa: S310 - loopback
                return True
        except OSError:
            return False

    def stored_ids(self, run: str) -> Counter[str]:
        """Event ids of the run in gpu_metadata, with how many documents each has."""
        docs = self.stack.db[names.COLLECTION_EVENTS].find({"source.tags.run": run}, {"_id": 1})
        return Counter(doc["_id"] for doc in docs)

    def archived_ids(self, run: str) -> Counter[str]:
        """Event ids of the run in enriched archive objects, with how many objects hold each."""
        s3 = self.stack.s3()
        counts: Counter[str] = Counter()
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="enriched/"):
            for obj in page.get("Contents", []):
                body = gzip.decompress(s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read())
                for line in body.splitlines():
                    doc = json.loads(line)
                    if doc.get("source", {}).get("tags", {}).get("run") == run:
                        counts[doc["_id"]] += 1
        return counts

    def dlq_records(self, run: str) -> list[Any]:
        """Dead-lettered records whose key or value belongs to the run."""
        consumer = KafkaConsumer(bootstrap_servers=self.stack.cfg.kafka_bootstrap, enable_auto_commit=False)
        try:
            tp = TopicPartition(names.DLQ_TOPIC, 0)
            consumer.assign([tp])
            end = consumer.end_offsets([tp])[tp]
            consumer.seek_to_beginning(tp)
            found, position, deadline = [], 0, time.monotonic() + 60
            while position < end and time.monotonic() < deadline:
                for r in consumer.poll(timeout_ms=500).get(tp, []):
                    position = r.offset + 1
                    if (r.key or b"").startswith(run.encode()) or run.encode() in (r.value or b""):
                        found.append(r)
            return found
        finally:
            consumer.close()

    # --- the row ------------------------------------------------------------------------

    def settle(self, run: str, acked: list[str], archive: bool = True) -> tuple[Counter[str], Counter[str]]:
        """Wait (bounded) until every acknowledged event is stored, and archived."""
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        wanted = set(acked)
        stored: Counter[str] = Counter()
        while time.monotonic() < deadline:
            stored = self.stored_ids(run)
            if wanted <= set(stored):
                break
            time.sleep(0.5)
        archived: Counter[str] = Counter()
        while archive and time.monotonic() < deadline:
            archived = self.archived_ids(run)
            if set(stored) <= set(archived):
                break
            time.sleep(1.0)
        return stored, archived

    def row(self, scenario: str, run: str, result: StreamResult, started: float, **checks: Any) -> Row:
        """Account for the run and record the row."""
        stored, archived = self.settle(run, result.acked)
        acked = set(result.acked)
        row = Row(
            scenario=scenario,
            sent=int(result.summary["sent"]),
            acknowledged=len(acked),
            stored=len(acked & set(stored)),
            duplicates=sum(n - 1 for n in stored.values()) + sum(n - 1 for n in archived.values()),
            lost=len(acked - set(stored)),
            dlq=len(self.dlq_records(run)),
            seconds=round(time.monotonic() - started, 1),
            checks={
                "refused_by_api": int(result.summary["refused"]),
                "statuses": result.summary["statuses"],
                "stored_not_archived": len(set(stored) - set(archived)),
                **checks,
            },
        )
        self.rows.append(row)
        return row

    def write_report(self, directory: Path) -> None:
        """reports/reliability.json and a readable table."""
        directory.mkdir(parents=True, exist_ok=True)
        payload = {
            "scale": asdict(self.scale),
            "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
            "rows": [r.as_dict() for r in self.rows],
        }
        (directory / "reliability.json").write_text(json.dumps(payload, indent=2) + "\n")
        lines = [
            f"# CA4 reliability ({self.scale.name}: {self.scale.events} events per stream, "
            f"{self.scale.kills} worker kills, {self.scale.outage_s:.0f} s outages, "
            f"{self.scale.poison} poison records)",
            "",
            "| scenario | sent | acknowledged | stored | duplicates | lost | DLQ | seconds | controls |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
        ]
        for r in self.rows:
            other = ", ".join(f"{k}={v}" for k, v in r.checks.items() if k not in ("statuses",))
            lines.append(
                f"| {r.scenario} | {r.sent} | {r.acknowledged} | {r.stored} | {r.duplicates} | {r.lost} "
                f"| {r.dlq} | {r.seconds} | {other} |"
            )
        (directory / "reliability.md").write_text("\n".join(lines) + "\n")


@contextlib.contextmanager
def sampled(probe: Any, every_s: float = 0.25) -> Any:
    """Sample ``probe()`` in a thread while the block runs; yields the list of samples."""
    import threading  # noqa: PLC0415

    samples: list[Any] = []
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            with contextlib.suppress(Exception):
                samples.append(probe())
            stop.wait(every_s)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        stop.set()
        thread.join(timeout=5)
