"""The CA4 benchmark: the pipeline measured beside the physical limits of its parts, in one run.

Every ratio compares two figures measured on the same machine within minutes of each other:

- API ingest (batches of 100) / the raw kafka-python producer with the same acks=all and
  the same value bytes: what the API costs on top of publishing;
- API ingest (single events) / an empty FastAPI handler on the same uvicorn settings: what
  CA4's handler costs on top of the framework;
- worker sink / a raw ``insert_many`` of the same documents in the same batch size into
  the same database, into a collection with ``gpu_metadata``'s indexes: what consuming,
  decoding, enriching and committing cost on top of the write;
- end to end: from the API's 202 to the document being readable, at a fixed offered load;
- resident memory of the API and the worker after the load.

Load comes from separate processes (``tests.tools.loadgen``, ``tests.bench.raw_producer``)
on loopback, bounded in count and time.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError
from pymongo import MongoClient

from ca4_events import names
from ca4_events.ids import uuid7
from local_stack import pipeline
from local_stack.config import FERRETDB_VERSION, StackConfig, free_port, kafka_version
from local_stack.procs import http_ok, wait_until
from metadata_worker.transform import KafkaCoords, enrich
from tests.bench import cost_table, scaling
from tests.integration.support import (
    by_id,
    log_lines,
    log_offset,
    metric,
    reconfigured,
    restart,
    stopped,
    wait_drained,
)
from tests.tools import loadgen

BENCH_TOPIC = "ca4-bench-raw"
WORKER_BATCH = 500  # WORKER_BATCH_MAX's default: the raw bulk write uses the same size

TARGETS = {
    "api_batch100_vs_raw_producer": 0.5,
    "worker_vs_raw_bulk_write": 0.7,
    "e2e_p99_ms_at_200_per_s": 500.0,
    "rss_mb_max": 200.0,
}
LOWER_IS_BETTER = frozenset({"e2e_p99_ms_at_200_per_s", "rss_mb_max"})
UNITS = {"e2e_p99_ms_at_200_per_s": " ms", "rss_mb_max": " MB each"}


def met(name: str, value: float | None) -> bool:
    """Whether a measured value meets its target."""
    if value is None:
        return False
    return value <= TARGETS[name] if name in LOWER_IS_BETTER else value >= TARGETS[name]


def wanted(name: str) -> str:
    """A target as the report states it (``>= 0.5``, ``<= 500 ms``)."""
    return f"{'<=' if name in LOWER_IS_BETTER else '>='} {TARGETS[name]:g}{UNITS.get(name, '')}"


@dataclass(frozen=True)
class Scale:
    """How much each measurement sends."""

    name: str
    raw_records: int
    single_events: int
    batch_events: int
    sink_events: int
    e2e_seconds: float
    concurrency: int = 8

    @classmethod
    def named(cls, name: str) -> Scale:
        """``full`` for nox -s bench, ``smoke`` (seconds) for make test."""
        if name == "full":
            return cls(
                "full",
                raw_records=30000,
                single_events=3000,
                batch_events=30000,
                sink_events=20000,
                e2e_seconds=20,
            )
        return cls(
            "smoke", raw_records=2000, single_events=200, batch_events=2000, sink_events=1000, e2e_seconds=3
        )


def _run_json(command: list[str], timeout: float = 600) -> dict[str, Any]:
    out = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(command[1:4])} failed: {out.stderr[-2000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _loadgen(
    cfg: StackConfig,
    url: str,
    out: Path,
    *,
    events: int,
    batch: int,
    concurrency: int,
    rate: float = 0,
    cpus: set[int] | None = None,
) -> dict[str, Any]:
    argv = loadgen.argv(
        url, cfg.api_token(), events=events, batch=batch, concurrency=concurrency, rate=rate, out=out
    )
    pin = ["taskset", "-c", ",".join(map(str, sorted(cpus)))] if cpus else []
    return _run_json([*pin, *argv])


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def _cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time a process and its children (all threads) have used so far."""
    if pid is None:
        return None
    total = 0
    for each in scaling.descendants(pid):
        fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _cpu_during(pid: int | None, measure: Any) -> dict[str, Any]:
    """Run ``measure()`` (a load run's summary) and add the CPU seconds ``pid`` used meanwhile."""
    before = _cpu_seconds(pid)
    summary = dict(measure())
    after = _cpu_seconds(pid)
    summary["server_cpu_seconds"] = None if before is None or after is None else round(after - before, 3)
    return summary


