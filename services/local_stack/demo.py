"""``make local-demo``: real H200 snapshots through the API, into the database and the archive.

Posts each snapshot of the captured NVML series with the producer client (exactly what a
Colab notebook does), waits until every event is readable in ``gpu_metadata``, its device
in ``gpu_devices`` and both archive objects in S3, then prints what landed and the
measured latency from each 202 to the document being readable. Exits non-zero when
anything is missing.
"""

from __future__ import annotations

import datetime as dt
import statistics
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pymongo import MongoClient

from ca4_events import names
from ca4_events.schema import GpuMetadataEvent, Source
from ca4_producer.client import Ca4Client
from ca4_producer.replay import events_from_nvml_series
from local_stack import s3
from local_stack.config import BUCKET, StackConfig
from local_stack.procs import note, step

WAIT_S = 60.0


@dataclass
class DemoResult:
    """What the demo saw; ``ok`` when everything sent was found everywhere it belongs."""

    sent: list[str]
    stored: dict[str, dict[str, Any]] = field(default_factory=dict)
    latency_ms: dict[str, float] = field(default_factory=dict)
    devices: list[dict[str, Any]] = field(default_factory=list)
    archive_keys: list[str] = field(default_factory=list)
    archived_ids: set[str] = field(default_factory=set)

    @property
    def missing(self) -> list[str]:
        """Event ids not in the database."""
        return [e for e in self.sent if e not in self.stored]

    @property
    def unarchived(self) -> list[str]:
        """Event ids in no enriched archive object."""
        return [e for e in self.sent if e not in self.archived_ids]

    def ok(self, archive_expected: bool) -> bool:
        """Everything landed."""
        return not self.missing and bool(self.devices) and (not archive_expected or not self.unarchived)


def demo_events(captures: Path, session_id: str) -> list[GpuMetadataEvent]:
    """The H200 NVML series as events from one demo session, re-timed to now."""
    series = captures / "nvml-series.json"
    if not series.exists():
        raise FileNotFoundError(f"{series} is missing: pass --captures DIR holding nvml-series.json")
    source = Source(
        provider="onprem",
        host="h200-capture",
        session_id=session_id,
        tags={"origin": "ca4-local-demo"},
    )
    return list(
        events_from_nvml_series(
            series, source, now=dt.datetime.now(dt.UTC), workload={"job": "ca4-local-demo"}
        )
    )


def run(cfg: StackConfig, captures: Path) -> DemoResult:
    """Send the captures and collect what landed."""
    session_id = f"demo-{uuid.uuid4().hex[:8]}"
    events = demo_events(captures, session_id)
    mongo: MongoClient[dict[str, Any]] = MongoClient(
        cfg.mongo_uri, tz_aware=True, serverSelectionTimeoutMS=5000
    )
    coll = mongo[names.DATABASE][names.COLLECTION_EVENTS]
    result = DemoResult(sent=[])
    note(f"\nsending {len(events)} real H200 snapshots (NVML capture, idle then under load)")
    note(f"as producer session {session_id}, one at a time, each waited for until readable in the DB")
    # one at a time, as a sampling producer would: each latency is 202 -> readable for that
    # event alone, not inflated by the posts that follow it
    with Ca4Client(cfg.api_url, cfg.api_token()) as client:
        for event in events:
            delivery = client.post_event(event)
            accepted = time.monotonic()
            (event_id,) = delivery.event_ids
            result.sent.append(event_id)
            doc = _wait_for_document(coll, event_id, deadline=accepted + WAIT_S)
            if doc is None:
                note(f"  POST /metadata -> {delivery.status}  {event_id}  NOT STORED after {WAIT_S:.0f} s")
                continue
            result.stored[event_id] = doc
            result.latency_ms[event_id] = (time.monotonic() - accepted) * 1000
            note(
                f"  POST /metadata -> {delivery.status}  {event_id}  "
                f"stored {result.latency_ms[event_id]:.0f} ms later"
            )
    uuids = sorted({a["uuid"] for d in result.stored.values() for a in d.get("accelerators", [])})
    result.devices = list(mongo[names.DATABASE][names.COLLECTION_DEVICES].find({"_id": {"$in": uuids}}))
    if cfg.archive_enabled:
        with step("waiting for the archive objects in S3"):
            _collect_archive(cfg, result, deadline=time.monotonic() + WAIT_S)
    mongo.close()
    return result


