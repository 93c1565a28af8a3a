"""Steps of resilience.feature: a Kafka broker pod deleted under load."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
from pytest_bdd import parsers, then, when

from ca4_events import names
from tests.bdd.targets.base import Target
from tests.tools import loadgen

BATCH = 50
CONCURRENCY = 4
LOAD_S = 20.0  # the batches are spread over this long, so the load spans the broker's absence
RETRY_FOR_S = 300.0  # how long one batch is retried through refusals (a broker restart)
SETTLE_S = 300.0  # how long the worker may take to store everything after the load


@dataclass
class Load:
    """What the client sent and what the API answered."""

    run: str
    ids: list[str]
    acked: set[str] = field(default_factory=set)
    refusals: Counter[int | str] = field(default_factory=Counter)  # status (or error) -> count
    unacked: list[str] = field(default_factory=list)  # ids never acknowledged within RETRY_FOR_S
    deleted: str = ""
    acked_at_delete: int = 0  # how many were acknowledged when the pod was deleted
    seconds: float = 0.0


def _post_until_acked(
    target: Target, batch: list[dict[str, Any]], at: float, load: Load, lock: threading.Lock
) -> None:
    """At ``at`` (monotonic), POST one batch; refused events (503, 207 parts, transport errors)
    again, after Retry-After."""
    time.sleep(max(0.0, at - time.monotonic()))
    pending = list(batch)
    deadline = time.monotonic() + RETRY_FOR_S
    while pending and time.monotonic() < deadline:
        wait = 1.0
        try:
            resp = target.post_metadata({"events": pending})
        except httpx.HTTPError as exc:
            with lock:
                load.refusals[type(exc).__name__] += 1
        else:
            if resp.status_code == 202:
                acked = {e["event_id"] for e in pending}
            elif resp.status_code == 207:
                acked = {r["event_id"] for r in resp.json()["results"] if r["status"] == 202}
            else:
                acked = set()
                wait = float(resp.headers.get("Retry-After") or 1)
            with lock:
                load.acked |= acked
                if resp.status_code != 202:
                    load.refusals[resp.status_code] += 1
            pending = [e for e in pending if e["event_id"] not in acked]
        if pending:
            time.sleep(min(wait, 5.0))
    with lock:
        load.unacked += [e["event_id"] for e in pending]


@when(
    parsers.parse(
        "{count:d} snapshots are posted through the public endpoint while a Kafka broker pod is deleted"
    ),
    target_fixture="load",
)
def post_while_deleting_a_broker(target: Target, count: int) -> Load:
    """Batches of 50 spread over 20 s, 4 at a time; the last broker's pod deleted once a tenth is
    acknowledged."""
    target.require("cluster", "api", "token")
    run = f"resilience-{uuid.uuid4().hex[:8]}"
    events = loadgen.make_events(run, count)
    load = Load(run, [e["event_id"] for e in events])
    lock = threading.Lock()
    batches = [events[i : i + BATCH] for i in range(0, count, BATCH)]
    started = time.monotonic()
    every = LOAD_S / len(batches)
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        futures = [
            pool.submit(_post_until_acked, target, b, started + i * every, load, lock)
            for i, b in enumerate(batches)
        ]
        target.eventually("a tenth of the load acknowledged", lambda: len(load.acked) >= count // 10, 120)
        with lock:
            load.acked_at_delete = len(load.acked)
        load.deleted = target.delete_broker_pod()
        for future in futures:
            future.result()
    load.seconds = time.monotonic() - started
    return load


@then("the deleted broker came back and every partition has all its replicas in sync")
def broker_back(target: Target, load: Load) -> None:
    """The StatefulSet recreated the pod, and no partition of gpu-metadata is under-replicated."""
    target.eventually(f"{load.deleted} Ready again", lambda: target.broker_pod_ready(load.deleted), SETTLE_S)

    def in_sync() -> bool:
        info = target.describe_topic(names.TOPIC)
        return info is not None and info.under_replicated == 0

    target.eventually(f"every partition of {names.TOPIC} with all its replicas in sync", in_sync, SETTLE_S)


@then("the client got every snapshot acknowledged, retrying what was refused")
def all_acknowledged(load: Load) -> None:
    """Refusals are allowed (the API says 503 while Kafka cannot take acks=all); silence is not."""
    assert load.acked_at_delete < len(load.ids), "the load was over before the broker pod was deleted"
    assert not load.unacked, (
        f"{len(load.unacked)} of {len(load.ids)} snapshots were still refused after {RETRY_FOR_S:.0f} s "
        f"of retries (refusals: {dict(load.refusals)}; broker pod {load.deleted} deleted)"
    )
    assert load.acked == set(load.ids), f"acknowledged {len(load.acked)} of {len(load.ids)}"


@then("every snapshot is stored exactly once")
def stored_once(target: Target, load: Load) -> None:
    """Every acknowledged id in gpu_metadata, and no snapshot (its ``workload.seq``) under two ids."""

    def stored() -> list[list[Any]] | None:
        docs = target.run_documents(load.run)
        return docs if {d[0] for d in docs} >= load.acked else None

    try:
        docs = target.eventually(f"the {len(load.acked)} acknowledged snapshots stored", stored, SETTLE_S)
    except AssertionError:
        docs = target.run_documents(load.run)
    found = {d[0] for d in docs}
    lost = load.acked - found
    per_seq = Counter(d[1] for d in docs)
    twice = {seq: n for seq, n in per_seq.items() if n > 1}
    assert not lost, f"{len(lost)} acknowledged snapshots not stored, e.g. {sorted(lost)[:3]}"
    assert not twice, f"{len(twice)} snapshots stored under two ids or more, e.g. {list(twice.items())[:3]}"
    assert len(docs) == len(load.ids), f"{len(docs)} documents of run {load.run}, {len(load.ids)} posted"
