"""Helpers for the tests that run on the real local stack: integration, features, reliability, bench.

Module-level functions take a ``StackConfig`` (or a URL, or a bootstrap address), so the
reliability and benchmark harnesses, which hold only a config, and the features' targets
use the same code as the integration tests; ``Stack`` adds the session's database client
and short-hands for the tests.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import signal
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families
from pymongo import MongoClient
from pymongo.database import Database

from ca4_events import names
from ca4_events.schema import GpuMetadataEvent, Source
from ca4_producer.replay import events_from_nvml_series
from local_stack import pipeline, s3, stack
from local_stack.config import StackConfig
from local_stack.procs import Process
from tests.conftest import H200

T = TypeVar("T")


# --- reading by id ---------------------------------------------------------------------------


def by_id(
    coll: Any, ids: Iterable[str], projection: dict[str, int] | None = None, *, stop_at_missing: bool = False
) -> dict[str, dict[str, Any]]:
    """The stored documents among ``ids``, one ``find_one`` by ``_id`` each (in the given order).

    Not one ``find({"_id": {"$in": ids}})``: the local database (FerretDB 1.24 on SQLite) pushes
    only an equality on ``_id`` down to SQLite, where the stack indexes it
    (``local_stack.ferretdb.index_id_lookups``), and answers ``$in`` by scanning the whole
    collection (16 s at 100 000 documents, against 1.5 ms per id). With ``stop_at_missing``
    the lookups stop at the first id not stored yet: a poll then costs one lookup per new
    document, not one per id still awaited.
    """
    found: dict[str, dict[str, Any]] = {}
    for event_id in ids:
        doc = coll.find_one({"_id": event_id}, projection)
        if doc is None:
            if stop_at_missing:
                break
            continue
        found[event_id] = doc
    return found


# --- waiting ------------------------------------------------------------------------------


def eventually(what: str, probe: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.2) -> T:
    """Poll ``probe`` until it returns a value (anything but None or False) and return that value.

    Fails with an ``AssertionError`` naming ``what`` and the last answer after ``timeout`` s.
    A probe that asks a yes/no question returns a bool; one that looks something up returns
    the thing, or None while it is not there.
    """
    deadline = time.monotonic() + timeout
    while True:
        last = probe()
        if last is not None and last is not False:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s (last answer: {last!r})")
        time.sleep(interval)


def wait_status(url: str, status: int, timeout: float) -> None:
    """Poll ``url`` until it answers ``status``; fail naming the last answer seen."""
    last: list[int | None] = [None]

    def answers() -> bool:
        try:
            last[0] = httpx.get(url, timeout=2).status_code
        except httpx.TransportError:
            last[0] = None
        return last[0] == status

    try:
        eventually(f"{url} answering {status}", answers, timeout)
    except AssertionError:
        raise AssertionError(f"{url} answered {last[0]}, expected {status} within {timeout:.0f} s") from None


# --- metrics: a service's /metrics and Prometheus' query API ------------------------------


def metric(
    base_url: str, name: str, labels: dict[str, str] | None = None, default: float | None = 0.0
) -> float | None:
    """The value of one sample on ``base_url``/metrics (``default`` when the service has none).

    ``name`` is the sample's name as exposed (``ca4_worker_events_stored_total``); ``labels``
    must match the sample's labels exactly, in any order.
    """
    with urllib.request.urlopen(f"{base_url}/metrics", timeout=5) as resp:  # noqa: S310 - loopback
        text = resp.read().decode()
    wanted = labels or {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == wanted:
                return float(sample.value)
    return default


def prom_get(base: str, path: str, **params: str) -> Any:
    """GET a Prometheus API path; the ``data`` of a successful answer."""
    url = f"{base}{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - loopback or a tunnel
        body = json.loads(resp.read())
    assert body.get("status") == "success", f"GET {url} -> {body}"
    return body["data"]


def prom_value(base: str, expr: str) -> float | None:
    """The single value of an instant query, or None when it returns nothing."""
    result = prom_get(base, "/api/v1/query", query=expr)["result"]
    return float(result[0]["value"][1]) if result else None


# --- Kafka --------------------------------------------------------------------------------


def end_offsets(bootstrap: str, topic: str = names.TOPIC) -> dict[int, int]:
    """Next offset per partition (where a new record would land)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        return {tp.partition: off for tp, off in consumer.end_offsets(parts).items()}
    finally:
        consumer.close()


