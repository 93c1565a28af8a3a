"""Every Grafana panel's query returns data from the local stack's real Prometheus.

The module's fixture drives real traffic through the real local stack first: the six H200
snapshots posted one by one through the API (and one posted again, a client retry), one
invalid event (422), one record that is not JSON straight into Kafka (dead-lettered); then
it waits until every event is stored and archived and Prometheus has scraped the counters
that show it. Then each panel's queries run exactly as Grafana would send them, with its
variables expanded as ``tests/monitoring/grafana.py`` documents (``$__rate_interval`` -> 1m,
``$host`` -> .*), as range queries over the last two minutes (instant queries for instant
targets), and each must return at least one finite sample.

Panels only a cluster can feed (kafka-exporter, cAdvisor, Loki) are skipped by name with
the reason (``grafana.CLUSTER_ONLY``), after checking that they read nothing else.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from ca4_events import names
from local_stack import prometheus
from tests.integration.support import Stack, eventually, h200_events, prom_get, prom_value, to_body
from tests.monitoring import grafana

PANELS = grafana.query_panels()
WAIT_S = 45.0  # upper bound for each wait below; Debian's Prometheus 2.42 needs 5-7 s to see targets


@dataclass
class Flowed:
    """What the fixture sent, and the Prometheus that saw it."""

    prometheus_url: str
    event_ids: list[str]
    uuids: set[str]
    hosts: set[str]


def wait(what: str, probe: Callable[[], Any]) -> Any:
    """``eventually`` with this module's bound, polling Prometheus every half second."""
    return eventually(what, probe, WAIT_S, 0.5)


@pytest.fixture(scope="module")
def flowed(local_stack: Stack) -> Flowed:
    """Real events through the local stack, stored, archived and scraped."""
    if prometheus.binary() is None:
        pytest.fail("prometheus is not installed: run scripts/ensure_packages.sh prometheus (make test does)")
    base = local_stack.cfg.prometheus_url
    api = local_stack.cfg.api_url

    def targets_up() -> set[str]:
        active = prom_get(base, "/api/v1/targets", state="active")["activeTargets"]
        return {t["labels"]["job"] for t in active if t["health"] == "up"}

    wait(
        "Prometheus scraping jobs processor-api and metadata-worker",
        lambda: {prometheus.JOB_API, prometheus.JOB_WORKER} <= targets_up(),
    )

    events = h200_events("colab-h200-dashboards", "dash")
    # A labelled counter is born at its first increment, already at 1 or more, and rate()
    # cannot see that first step: in a fresh stack a burst of requests would leave the
    # route's rate at 0 and the ratio panels at 0/0. Steady traffic in the cluster does
    # not have that problem; here the first snapshot goes alone and is scraped first.
    ids = local_stack.post_events(events[:1])
    wait(
        "Prometheus scraping the first POST /metadata",
        lambda: (prom_value(base, 'sum(ca4_api_requests_total{route="/metadata", status="202"})') or 0) > 0,
    )
    # one request per snapshot, as the notebook's sampler posts them
    ids += local_stack.post_events(events[1:])
    with httpx.Client(timeout=15) as client:
        retry = client.post(
            f"{api}/metadata", json=to_body(events[0]) | {"event_id": ids[0]}, headers=local_stack.headers()
        )
        assert retry.status_code == 202, f"a client retry with the same id -> {retry.status_code}"
        invalid = client.post(
            f"{api}/metadata",
            json={"collected_at": "not a time", "source": {"provider": "colab"}},
            headers=local_stack.headers(),
        )
        assert invalid.status_code == 422, f"an invalid event -> {invalid.status_code} {invalid.text}"
    producer = local_stack.producer()
    producer.send(names.TOPIC, key=b"dashboards-poison", value=b"{not json").get(timeout=10)
    producer.close()

    local_stack.wait_for_documents(ids, timeout=WAIT_S)
    local_stack.archived(set(ids), timeout=WAIT_S)

    # Prometheus must have scraped the state each service reports now, not an earlier one:
    # "> 0" is not enough when an earlier test of the session already moved a counter
    worker = local_stack.cfg.worker_url
    for base_url, job, name, labels in (
        (worker, prometheus.JOB_WORKER, "ca4_worker_events_stored_total", {}),
        (worker, prometheus.JOB_WORKER, "ca4_worker_events_duplicate_total", {}),
        (worker, prometheus.JOB_WORKER, "ca4_worker_archive_objects_total", {"kind": "enriched"}),
        (worker, prometheus.JOB_WORKER, "ca4_worker_archive_write_seconds_count", {}),
        (api, prometheus.JOB_API, "ca4_api_events_rejected_total", {}),
    ):
        now = local_stack.metric(base_url, name, labels)
        selector = ",".join(f'{k}="{v}"' for k, v in {"job": job, **labels}.items())
        wait(
            f"Prometheus seeing {name}{{{selector}}} >= {now}",
            lambda n=name, sel=selector, v=now: (prom_value(base, f"sum({n}{{{sel}}})") or 0) >= v,
        )
    for expr in (
        'sum(ca4_worker_events_dlq_total{job="metadata-worker"}) > 0',
        "ca4:consumer_lag_records:sum",
    ):
        wait(f"Prometheus answering {expr}", lambda e=expr: prom_value(base, e) is not None)

    uuids = {str(a.uuid) for e in events for a in e.accelerators}
    return Flowed(base, ids, uuids, {events[0].source.host})