def _rss_mb(pid: int | None) -> dict[str, float | None]:
    """Current (VmRSS) and peak (VmHWM) resident memory of a process, in MB."""
    figures: dict[str, float | None] = {"rss_mb": None, "peak_rss_mb": None}
    if pid is None:
        return figures
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            figures["rss_mb"] = round(int(line.split()[1]) / 1024, 1)
        elif line.startswith("VmHWM:"):
            figures["peak_rss_mb"] = round(int(line.split()[1]) / 1024, 1)
    return figures


class Bench:
    """Runs each measurement against one local stack and collects the figures."""

    def __init__(self, cfg: StackConfig, scale: Scale, workdir: Path) -> None:
        self.cfg = cfg
        self.scale = scale
        self.workdir = workdir
        self.figures: dict[str, Any] = {}
        self.mongo: MongoClient[dict[str, Any]] = MongoClient(cfg.mongo_uri, tz_aware=True)
        self.value_file = workdir / "event.json"
        event = loadgen.template_event("bench") | {"event_id": str(uuid7())}
        # the bytes the API publishes for this event: compact JSON without nulls
        from ca4_events.schema import GpuMetadataEvent  # noqa: PLC0415

        self.value_file.write_bytes(
            GpuMetadataEvent.model_validate(event).model_dump_json(exclude_none=True).encode()
        )

    def close(self) -> None:
        """Release the database client."""
        self.mongo.close()

    def raw_producer(self) -> None:
        """kafka-python alone: the ceiling the API is compared with."""
        admin = KafkaAdminClient(bootstrap_servers=self.cfg.kafka_bootstrap)
        try:
            admin.create_topics([NewTopic(BENCH_TOPIC, self.cfg.kafka_partitions, 1)])
        except TopicAlreadyExistsError:
            pass
        finally:
            admin.close()
        argv = [
            sys.executable, "-m", "tests.bench.raw_producer",
            "--bootstrap", self.cfg.kafka_bootstrap, "--topic", BENCH_TOPIC,
            "--value-file", str(self.value_file), "--records", str(self.scale.raw_records),
        ]  # fmt: skip
        # the API publishes with confluent-kafka by default (KAFKA_CLIENT); kafka-python is measured too
        self.figures["raw_producer"] = _run_json([*argv, "--library", "confluent-kafka"])
        self.figures["raw_producer_kafka_python"] = _run_json([*argv, "--library", "kafka-python"])

    def api_ingest(self) -> None:
        """Single-event requests and batches of 100, unpaced, at fixed concurrency."""
        c = self.scale.concurrency
        self.figures["api_single"] = _loadgen(
            self.cfg,
            self.cfg.api_url,
            self.workdir / "single.jsonl",
            events=self.scale.single_events,
            batch=1,
            concurrency=c,
        )
        batch = _cpu_during(
            pipeline.api_process(self.cfg).pid(),
            lambda: _loadgen(
                self.cfg, self.cfg.api_url, self.workdir / "batch.jsonl",
                events=self.scale.batch_events, batch=100, concurrency=c,
            ),
        )  # fmt: skip
        batch["api_cpu_seconds"] = batch.pop("server_cpu_seconds")
        self.figures["api_batch100"] = batch
        self.figures["api_rss_after_load"] = _rss_mb(pipeline.api_process(self.cfg).pid())

    def api_ingest_kafka_python(self) -> None:
        """The batch-100 load again with the API on kafka-python (KAFKA_CLIENT=kafka-python)."""
        with reconfigured(self.cfg, "api", {"KAFKA_CLIENT": "kafka-python"}):
            self.figures["api_batch100_kafka_python"] = _loadgen(
                self.cfg, self.cfg.api_url, self.workdir / "batch-kafka-python.jsonl",
                events=self.scale.batch_events, batch=100, concurrency=self.scale.concurrency,
            )  # fmt: skip

    def empty_handler(self) -> None:
        """The same loads (single events, batches of 100) against an empty handler on the same
        server settings; its CPU per request is what HTTP and the framework cost."""
        port = free_port()
        proc = subprocess.Popen([sys.executable, "-m", "tests.bench.empty_app", "--port", str(port)])
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until(lambda: http_ok(f"{url}/docs"), 30, "empty handler")
            for name, events, batch in (
                ("empty_single", self.scale.single_events, 1),
                ("empty_batch100", self.scale.batch_events, 100),
            ):
                self.figures[name] = _cpu_during(
                    proc.pid,
                    lambda events=events, batch=batch, name=name: _loadgen(
                        self.cfg, url, self.workdir / f"{name}.jsonl",
                        events=events, batch=batch, concurrency=self.scale.concurrency,
                    ),
                )  # fmt: skip
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)

    def api_workers(self) -> None:
        """Batches of 100 with API_WORKERS 1 and 2, the API pinned apart from the rest (``scaling``)."""
        where = scaling.placements()
        if where is None:
            self.figures["api_workers"] = {"not_measured": "a single CPU: nothing to pin apart"}
            return
        runs: dict[str, Any] = {}
        for workers in scaling.WORKER_COUNTS:
            api_cpus, other_cpus = where[workers]
            with (
                reconfigured(self.cfg, "api", {"API_WORKERS": str(workers)}),
                scaling.pinned_apart(self.cfg, api_cpus, other_cpus),
            ):
                run = _cpu_during(
                    pipeline.api_process(self.cfg).pid(),
                    lambda workers=workers, other_cpus=other_cpus: _loadgen(
                        self.cfg, self.cfg.api_url, self.workdir / f"workers-{workers}.jsonl",
                        events=self.scale.batch_events, batch=100,
                        concurrency=self.scale.concurrency, cpus=other_cpus,
                    ),
                )  # fmt: skip
            runs[str(workers)] = run | {"api_cpus": sorted(api_cpus), "other_cpus": sorted(other_cpus)}
        self.figures["api_workers"] = runs

    def single_linger(self) -> None:
        """Single events at KAFKA_LINGER_MS 0, 1 and 5: the ack wait each request has."""
        runs: dict[str, Any] = {}
        for linger in scaling.LINGERS_MS:
            with reconfigured(self.cfg, "api", {"KAFKA_LINGER_MS": str(linger)}):
                runs[str(linger)] = _loadgen(
                    self.cfg, self.cfg.api_url, self.workdir / f"linger-{linger}.jsonl",
                    events=self.scale.single_events, batch=1, concurrency=self.scale.concurrency,
                )  # fmt: skip
        self.figures["single_linger"] = runs

    def parts(self) -> None:
        """Each part of POST /metadata timed on its own (``tests.bench.costs``), on the bench topic."""
        self.figures["costs"] = _run_json(
            [
                sys.executable,
                "-m",
                "tests.bench.costs",
                "--bootstrap",
                self.cfg.kafka_bootstrap,
                "--topic",
                BENCH_TOPIC,
            ]
        )

    def worker_sink(self) -> None:
        """Drain a pre-filled topic with the worker (archive off), then a raw bulk write of the same docs."""
        n = self.scale.sink_events
        events = loadgen.make_events("bench-sink", n)
        # the load of the earlier steps must be consumed first: the restarted worker's counter
        # then counts these n records and nothing else
        wait_drained(self.cfg.kafka_bootstrap, timeout=600)
        try:
            with stopped(self.cfg, "worker", restart_env={"ARCHIVE_ENABLED": "false"}):
                producer = KafkaProducer(
                    bootstrap_servers=self.cfg.kafka_bootstrap, acks="all", linger_ms=5, batch_size=256 * 1024
                )
                for i, event in enumerate(events):
                    producer.send(names.TOPIC, value=json.dumps(event).encode(), key=b"sink-%d" % (i % 8))
                producer.flush(timeout=120)
                producer.close()
            self.figures["worker_sink"] = self._measure_sink(n)
            self.figures["worker_rss_after_load"] = _rss_mb(pipeline.worker_process(self.cfg).pid())
        finally:
            restart(self.cfg, "worker")  # back to the contract (archive on), whatever happened
        self.figures["raw_bulk_write"] = self._raw_bulk_write(events)

    def _measure_sink(self, n: int) -> dict[str, Any]:
        # the worker's own counter: counting documents in a large FerretDB collection is too
        # slow to poll every 50 ms and would load the database being measured
        stored_total = "ca4_worker_events_stored_total"
        first = last = None
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            stored = float(metric(self.cfg.worker_url, stored_total) or 0)
            now = time.perf_counter()
            if stored > 0 and first is None:
                first = (now, stored)
            if stored >= n:
                last = (now, stored)
                break
            time.sleep(0.05)
        if first is None or last is None:
            raise RuntimeError(
                f"the worker stored {metric(self.cfg.worker_url, stored_total)} of {n} in 600 s"
            )
        worker_eps = (last[1] - first[1]) / (last[0] - first[0]) if last[0] > first[0] else float("nan")
        return {"events": n, "events_per_second": round(worker_eps, 1), "archive": False}

    def _raw_bulk_write(self, events: list[dict[str, Any]]) -> dict[str, Any]:
        """insert_many of the same documents, in the worker's batch size, into a collection like its own."""
        n = len(events)
        now = dt.datetime.now(dt.UTC)
        from ca4_events.schema import GpuMetadataEvent  # noqa: PLC0415

        docs = [
            enrich(
                GpuMetadataEvent.model_validate(e | {"event_id": str(uuid7())}),
                KafkaCoords(names.TOPIC, 0, i, 0, "k"),
                now,
            )
            for i, e in enumerate(events)
        ]
        db = self.mongo[names.DATABASE]
        scratch = db["bench_raw_bulk"]
        scratch.drop()
        # the worker's inserts maintain gpu_metadata's secondary indexes: so must these
        for name, index in db[names.COLLECTION_EVENTS].index_information().items():
            if name != "_id_":
                options = {k: index[k] for k in ("unique", "sparse") if k in index}
                scratch.create_index(list(index["key"]), name=name, **options)
        try:
            started = time.perf_counter()
            for i in range(0, n, WORKER_BATCH):
                scratch.insert_many(docs[i : i + WORKER_BATCH], ordered=False)
            raw_eps = n / (time.perf_counter() - started)
        finally:
            scratch.drop()
        return {"events": n, "batch": WORKER_BATCH, "events_per_second": round(raw_eps, 1)}

    def end_to_end(self, rate: float = 200.0) -> None:
        """202 -> readable, for every event of a paced single-event stream.

        The worker logs "batch delivered" with the event ids right after the database
        acknowledged the insert, so (log time - the client's 202 time) is an upper bound
        of 202 -> readable that costs the database nothing. Polling the database for each
        id instead would load the very database the worker writes to (FerretDB answers
        many small lookups slowly) and inflate the figure. Afterwards every acknowledged
        event is checked to be stored.
        """
        events = int(rate * self.scale.e2e_seconds)
        out = self.workdir / "e2e.jsonl"
        offset = log_offset(self.cfg, "worker")
        summary = _loadgen(self.cfg, self.cfg.api_url, out, events=events, batch=1, concurrency=16, rate=rate)
        acked = {
            i: row["wall_done"]
            for row in map(json.loads, out.read_text().splitlines())
            for i in row.get("acked", [])
        }
        delivered: dict[str, float] = {}
        deadline = time.monotonic() + 120
        while len(delivered) < len(acked) and time.monotonic() < deadline:
            for line in log_lines(self.cfg, "batch delivered", offset, "worker"):
                when = dt.datetime.fromisoformat(line["ts"]).timestamp()
                for event_id in line.get("event_ids", []):
                    delivered.setdefault(event_id, when)
            time.sleep(0.5)
        coll = self.mongo[names.DATABASE][names.COLLECTION_EVENTS]
        stored = len(by_id(coll, acked, {"_id": 1}))
        latencies = sorted(max(0.0, delivered[i] - t) for i, t in acked.items() if i in delivered)
        self.figures["end_to_end"] = {
            "offered_per_second": rate,
            "events": len(latencies),
            "acknowledged": summary["acknowledged"],
            "stored": stored,
            "not_seen": len(acked) - len(latencies),
            "p50_ms": _ms(loadgen.percentile(latencies, 0.5)),
            "p99_ms": _ms(loadgen.percentile(latencies, 0.99)),
            "method": "worker log 'batch delivered' time (after the insert) minus the client's 202 time",
        }

    def report(self) -> dict[str, Any]:
        """Figures, ratios, targets and the machine."""
        f = self.figures

        def eps(name: str) -> float:
            rate = f[name].get("events_per_second", f[name].get("records_per_second"))
            return float(rate or 0)

        def ratio(name: str, of: str) -> float | None:
            # None, not a division by zero, when the reference measured nothing
            return round(eps(name) / eps(of), 3) if eps(of) > 0 else None

        ratios = {
            # the API publishes with confluent-kafka: compared with that library's raw producer
            "api_batch100_vs_raw_producer": ratio("api_batch100", "raw_producer"),
            "api_single_vs_empty_handler": ratio("api_single", "empty_single"),
            "worker_vs_raw_bulk_write": ratio("worker_sink", "raw_bulk_write"),
            "api_kafka_python_batch100_vs_raw_kafka_python": ratio(
                "api_batch100_kafka_python", "raw_producer_kafka_python"
            ),
            "api_confluent_vs_api_kafka_python": ratio("api_batch100", "api_batch100_kafka_python"),
        }
        rss = [f[k].get("peak_rss_mb") or 0 for k in ("api_rss_after_load", "worker_rss_after_load")]
        results = {
            "api_batch100_vs_raw_producer": ratios["api_batch100_vs_raw_producer"],
            "worker_vs_raw_bulk_write": ratios["worker_vs_raw_bulk_write"],
            "e2e_p99_ms_at_200_per_s": f["end_to_end"]["p99_ms"],
            "rss_mb_max": max(rss),
        }
        return {
            "cost_table": cost_table.table(f),
            "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "scale": self.scale.name,
            "machine": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "python": platform.python_version(),
                "kafka_broker": kafka_version(),
                "ferretdb": FERRETDB_VERSION,
                **{
                    lib: version(lib)
                    for lib in (
                        "confluent-kafka",
                        "kafka-python",
                        "fastapi",
                        "uvicorn",
                        "pydantic",
                        "pymongo",
                    )
                },
            },
            "figures": f,
            "ratios": ratios,
            "targets": {
                name: {"target": TARGETS[name], "measured": results[name], "met": met(name, results[name])}
                for name in TARGETS
            },
        }