def committed(bootstrap: str, group: str = names.CONSUMER_GROUP, topic: str = names.TOPIC) -> dict[int, int]:
    """The group's committed offset per partition of ``topic`` (a partition never committed is absent)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    try:
        offsets = admin.list_group_offsets(group).get(group, {})
    finally:
        admin.close()
    return {tp.partition: int(meta.offset) for tp, meta in offsets.items() if tp.topic == topic}


def drained(bootstrap: str, group: str = names.CONSUMER_GROUP, topic: str = names.TOPIC) -> bool:
    """True when ``group`` has committed every record of ``topic``: nothing is in flight."""
    done = committed(bootstrap, group, topic)
    return all(done.get(p, 0) == end for p, end in end_offsets(bootstrap, topic).items())


def wait_drained(bootstrap: str, timeout: float = 120.0) -> None:
    """Wait until the worker has committed every record of gpu-metadata."""
    eventually(
        f"{names.CONSUMER_GROUP} committing every record of {names.TOPIC}",
        lambda: drained(bootstrap),
        timeout,
        0.5,
    )


def _reader(bootstrap: str, topic: str, since: dict[int, int] | None) -> KafkaConsumer:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    if since is None:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        assert parts, f"topic {topic} has no partitions"
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
    else:
        parts = [TopicPartition(topic, p) for p in since]
        consumer.assign(parts)
        for tp in parts:
            consumer.seek(tp, since[tp.partition])
    return consumer


def read_topic(
    bootstrap: str,
    topic: str,
    match: Callable[[Any], bool],
    since: dict[int, int] | None = None,
    timeout: float = 20.0,
) -> Any:
    """The first record of ``topic`` (from ``since``, else from the beginning) that ``match`` accepts.

    Waits for it to arrive; fails after ``timeout``.
    """
    consumer = _reader(bootstrap, topic, since)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    if match(record):
                        return record
    finally:
        consumer.close()
    raise AssertionError(f"no record on {topic} matched within {timeout:.0f} s")


def topic_records(
    bootstrap: str,
    topic: str,
    match: Callable[[Any], bool] = lambda record: True,
    since: dict[int, int] | None = None,
    timeout: float = 60.0,
) -> list[Any]:
    """Every record of ``topic`` that ``match`` accepts, from ``since`` (else the start) to the end now."""
    ends = end_offsets(bootstrap, topic)
    consumer = _reader(bootstrap, topic, since)
    try:
        position = {p: (since or {}).get(p, 0) for p in ends}
        found: list[Any] = []
        deadline = time.monotonic() + timeout
        while any(position[p] < ends[p] for p in ends):
            assert time.monotonic() < deadline, f"{topic} not read up to {ends} within {timeout:.0f} s"
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    if record.offset < ends[record.partition]:
                        position[record.partition] = record.offset + 1
                        if match(record):
                            found.append(record)
        return found
    finally:
        consumer.close()


def header(record: Any, name: str) -> bytes | None:
    """One header of a Kafka record."""
    return dict(record.headers or []).get(name)


# --- the services: stop, restart, reconfigure; always back to the contract afterwards -------

_SERVICES: dict[str, tuple[Callable[[StackConfig], Process], Callable[..., None]]] = {
    "worker": (pipeline.worker_process, pipeline.start_worker),
    "api": (pipeline.api_process, pipeline.start_api),
}


@dataclass
class Exit:
    """How a signalled service ended."""

    code: int
    seconds: float  # from the signal to the exit
    log: str  # what it logged from the signal on

    def messages(self) -> list[str]:
        """The ``msg`` of each JSON log line, in order."""
        return [json.loads(line)["msg"] for line in self.log.splitlines() if line.startswith("{")]


def restart(cfg: StackConfig, service: str, env: dict[str, str] | None = None) -> None:
    """Stop the worker or the API (SIGTERM, then SIGKILL); start it with ``env`` overrides, ready."""
    handle, start = _SERVICES[service]
    handle(cfg).stop(timeout=30)
    start(cfg, env)


@contextlib.contextmanager
def stopped(
    cfg: StackConfig,
    service: str = "worker",
    sig: signal.Signals = signal.SIGTERM,
    timeout: float = 30.0,
    restart_env: dict[str, str] | None = None,
) -> Iterator[Exit]:
    """Signal the service and wait for its exit; the block runs while it is down.

    Whatever happens, it is started again on leaving (with ``restart_env`` overrides) and
    ready before the next line runs: one failed test never leaves the stack without it.
    """
    proc = _SERVICES[service][0](cfg)
    offset = proc.log_file.stat().st_size if proc.log_file.exists() else 0
    try:
        signalled = time.monotonic()
        assert proc.signal(sig), f"{service} was not running"
        code = proc.wait(timeout=timeout)
        seconds = time.monotonic() - signalled
        yield Exit(code, seconds, proc.log_file.read_bytes()[offset:].decode(errors="replace"))
    finally:
        restart(cfg, service, restart_env)


@contextlib.contextmanager
def reconfigured(cfg: StackConfig, service: str, env: dict[str, str]) -> Iterator[None]:
    """The service restarted with ``env`` overrides for the block, then with the contract again, always."""
    try:
        restart(cfg, service, env)
        yield
    finally:
        restart(cfg, service)


@contextlib.contextmanager
def component_down(cfg: StackConfig, name: str) -> Iterator[None]:
    """A server of the stack (``kafka``, ``ferretdb``) stopped for the block, then started again, always.

    On leaving, waits until the API and the worker answer ready again.
    """
    comp = stack.component(cfg, name)
    assert comp.stop(cfg), f"{name} should have been running"
    try:
        yield
    finally:
        comp.start(cfg)
        wait_status(f"{cfg.api_url}/readyz", 200, timeout=60)
        wait_status(f"{cfg.worker_url}/readyz", 200, timeout=60)


def log_offset(cfg: StackConfig, service: str = "worker") -> int:
    """The size of a service's log now: read lines written after it with ``log_lines``."""
    log = _SERVICES[service][0](cfg).log_file
    return log.stat().st_size if log.exists() else 0


