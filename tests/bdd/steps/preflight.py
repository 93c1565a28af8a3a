"""Steps of preflight.feature."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from pytest_bdd import parsers, then, when

from tests.bdd.targets.base import Target
from tests.integration import support
from tests.monitoring import grafana

NEEDS = {
    "kafka": ("kafka",),
    "database": ("database",),
    "processor-api": ("api",),
    "metadata-worker": ("worker",),
    "prometheus": ("prometheus",),
    "s3-archive": ("s3",),
}


@when(parsers.parse('I probe the component "{component}"'), target_fixture="probe")
def probe_component(target: Target, component: str) -> tuple[str, bool, str]:
    """Ask the target whether one component is ready."""
    target.require(*NEEDS[component])
    ready, seen = target.component_ready(component)
    return component, ready, seen


@then("the component reports ready")
def component_ready(probe: tuple[str, bool, str]) -> None:
    """The probe said ready."""
    component, ready, seen = probe
    assert ready, f"{component} is not ready: {seen}"


@when("I list the Kubernetes nodes", target_fixture="nodes")
def list_nodes(target: Target) -> list[tuple[str, bool]]:
    """Nodes and their Ready condition."""
    target.require("cluster")
    return target.nodes()


@then("there is at least one node")
def at_least_one_node(nodes: list[tuple[str, bool]]) -> None:
    """The cluster has nodes."""
    assert nodes, "the cluster lists no nodes"


@then("every node reports Ready")
def every_node_ready(nodes: list[tuple[str, bool]]) -> None:
    """No node is NotReady."""
    not_ready = [name for name, ready in nodes if not ready]
    assert not not_ready, f"nodes not Ready: {not_ready}"


@when(parsers.parse('I list the pods of namespace "{namespace}"'), target_fixture="pods")
def list_pods(target: Target, namespace: str) -> tuple[str, list[tuple[str, bool]]]:
    """Pods of one namespace."""
    target.require("cluster")
    return namespace, target.pods(namespace)


@then("there is at least one pod")
def at_least_one_pod(pods: tuple[str, list[tuple[str, bool]]]) -> None:
    """The namespace is not empty."""
    namespace, items = pods
    assert items, f"namespace {namespace} has no pods"


@then("every pod is running and ready")
def every_pod_ready(pods: tuple[str, list[tuple[str, bool]]]) -> None:
    """No pod is pending, crashing or unready."""
    namespace, items = pods
    not_ready = [name for name, ready in items if not ready]
    assert not not_ready, f"pods in {namespace} not running and ready: {not_ready}"


# --- Prometheus and the dashboards (cluster only) ------------------------------------------

SCRAPE_WAIT_S = 120.0  # Prometheus may have started moments ago; it scrapes every 15 s
CADVISOR_JOB = "kubernetes-cadvisor"


@dataclass(frozen=True)
class ScrapeTargets:
    """Prometheus's active targets: (job, instance label set) -> health."""

    up: dict[str, list[dict[str, str]]]  # job -> labels of its healthy targets
    down: dict[str, list[str]]  # job -> "instance: last error" of the others


def _scrape_targets(target: Target) -> ScrapeTargets:
    active = support.prom_get(target.prometheus_url, "/api/v1/targets", state="active")["activeTargets"]
    up: dict[str, list[dict[str, str]]] = {}
    down: dict[str, list[str]] = {}
    for t in active:
        job = t["labels"].get("job", "")
        if t["health"] == "up":
            up.setdefault(job, []).append(t["labels"])
        else:
            down.setdefault(job, []).append(
                f"{t['labels'].get('instance')}: {t.get('lastError') or t['health']}"
            )
    return ScrapeTargets(up, down)


@when("I list the targets Prometheus scrapes", target_fixture="scraped")
def list_scrape_targets(target: Target) -> tuple[Target, ScrapeTargets]:
    """Prometheus's active targets, once the ones it has discovered have each been scraped."""
    target.require("cluster", "prometheus")

    def settled() -> ScrapeTargets | None:
        found = _scrape_targets(target)
        return found if not found.down and found.up.get(CADVISOR_JOB) else None

    try:
        return target, target.eventually(
            "Prometheus scraping every target it discovered", settled, SCRAPE_WAIT_S
        )
    except AssertionError:
        return target, _scrape_targets(target)  # the Then steps say which is down


@then(parsers.parse('every instance of the jobs "{jobs}" is up'))
def jobs_up(scraped: tuple[Target, ScrapeTargets], jobs: str) -> None:
    """Each job has healthy targets and none that are down."""
    _, found = scraped
    for job in (j.strip() for j in jobs.split(",")):
        assert found.up.get(job), f"Prometheus has no healthy target for job {job}: up {sorted(found.up)}"
        assert not found.down.get(job), f"targets of job {job} are down: {found.down[job]}"


@then("every node has a cAdvisor target that is up")
def cadvisor_on_every_node(scraped: tuple[Target, ScrapeTargets]) -> None:
    """kubernetes-cadvisor reaches each node's kubelet through the API server's node proxy."""
    target, found = scraped
    nodes = {name for name, _ in target.nodes()}
    scraped_nodes = {labels.get("node") for labels in found.up.get(CADVISOR_JOB, [])}
    assert nodes <= scraped_nodes, (
        f"nodes without a healthy {CADVISOR_JOB} target: {sorted(nodes - scraped_nodes)} "
        f"(down: {found.down.get(CADVISOR_JOB, [])})"
    )


def _cadvisor_queries() -> list[tuple[grafana.Panel, str]]:
    queries = []
    for panel in grafana.query_panels():
        for t in panel.targets:
            expr = t.get("expr", "")
            if re.search(r"\b(container|machine)_[a-z_]+", expr):
                queries.append((panel, grafana.expand(expr)))
    return queries


@when("I run the queries of the dashboard panels that read cAdvisor", target_fixture="panel_answers")
def run_cadvisor_panels(target: Target) -> dict[str, tuple[str, int]]:
    """Each query as Grafana sends it (variables expanded), over the last five minutes."""
    target.require("cluster", "prometheus")
    queries = _cadvisor_queries()
    assert queries, "no dashboard panel reads a cAdvisor metric: this scenario would prove nothing"

    def samples(expr: str) -> int:
        now = time.time()
        data = support.prom_get(
            target.prometheus_url,
            "/api/v1/query_range",
            query=expr,
            start=f"{now - 300:.0f}",
            end=f"{now:.0f}",
            step="15",
        )
        return sum(len(series["values"]) for series in data["result"])

    answers: dict[str, tuple[str, int]] = {}
    for panel, expr in queries:
        try:
            count = target.eventually(f"{panel}: {expr}", lambda e=expr: samples(e) or None, SCRAPE_WAIT_S)
        except AssertionError:
            count = 0
        answers[f"{panel}"] = (expr, count)
    return answers


@then("every one of them returns data")
def every_panel_has_data(panel_answers: dict[str, tuple[str, int]]) -> None:
    """At least one sample per query."""
    empty = {panel: expr for panel, (expr, count) in panel_answers.items() if count == 0}
    assert not empty, "panels whose query returned nothing:\n" + "\n".join(
        f"  {p}: {e}" for p, e in empty.items()
    )