def _wait_for_document(coll: Any, event_id: str, deadline: float) -> dict[str, Any] | None:
    while time.monotonic() < deadline:
        doc = coll.find_one({"_id": event_id})
        if doc is not None:
            return dict(doc)
        time.sleep(0.005)
    return None


def _collect_archive(cfg: StackConfig, result: DemoResult, deadline: float) -> None:
    client = s3.client(cfg)
    sent = set(result.sent)
    seen: dict[str, set[str]] = {}
    while True:
        holding = s3.archived_ids(client, seen, keep=lambda doc: doc["_id"] in sent)
        result.archived_ids = set().union(*holding.values())
        result.archive_keys = [k for key in holding for k in (key, "raw/" + key.removeprefix("enriched/"))]
        if not result.unarchived or time.monotonic() >= deadline:
            return
        time.sleep(0.2)


_ROW = "  {:36}  {:5}  {:>5}  {:>5}  {:>8}  {:>6}  {:>6}  {}"


def _row(event_id: str, doc: dict[str, Any]) -> str:
    acc = doc["accelerators"][0]
    derived = acc["derived"]
    health = derived["health"]
    flags = [k for k, v in health.items() if v and k != "healthy"]
    reasons = ",".join(derived.get("clock_event_reasons") or []) or "-"
    verdict = ("healthy" if health["healthy"] else "UNHEALTHY") + "".join(f" {f}" for f in flags)
    return _ROW.format(
        event_id,
        doc["workload"]["phase"],
        f"{acc.get('utilization_gpu_pct', 0):.0f}",
        f"{derived.get('memory_used_pct', 0):.2f}",
        f"{acc.get('power_draw_w', 0):.1f}",
        f"{derived.get('power_pct_of_limit', 0):.1f}",
        f"{acc.get('temperature_gpu_c', 0):.0f}",
        f"{reasons} / {verdict}",
    )


def report(result: DemoResult, archive_expected: bool) -> list[str]:
    """Human-readable lines describing what landed."""
    lines = [f"\nstored documents (ca4.gpu_metadata): {len(result.stored)} of {len(result.sent)}"]
    lines.append(
        _ROW.format("event_id", "phase", "util%", "mem%", "power W", "%limit", "temp C", "reasons / health")
    )
    for event_id in result.sent:
        doc = result.stored.get(event_id)
        lines.append(_row(event_id, doc) if doc else f"  {event_id}  MISSING")
    lines.append(f"devices (ca4.gpu_devices): {len(result.devices)}")
    for dev in result.devices:
        last = dev.get("last", {})
        lines.append(
            f"  {dev['_id']}  {dev['name']} ({dev.get('architecture')})  host {dev.get('host')}  "
            f"last seen {dev['last_seen_at']:%H:%M:%S}  util {last.get('utilization_gpu_pct')}%  "
            f"power {last.get('power_draw_w')} W"
        )
    if archive_expected:
        held = f"holding {len(result.archived_ids)} of {len(result.sent)} events"
        lines.append(f"archive objects (s3://{BUCKET}): {len(result.archive_keys)}, {held}")
        lines.extend(f"  {key}" for key in sorted(result.archive_keys))
    if result.latency_ms:
        values = sorted(result.latency_ms.values())
        lines.append(
            "end-to-end latency, 202 -> readable in the database: "
            f"p50 {statistics.median(values):.0f} ms, max {values[-1]:.0f} ms (n={len(values)})"
        )
    problems = []
    if result.missing:
        problems.append(f"{len(result.missing)} event(s) not stored: {', '.join(result.missing)}")
    if not result.devices:
        problems.append("no device state in gpu_devices")
    if archive_expected and result.unarchived:
        problems.append(f"{len(result.unarchived)} event(s) not archived")
    lines.append(
        "RESULT: " + ("OK, every event landed" if not problems else "FAILED: " + "; ".join(problems))
    )
    return lines