def log_lines(cfg: StackConfig, msg: str, offset: int = 0, service: str = "worker") -> list[dict[str, Any]]:
    """The service's JSON log lines with ``msg``, written after byte ``offset`` (restarts append)."""
    log = _SERVICES[service][0](cfg).log_file
    with log.open("rb") as f:
        f.seek(offset)
        raw = f.read()
    wanted, found = json.dumps(msg).encode(), []
    for line in raw.splitlines():
        if line.startswith(b"{") and wanted in line:
            with contextlib.suppress(ValueError):  # a SIGKILLed worker may leave half a line
                doc = json.loads(line)
                if doc.get("msg") == msg:
                    found.append(doc)
    return found


# --- events ---------------------------------------------------------------------------------


def to_body(event: GpuMetadataEvent) -> dict[str, Any]:
    """An event as a producer sends it."""
    return dict(json.loads(event.model_dump_json(exclude_none=True)))


def h200_events(host: str, prefix: str, tags: dict[str, str] | None = None) -> list[GpuMetadataEvent]:
    """The six H200 snapshots, re-timed to now, from a Colab producer session of their own."""
    source = Source(
        provider="colab", host=host, session_id=f"{prefix}-{uuid.uuid4().hex[:12]}", tags=tags or {}
    )
    return list(events_from_nvml_series(H200 / "nvml-series.json", source, now=dt.datetime.now(dt.UTC)))


# --- the session's stack ----------------------------------------------------------------------