def markdown(report: dict[str, Any]) -> str:
    """The readable table."""
    f, m, r = report["figures"], report["machine"], report["ratios"]

    def row(label: str, fig: dict[str, Any], compared: str = "", ratio: Any = "") -> str:
        rate = fig.get("events_per_second", fig.get("records_per_second"))
        return (
            f"| {label} | {rate} | {fig.get('latency_ms_p50', '')} | {fig.get('latency_ms_p99', '')} "
            f"| {compared} | {ratio} |"
        )

    e2e = f["end_to_end"]
    value_bytes = f["raw_producer"]["value_bytes"]
    lines: list[str] = [
        f"# CA4 benchmark ({report['scale']}, {report['when']})",
        "",
        f"{m['cpus']} cores, {m['platform']}; Python {m['python']}, Kafka {m['kafka_broker']}, FerretDB "
        f"{m['ferretdb']}, confluent-kafka {m['confluent-kafka']}, kafka-python {m['kafka-python']}, "
        f"FastAPI {m['fastapi']}, uvicorn {m['uvicorn']}, pydantic {m['pydantic']}",
        "",
        "| measurement | events/s | p50 ms | p99 ms | compared with | ratio |",
        "| --- | ---: | ---: | ---: | --- | ---: |",
        row(f"raw producer, confluent-kafka (acks=all, {value_bytes} B values)", f["raw_producer"]),
        row("raw producer, kafka-python (same settings)", f["raw_producer_kafka_python"]),
        row(
            "API, batches of 100 (publisher: confluent-kafka)",
            f["api_batch100"],
            "raw confluent-kafka",
            r["api_batch100_vs_raw_producer"],
        ),
        row(
            "API, batches of 100 (publisher: kafka-python)",
            f["api_batch100_kafka_python"],
            "raw kafka-python",
            r["api_kafka_python_batch100_vs_raw_kafka_python"],
        ),
        row("API, single events", f["api_single"], "empty handler", r["api_single_vs_empty_handler"]),
        row("empty handler, single events", f["empty_single"]),
        row("empty handler, batches of 100", f["empty_batch100"]),
        row("worker sink (archive off)", f["worker_sink"], "raw bulk write", r["worker_vs_raw_bulk_write"]),
        row(f"raw bulk write (insert_many, {f['raw_bulk_write']['batch']} per call)", f["raw_bulk_write"]),
        f"| end to end at {e2e['offered_per_second']:.0f}/s offered (202 -> readable) | | "
        f"{e2e['p50_ms']} | {e2e['p99_ms']} | | |",
        "",
        f"API on confluent-kafka / API on kafka-python: {r['api_confluent_vs_api_kafka_python']}. "
        f"Resident memory after the load: API {f['api_rss_after_load']['rss_mb']} MB (peak "
        f"{f['api_rss_after_load']['peak_rss_mb']}), worker {f['worker_rss_after_load']['rss_mb']} MB (peak "
        f"{f['worker_rss_after_load']['peak_rss_mb']}).",
        "",
        *cost_table.markdown(report["cost_table"]),
        "",
        *scaling.markdown(f),
        "",
        "| target | wanted | measured | met |",
        "| --- | --- | ---: | --- |",
    ]
    for name, t in report["targets"].items():
        lines.append(f"| {name} | {wanted(name)} | {t['measured']} | {'yes' if t['met'] else 'NO'} |")
    return "\n".join(lines) + "\n"


def run(cfg: StackConfig, scale: Scale, workdir: Path, reports: Path) -> dict[str, Any]:
    """Every measurement, in an order where one does not disturb the next; writes the reports."""
    bench = Bench(cfg, scale, workdir)
    try:
        bench.raw_producer()
        bench.end_to_end()  # first, while the collection is small, as in a fresh deployment
        bench.api_ingest()
        bench.api_ingest_kafka_python()
        bench.empty_handler()
        bench.parts()
        bench.api_workers()
        bench.single_linger()
        bench.worker_sink()
        report = bench.report()
    finally:
        bench.close()
    reports.mkdir(parents=True, exist_ok=True)
    (reports / "bench.json").write_text(json.dumps(report, indent=2) + "\n")
    (reports / "bench.md").write_text(markdown(report))
    return report
