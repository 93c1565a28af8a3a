"""Fault-injection harness: streams real snapshots, breaks things, and accounts for every event.

Each scenario yields one row of figures, measured the way a user would ask:

- sent: events the load generator put on the wire;
- acknowledged: events the API answered 202 for (it promises they are in Kafka);
- stored: acknowledged events found in ``gpu_metadata`` once the pipeline settled;
- duplicates: extra copies of one logical event. In the database, one event stored under
  two ids (counted by ``workload.seq``, unique within a run); a second document for one
  event id cannot exist (``_id`` is the event id, and the database refuses the insert),
  so that is not counted. In the archive, one event in two enriched objects;
- lost: acknowledged but not stored. The promise is lost = 0 and duplicates = 0;
- dlq: records of the run in the dead-letter topic (only the poison scenario has any).

Among the controls, ``replayed_absorbed`` is what the ``_id`` key absorbed: records the
worker delivered again (after a kill, say) and the database refused as already stored,
summed from the worker's ``batch delivered`` log lines since the run began. It shows
whether a scenario exercised replay at all. ``pipeline_quiet`` says the worker had
committed every record of the topic when the row was taken.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kafka.errors import KafkaError

from ca4_events import names
from local_stack import pipeline, s3
from local_stack.config import StackConfig, free_port
from local_stack.procs import Process, http_ok, python
from tests.integration.support import (
    Stack,
    by_id,
    committed,
    drained,
    eventually,
    log_lines,
    log_offset,
    reconfigured,
    topic_records,
)
from tests.tools import loadgen
from tests.tools.tcpproxy import TcpProxy

SETTLE_TIMEOUT_S = 180.0
FLOWING_TIMEOUT_S = 60.0
ARCHIVE_CLOCK_SLACK = dt.timedelta(seconds=5)  # S3's LastModified has one-second resolution


# each Scale field: (full, smoke)
SCALES: dict[str, tuple[Any, Any]] = {
    "events": (5000, 1200),
    "rate": (400.0, 300.0),
    "kills": (3, 1),
    "outage_s": (10.0, 5.0),
    "poison": (100, 20),
    "fuzz_examples": (2000, 500),
    "stored_documents": (100_000, 20_000),
}


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
    stored_documents: int  # how full the events collection is when by-id lookups are timed

    @classmethod
    def from_env(cls) -> Scale:
        """CA4_RELIABILITY_SCALE=smoke (default) or full."""
        full = os.environ.get("CA4_RELIABILITY_SCALE", "smoke") == "full"
        return cls("full" if full else "smoke", **{k: v[0 if full else 1] for k, v in SCALES.items()})


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
    dead_letters: list[Any] = field(default_factory=list, repr=False)  # the run's DLQ records

    def as_dict(self) -> dict[str, Any]:
        """For the JSON report."""
        return {k: v for k, v in asdict(self).items() if k != "dead_letters"}


@dataclass(frozen=True)
class Run:
    """One scenario's run: its tag, and where the clocks and the worker's log stood when it began."""

    id: str
    started: float  # time.monotonic()
    wall: dt.datetime
    worker_log: int  # byte offset

    def tagged(self, doc: dict[str, Any]) -> bool:
        """The document belongs to this run (``source.tags.run``)."""
        return bool(doc.get("source", {}).get("tags", {}).get("run") == self.id)


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

    @property
    def sent_ids(self) -> set[str]:
        """Every event id put on the wire."""
        return {i for line in self.lines for i in line["ids"]}


class Stream:
    """The load generator running in its own process."""

    def __init__(self, command: list[str], out: Path) -> None:
        self._out = out
        self._proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def flowing(self, timeout: float = FLOWING_TIMEOUT_S) -> float:
        """Block until the API has acknowledged the stream's first events; seconds it took.

        A fault injected before the generator's first request (its interpreter can take
        seconds to start on a loaded machine) would prove nothing: every answer would be
        a refusal, or the worker would have nothing to fail on.
        """
        started = time.monotonic()
        deadline = started + timeout
        while time.monotonic() < deadline:
            text = self._out.read_text() if self._out.exists() else ""
            complete = text[: text.rfind("\n") + 1].splitlines()
            if any(json.loads(line).get("acked") for line in complete):
                return time.monotonic() - started
            if self._proc.poll() is not None:
                _, stderr = self._proc.communicate()
                raise AssertionError(
                    f"the load generator exited ({self._proc.returncode}) before any event was "
                    f"acknowledged: {stderr[-2000:]}"
                )
            time.sleep(0.05)
        raise AssertionError(f"no event of the stream was acknowledged within {timeout:.0f} s")

    def wait(self, timeout: float = 400.0) -> StreamResult:
        """Wait for the generator to finish; its per-request lines, with its own summary."""
        stdout, stderr = self._proc.communicate(timeout=timeout)
        assert self._proc.returncode == 0, f"load generator failed: {stderr[-2000:]}"
        result = StreamResult.from_lines([json.loads(line) for line in self._out.read_text().splitlines()])
        result.summary |= json.loads(stdout.strip().splitlines()[-1])
        return result


@dataclass
class Settled:
    """What the pipeline holds of a run once it is quiet."""

    stored: set[str]  # acknowledged ids found in gpu_metadata
    quiet: bool  # the worker had committed every record of the topic
    archived: dict[str, set[str]]  # enriched key -> the run's ids it holds
    documents: list[dict[str, Any]]  # every document of the run: _id and workload


class Reliability:
    """Measures scenarios against the session's local stack."""

    def __init__(self, stack: Stack, scale: Scale, workdir: Path) -> None:
        self.stack = stack
        self.scale = scale
        self.workdir = workdir
        self.rows: list[Row] = []

    def begin(self, name: str) -> Run:
        """A new run tagged ``<name>-<random>``; starts its clocks."""
        return Run(
            f"{name}-{uuid.uuid4().hex[:6]}",
            time.monotonic(),
            dt.datetime.now(dt.UTC),
            log_offset(self.stack.cfg, "worker"),
        )

    def under_load(
        self, name: str, share: float = 0.5, concurrency: int = 4, lead_s: float = 1.0
    ) -> tuple[Run, Stream]:
        """A new run streaming at ``share`` of the scale's rate, ``lead_s`` into its stream: where a
        fault scenario injects its fault (the pipeline is carrying events by then)."""
        run = self.begin(name)
        stream = self.stream(run, rate=self.scale.rate * share, concurrency=concurrency)
        time.sleep(lead_s)
        return run, stream

    def events(self, run: Run, count: int, start: int = 0) -> list[dict[str, Any]]:
        """Event bodies ``start`` .. ``start + count - 1`` of the run, as the load generator makes them."""
        return loadgen.make_events(run.id, count, start)

    def stream(
        self, run: Run, events: int | None = None, rate: float | None = None, concurrency: int = 4
    ) -> Stream:
        """Start streaming ``events`` snapshots tagged with the run; returns once events are acknowledged."""
        out = self.workdir / f"{run.id}-{uuid.uuid4().hex[:4]}.jsonl"
        command = loadgen.argv(
            self.stack.cfg.api_url,
            self.stack.token,
            events=events or self.scale.events,
            batch=10,
            concurrency=concurrency,
            rate=self.scale.rate if rate is None else rate,
            out=out,
            run=run.id,
        )
        stream = Stream(command, out)
        stream.flowing()
        return stream

    # --- observations -------------------------------------------------------------------

    def committed(self) -> dict[int, int]:
        """The worker group's committed offset per partition."""
        return committed(self.stack.cfg.kafka_bootstrap)

    def worker_ready(self) -> bool:
        """GET /readyz of the worker."""
        return http_ok(f"{self.stack.cfg.worker_url}/readyz", timeout=2)

    def dlq_records(self, run_id: str) -> list[Any]:
        """Dead-lettered records whose key or value belongs to the run (every partition)."""
        tag = run_id.encode()
        return topic_records(
            self.stack.cfg.kafka_bootstrap,
            names.DLQ_TOPIC,
            lambda r: (r.key or b"").startswith(tag) or tag in (r.value or b""),
        )

    def _drained(self) -> bool:
        try:
            return drained(self.stack.cfg.kafka_bootstrap)
        except KafkaError:  # the group coordinator may still be loading after a broker restart
            return False

    def replayed_absorbed(self, run: Run) -> int:
        """Records delivered again and refused as already stored, since the run began (worker log)."""
        lines = log_lines(self.stack.cfg, "batch delivered", run.worker_log, "worker")
        return sum(int(line.get("duplicates", 0)) for line in lines)

    # --- the row ------------------------------------------------------------------------

    def settle(self, run: Run, acked: list[str], archive: bool = True) -> Settled:
        """Wait (bounded) until the pipeline is quiet, then read what it holds of the run.

        1. every acknowledged id is in gpu_metadata (polled one ``_id`` at a time: ``support.by_id``);
        2. the worker group has committed every record of the topic: no replay is still
           running that could add a late duplicate;
        3. two consecutive reads of the archive agree (an object being superseded is
           briefly listed beside its successor) and hold every stored event.

        Then one scan by the run's tag (not indexed: done once, not polled) finds every
        document of the run, acknowledged or not.
        """
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        events = self.stack.db[names.COLLECTION_EVENTS]
        stored: set[str] = set()
        missing = sorted(set(acked))
        while missing and time.monotonic() < deadline:
            stored |= set(by_id(events, missing, {"_id": 1}, stop_at_missing=True))
            missing = [i for i in missing if i not in stored]
            if missing:
                time.sleep(0.5)
        quiet = self._drained()
        while not quiet and time.monotonic() < deadline:
            time.sleep(0.5)
            quiet = self._drained()
        archived: dict[str, set[str]] = {}
        if archive:
            client, seen, previous = self.stack.s3(), {}, None
            since = run.wall - ARCHIVE_CLOCK_SLACK
            while time.monotonic() < deadline:
                archived = s3.archived_ids(client, seen, keep=run.tagged, since=since)
                if archived == previous and stored <= set().union(*archived.values()):
                    break
                previous = archived
                time.sleep(1.0)
        documents = list(events.find({"source.tags.run": run.id}, {"_id": 1, "workload": 1}))
        return Settled(stored, quiet, archived, documents)

    def row(self, scenario: str, run: Run, result: StreamResult, **checks: Any) -> Row:
        """Account for the run and record the row."""
        acked = set(result.acked)
        settled = self.settle(run, result.acked)
        in_db = {doc["_id"] for doc in settled.documents}
        seqs = (doc.get("workload", {}).get("seq") for doc in settled.documents)
        per_seq = Counter(seq for seq in seqs if seq is not None)
        per_id_archived = Counter(i for ids in settled.archived.values() for i in ids)
        dead = self.dlq_records(run.id)
        row = Row(
            scenario=scenario,
            sent=int(result.summary["sent"]),
            acknowledged=len(acked),
            stored=len(acked & settled.stored),
            duplicates=sum(n - 1 for n in per_seq.values()) + sum(n - 1 for n in per_id_archived.values()),
            lost=len(acked - settled.stored),
            dlq=len(dead),
            seconds=round(time.monotonic() - run.started, 1),
            checks={
                "refused_by_api": int(result.summary["refused"]),
                "statuses": result.summary["statuses"],
                "stored_not_archived": len(settled.stored - set(per_id_archived)),
                # refused (503, timeout) and yet stored: a refusal that was really an ack
                "stored_not_acked": len((in_db & result.sent_ids) - acked),
                "replayed_absorbed": self.replayed_absorbed(run),
                "pipeline_quiet": settled.quiet,
                **checks,
            },
            dead_letters=dead,
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


def moved(offsets: list[dict[int, int]]) -> list[int]:
    """Partitions whose committed offset differs between the first and the last sample.

    A partition missing from one sample (its first commit came during the window) counts.
    """
    if not offsets:
        return []
    first, last = offsets[0], offsets[-1]
    return sorted(p for p in first.keys() | last.keys() if first.get(p) != last.get(p))


# the servers a test can put a proxy in front of: their port, and the worker's variable for them
PROXIED: dict[str, tuple[Callable[[StackConfig], int], str, str]] = {
    "s3": (lambda cfg: cfg.s3_port, "S3_ENDPOINT_URL", "http://127.0.0.1:{port}"),
    "database": (lambda cfg: cfg.mongo_port, "MONGO_URI", "mongodb://127.0.0.1:{port}/"),
}


@contextlib.contextmanager
def worker_through_proxy(stack: Stack, server: str) -> Iterator[TcpProxy]:
    """The worker restarted to reach one server (a key of ``PROXIED``) through a proxy that a
    test can switch off, slow down or cut; healed before the worker goes back to the
    contract, so it drains and stops normally."""
    port_of, variable, url = PROXIED[server]
    proxy = TcpProxy(port_of(stack.cfg))
    proxy.up()
    try:
        with reconfigured(stack.cfg, "worker", {variable: url.format(port=proxy.port)}):
            try:
                yield proxy
            finally:
                proxy.heal()
    finally:
        proxy.down()


@contextlib.contextmanager
def sampled(probe: Callable[[], Any], every_s: float = 0.25) -> Iterator[list[Any]]:
    """Sample ``probe()`` in a thread while the block runs; yields the list of samples."""
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


@contextlib.contextmanager
def second_worker(stack: Stack) -> Iterator[Process]:
    """Another Metadata Worker in the group, as the Deployment's second replica: it joins
    (the first worker's partitions are revoked and shared out), the block runs, and it
    leaves with SIGTERM (revoked and shared out again)."""
    cfg = stack.cfg
    port = free_port()
    proc = Process("metadata-worker-2", cfg.run_dir, cfg.logs_dir)
    proc.start(
        [python(), "-m", "metadata_worker"],
        pipeline.contract_env({**cfg.worker_env(), "WORKER_HTTP_PORT": str(port)}),
    )
    try:
        eventually("the second worker ready", lambda: http_ok(f"http://127.0.0.1:{port}/readyz"), 60)
        yield proc
    finally:
        proc.stop(timeout=30)