@dataclass
class Stack:
    """Handles onto the running local stack."""

    cfg: StackConfig
    mongo: MongoClient[dict[str, Any]]

    @property
    def db(self) -> Database[dict[str, Any]]:
        """Database ``ca4``."""
        return self.mongo[names.DATABASE]

    @property
    def token(self) -> str:
        """The API's bearer token."""
        return self.cfg.api_token()

    def headers(self) -> dict[str, str]:
        """Authorization and JSON content type."""
        return {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}

    def s3(self) -> Any:
        """boto3 client for moto."""
        return s3.client(self.cfg)

    def producer(self) -> KafkaProducer:
        """A raw producer (for records the API would never publish)."""
        return KafkaProducer(bootstrap_servers=self.cfg.kafka_bootstrap, acks="all")

    def post_events(self, events: Iterable[GpuMetadataEvent | dict[str, Any]]) -> list[str]:
        """POST each event alone, as a sampling producer does; each must get 202. Their ids."""
        ids = []
        with httpx.Client(base_url=self.cfg.api_url, headers=self.headers(), timeout=30) as api:
            for event in events:
                body = event if isinstance(event, dict) else to_body(event)
                resp = api.post("/metadata", json=body)
                assert resp.status_code == 202, f"POST /metadata -> {resp.status_code} {resp.text[:300]}"
                ids += resp.json()["event_ids"]
        return ids

    @contextlib.contextmanager
    def nothing_published(self, sentinel: GpuMetadataEvent) -> Iterator[None]:
        """The block must put no record on gpu-metadata (a refused request, say).

        Reads the topic's end offsets before the block. After it, posts ``sentinel`` with the
        token (give it the refused request's producer session: same key, same partition,
        behind anything the block had published) and, once the API answered 202 (the
        sentinel is in Kafka), reads every record since: the sentinel must be the only one.
        The API is the topic's only producer while a test runs.
        """
        bootstrap = self.cfg.kafka_bootstrap
        before = end_offsets(bootstrap)
        yield
        (sentinel_id,) = self.post_events([sentinel])
        published = [
            header(r, names.HEADER_EVENT_ID) for r in topic_records(bootstrap, names.TOPIC, since=before)
        ]
        assert published == [sentinel_id.encode()], (
            f"only the sentinel {sentinel_id} should be on {names.TOPIC} since the block began; "
            f"found event ids {published}"
        )

    def read_topic(self, topic: str, until: Callable[[Any], bool], timeout: float = 20.0) -> Any:
        """Read ``topic`` from the beginning until a record satisfies ``until``; fail after ``timeout``."""
        return read_topic(self.cfg.kafka_bootstrap, topic, until, timeout=timeout)

    def wait_for_documents(self, ids: list[str], timeout: float = 30.0) -> dict[str, dict[str, Any]]:
        """Poll ``gpu_metadata`` by ``_id`` until every id is stored; fail naming the missing."""
        found: dict[str, dict[str, Any]] = {}
        coll = self.db[names.COLLECTION_EVENTS]

        def missing() -> list[str]:
            return [i for i in ids if i not in found]

        def all_found() -> bool:
            found.update(by_id(coll, missing(), stop_at_missing=True))
            return not missing()

        try:
            eventually("events stored", all_found, timeout, 0.05)
        except AssertionError:
            gone = missing()
            raise AssertionError(
                f"{len(gone)} event(s) not in ca4.gpu_metadata after {timeout:.0f} s: {gone}"
            ) from None
        return found

    def archived(self, ids: set[str], timeout: float = 30.0) -> dict[str, set[str]]:
        """``{enriched key: ids it holds}`` for objects holding any of ``ids``, once all are found."""
        client, seen = self.s3(), {}

        def holding() -> dict[str, set[str]] | None:
            found = s3.archived_ids(client, seen, keep=lambda doc: doc["_id"] in ids)
            return found if set().union(*found.values()) >= ids else None

        return eventually(f"events archived in s3 ({len(ids)} ids)", holding, timeout)

    def metric(self, base_url: str, name: str, labels: dict[str, str] | None = None) -> float:
        """Current value of one sample on a service's /metrics (0 when absent)."""
        return float(metric(base_url, name, labels))

    def wait_for_metric(self, base_url: str, name: str, above: float, timeout: float = 10.0) -> float:
        """Poll a counter until it exceeds ``above``; fail with the last value seen."""
        return eventually(
            f"{name} at {base_url} exceeding {above}",
            lambda: (value := self.metric(base_url, name)) > above and value,
            timeout,
            0.1,
        )

    def kafka_down(self) -> contextlib.AbstractContextManager[None]:
        """Kafka stopped for the block, started again afterwards (always); the services ready again."""
        return component_down(self.cfg, "kafka")

    def worker_stopped(self, sig: signal.Signals = signal.SIGTERM) -> contextlib.AbstractContextManager[Exit]:
        """The worker signalled and exited for the block; started again afterwards (always)."""
        return stopped(self.cfg, "worker", sig)