def finite_samples(data: dict[str, Any]) -> list[float]:
    """Every finite value in a query answer (vector, matrix or scalar)."""
    if data["resultType"] == "scalar":
        values = [data["result"][1]]
    elif data["resultType"] == "vector":
        values = [series["value"][1] for series in data["result"]]
    else:
        values = [v for series in data["result"] for _, v in series["values"]]
    return [f for f in map(float, values) if math.isfinite(f)]


def run(base: str, target: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Run a Prometheus target as Grafana would: instant or range (last 2 minutes)."""
    expr = grafana.expand(target["expr"])
    if target.get("instant"):
        return expr, prom_get(base, "/api/v1/query", query=expr)
    now = time.time()
    return expr, prom_get(
        base, "/api/v1/query_range", query=expr, start=f"{now - 120:.3f}", end=f"{now:.3f}", step="2"
    )


@pytest.mark.parametrize("panel", PANELS, ids=str)
def test_panel_queries_return_data(flowed: Flowed, panel: grafana.Panel) -> None:
    reason = grafana.CLUSTER_ONLY.get(panel.key)
    if reason is not None:
        for target in panel.targets:
            feeds = grafana.CLUSTER_ONLY_METRIC.findall(target.get("expr", ""))
            is_loki = panel.datasource_uid(target) == grafana.datasource_uids()["loki"]
            assert feeds or is_loki, (
                f"panel {panel} is listed as cluster-only ({reason}) but target {target['refId']} "
                f"reads no cluster-only metric: {target.get('expr')!r}"
            )
        pytest.skip(f"cluster only: {panel}: {reason}")
    prometheus_uid = grafana.datasource_uids()["prometheus"]
    for target in panel.targets:
        assert panel.datasource_uid(target) == prometheus_uid, (
            f"panel {panel} target {target['refId']} queries {panel.datasource_uid(target)!r}, which the "
            f"local stack cannot answer; list it in grafana.CLUSTER_ONLY with the reason, "
            f"or query {prometheus_uid}"
        )
        expr, data = run(flowed.prometheus_url, target)
        found = finite_samples(data)
        assert found, (
            f"panel {panel} target {target['refId']}: expected at least one finite sample after real events "
            f"flowed, found none.\n  query: {expr}\n  answer: {json.dumps(data)[:600]}"
        )


def test_every_metric_a_panel_reads_is_known_to_prometheus(flowed: Flowed) -> None:
    """A fallback like ``or on() vector(0)`` would hide a misspelt name; Prometheus must know each one."""
    base = flowed.prometheus_url
    rules = {
        rule["name"]
        for group in prom_get(base, "/api/v1/rules")["groups"]
        for rule in group["rules"]
        if rule["type"] == "recording"
    }
    metadata = prom_get(base, "/api/v1/metadata")
    unknown = []
    for panel in PANELS:
        if panel.key in grafana.CLUSTER_ONLY:
            continue
        for target in panel.targets:
            for name in grafana.metric_names(target["expr"]):
                family = name.removesuffix("_bucket").removesuffix("_sum").removesuffix("_count")
                known = (
                    name in rules
                    or name in metadata
                    or family in metadata
                    or bool(prom_get(base, "/api/v1/series", **{"match[]": name}))
                )
                if not known:
                    unknown.append(f"{panel} ({target['refId']}): {name}")
    assert not unknown, "metrics no target exports and no rule records:\n  " + "\n  ".join(unknown)


def test_the_fleet_shows_the_h200_that_was_posted(flowed: Flowed) -> None:
    base = flowed.prometheus_url
    hosts = prom_get(
        base, "/api/v1/label/host/values", **{"match[]": "ca4_accelerator_last_seen_timestamp_seconds"}
    )
    assert flowed.hosts <= set(hosts), (
        "the fleet dashboard's host variable "
        "(label_values(ca4_accelerator_last_seen_timestamp_seconds, host)) "
        f"should offer {sorted(flowed.hosts)}; it offers {hosts}"
    )
    result = prom_get(
        base,
        "/api/v1/query",
        query="max by (uuid, name, host) (ca4_accelerator_utilization_gpu_pct)",
    )["result"]
    seen = {r["metric"]["uuid"] for r in result if r["metric"]["host"] in flowed.hosts}
    assert seen == flowed.uuids, (
        f"expected accelerators {sorted(flowed.uuids)} in the fleet gauges, found {seen}"
    )


def test_the_rules_load_and_the_dead_letter_alert_fires(flowed: Flowed) -> None:
    base = flowed.prometheus_url
    groups = prom_get(base, "/api/v1/rules")["groups"]
    loaded = {g["name"] for g in groups}
    assert {"ca4-recording", "ca4-pipeline", "ca4-fleet"} <= loaded, (
        f"rule groups from manifests/monitoring/prometheus/rules in the local Prometheus: {sorted(loaded)}"
    )
    broken = [
        f"{r['name']}: {r.get('lastError')}" for g in groups for r in g["rules"] if r["health"] == "err"
    ]
    assert not broken, f"rules failing to evaluate: {broken}"

    def firing() -> dict[str, str]:
        return {a["labels"]["alertname"]: a["state"] for a in prom_get(base, "/api/v1/alerts")["alerts"]}

    states = wait(
        "CA4DeadLetters firing for the record that is not JSON",
        lambda: (s := firing()).get("CA4DeadLetters") == "firing" and s,
    )
    healthy_pipeline = {"CA4ProcessorApiDown", "CA4MetadataWorkerDown", "CA4WorkerNotReady"}
    wrong = {name for name, state in states.items() if name in healthy_pipeline and state == "firing"}
    assert not wrong, f"alerts firing on a healthy local pipeline: {sorted(wrong)} (all: {states})"
