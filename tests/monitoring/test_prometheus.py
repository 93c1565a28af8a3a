"""The cluster's Prometheus configuration and rules, checked by the promtools that read them."""

from __future__ import annotations

import glob
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from local_stack import prometheus as local_prometheus
from tests.kube import MANIFESTS, Obj, kustomize_build, pod_labels, workloads
from tests.monitoring.conftest import BUILD_TIMEOUT_S
from tests.monitoring.grafana import MONITORING
from tests.tools.run import run

PROM_DIR = MONITORING / "prometheus"
CONFIG = PROM_DIR / "config" / "prometheus.yml"
RULES = sorted((PROM_DIR / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROM_DIR / "tests").glob("*.test.yml"))
# every promtool unit test file, parsed once
RULE_TEST_DOCS = {path: yaml.safe_load(path.read_text()) for path in RULE_TESTS}
SEVERITIES = {"critical", "warning"}
# the first use of the cluster's promtool builds it (minutes, once per machine): the session's
# 300 s per-test timeout (pyproject.toml) covers fixture setup too
BUILDS_PROMTOOL = pytest.mark.timeout(BUILD_TIMEOUT_S + 120)


def promtool(binary: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run promtool; the result with its output."""
    return run([binary, *map(str, args)], timeout=120)


def alerts() -> list[dict[str, Any]]:
    """Every alerting rule."""
    return [
        rule
        for path in RULES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


@BUILDS_PROMTOOL
def test_the_cluster_config_passes_promtool_check_config(cluster_promtool: str) -> None:
    # --syntax-only: the service-account token and CA files exist only inside the pod
    out = promtool(cluster_promtool, "check", "config", "--syntax-only", CONFIG)
    assert out.returncode == 0, f"promtool check config {CONFIG}:\n{out.stdout}{out.stderr}"


@BUILDS_PROMTOOL
@pytest.mark.parametrize("which", ["debian", "cluster"])
def test_the_rules_pass_promtool_check_rules(which: str, request: pytest.FixtureRequest) -> None:
    binary = request.getfixturevalue(f"{which}_promtool")
    out = promtool(binary, "check", "rules", *RULES)
    assert out.returncode == 0, f"{which} promtool check rules:\n{out.stdout}{out.stderr}"


@BUILDS_PROMTOOL
@pytest.mark.parametrize("which", ["debian", "cluster"])
def test_the_rule_unit_tests_pass(which: str, request: pytest.FixtureRequest) -> None:
    """promtool test rules, with the local stack's Prometheus version and the cluster's."""
    binary = request.getfixturevalue(f"{which}_promtool")
    assert RULE_TESTS, f"no *.test.yml under {PROM_DIR / 'tests'}"
    out = promtool(binary, "test", "rules", *RULE_TESTS)
    assert out.returncode == 0, f"{which} promtool test rules:\n{out.stdout}{out.stderr}"


def test_the_config_loads_every_rule_file() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    patterns = config["rule_files"]
    # resolved as Prometheus does: relative to the config file's folder
    loaded = {Path(p).resolve() for pattern in patterns for p in glob.glob(str(CONFIG.parent / pattern))}
    assert loaded == {p.resolve() for p in RULES}, (
        f"rule_files {patterns} (relative to {CONFIG.name}) should load exactly {[p.name for p in RULES]}"
    )


def relabel(labels: dict[str, str], rules: list[dict[str, Any]]) -> dict[str, str] | None:
    """Prometheus's relabelling of one discovered target (keep, drop, replace; RE2 regexes
    are anchored at both ends); None when a rule drops it."""
    out = dict(labels)
    for rule in rules:
        action = rule.get("action", "replace")
        value = rule.get("separator", ";").join(out.get(s, "") for s in rule.get("source_labels", []))
        match = re.fullmatch(rule.get("regex", "(.*)"), value)
        if action == "keep" and not match:
            return None
        if action == "drop" and match:
            return None
        if action == "replace" and match:
            result = re.sub(
                r"\$(\d+)|\$\{(\d+)\}",
                lambda g, m=match: m.group(int(g.group(1) or g.group(2))) or "",
                str(rule.get("replacement", "$1")),
            )
            if result:
                out[rule["target_label"]] = result
            else:
                out.pop(rule["target_label"], None)
        assert action in ("keep", "drop", "replace"), f"relabel action {action!r} is not simulated here"
    return out


def meta(name: str) -> str:
    """A Kubernetes label or annotation name as Prometheus's discovery spells it."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def discovered(obj: Obj, phase: str = "Running") -> list[dict[str, str]]:
    """What role: pod discovery reports for a pod of this workload: one target per declared
    container port (or one without a port), with the pod's labels and annotations."""
    template = obj.body["spec"]["template"]
    base = {
        "__meta_kubernetes_namespace": str(obj.namespace),
        "__meta_kubernetes_pod_name": f"{obj.name}-0",
        "__meta_kubernetes_pod_node_name": "edge-0",
        "__meta_kubernetes_pod_phase": phase,
        "__metrics_path__": "/metrics",
        "__scheme__": "http",
    }
    base |= {f"__meta_kubernetes_pod_label_{meta(k)}": v for k, v in pod_labels(obj).items()}
    annotations = template["metadata"].get("annotations") or {}
    base |= {f"__meta_kubernetes_pod_annotation_{meta(k)}": str(v) for k, v in annotations.items()}
    ports = [p["containerPort"] for c in template["spec"]["containers"] for p in c.get("ports", [])]
    return [{**base, "__address__": f"10.42.0.7:{port}"} for port in ports] or [
        {**base, "__address__": "10.42.0.7"}
    ]


def scrape_targets(pod: list[dict[str, str]]) -> set[tuple[tuple[str, str], ...]]:
    """The distinct targets the cluster's config makes of one pod's discovered targets."""
    found = set()
    for job in yaml.safe_load(CONFIG.read_text())["scrape_configs"]:
        for sd in job.get("kubernetes_sd_configs", []):
            if sd["role"] != "pod":
                continue
            for target in pod:
                if target["__meta_kubernetes_namespace"] not in sd["namespaces"]["names"]:
                    continue
                labels = relabel({**target, "job": job["job_name"]}, job.get("relabel_configs", []))
                if labels is not None:
                    found.add(tuple(sorted(labels.items())))
    return found


@pytest.fixture(scope="module")
def ca4_workloads(built: list[Obj]) -> list[Obj]:
    """Every workload of the three layers (the app and platform bases, as kustomize builds them)."""
    return workloads([*kustomize_build(MANIFESTS / "app"), *kustomize_build(MANIFESTS / "platform"), *built])


def test_every_pod_that_asks_is_scraped_once_under_its_app_name(ca4_workloads: list[Obj]) -> None:
    """prometheus.io/scrape "true": one target at the annotated port and path, job = the pod's
    app.kubernetes.io/name (the dashboards and alerts select on it); other pods: none."""
    jobs = {}
    for obj in ca4_workloads:
        annotations = obj.body["spec"]["template"]["metadata"].get("annotations") or {}
        targets = scrape_targets(discovered(obj))
        if annotations.get("prometheus.io/scrape") != "true":
            assert not targets, f"{obj.ref} does not ask to be scraped, yet becomes {targets}"
            continue
        assert len(targets) == 1, f"{obj.ref}: expected one scrape target, got {targets}"
        labels = dict(next(iter(targets)))
        name = pod_labels(obj)["app.kubernetes.io/name"]
        assert labels["job"] == name, f"{obj.ref}: job {labels['job']!r}, expected its app name {name!r}"
        assert labels["__address__"] == f"10.42.0.7:{annotations['prometheus.io/port']}", (obj.ref, labels)
        assert labels["__metrics_path__"] == annotations.get("prometheus.io/path", "/metrics"), (
            obj.ref,
            labels,
        )
        assert (labels["namespace"], labels["pod"]) == (obj.namespace, f"{obj.name}-0"), labels
        assert not scrape_targets(discovered(obj, phase="Succeeded")), f"{obj.ref}: a finished pod is scraped"
        jobs[labels["job"]] = obj
    for name in (local_prometheus.JOB_API, local_prometheus.JOB_WORKER):
        assert name in jobs, (
            f"no scrape target with job {name!r} (the local stack's name); jobs: {sorted(jobs)}"
        )
        assert jobs[name].namespace == "app", f"job {name} comes from {jobs[name].ref}"


def test_only_the_ca4_pods_are_scraped(ca4_workloads: list[Obj]) -> None:
    """A pod that asks but is not part of CA4, or lives outside its namespaces, is left alone."""
    asking = next(o for o in ca4_workloads if pod_labels(o).get("app.kubernetes.io/name") == "processor-api")
    pod = discovered(asking)[0]
    foreign = pod | {"__meta_kubernetes_pod_label_app_kubernetes_io_part_of": "other"}
    elsewhere = pod | {"__meta_kubernetes_namespace": "default"}
    assert scrape_targets([pod]), "the processor-api pod itself should be scraped"
    assert not scrape_targets([foreign]), "a pod not part-of=ca4 is scraped"
    assert not scrape_targets([elsewhere]), "a pod in namespace default is scraped"


def test_the_local_stack_loads_the_same_rule_files() -> None:
    assert local_prometheus.rule_files() == RULES, (
        f"services/local_stack/prometheus.py loads {local_prometheus.rule_files()}, expected {RULES}"
    )


@pytest.mark.parametrize("alert", alerts(), ids=lambda a: a["alert"])
def test_every_alert_has_a_severity_and_a_runbook(alert: dict[str, Any]) -> None:
    assert alert.get("labels", {}).get("severity") in SEVERITIES, (
        f"{alert['alert']}: severity {alert.get('labels', {}).get('severity')!r}, "
        f"expected one of {SEVERITIES}"
    )
    missing = {"summary", "description", "runbook"} - set(alert.get("annotations", {}))
    assert not missing, f"{alert['alert']} lacks the annotations {sorted(missing)}"


@pytest.mark.parametrize("alert", alerts(), ids=lambda a: a["alert"])
def test_every_alert_is_unit_tested_firing_and_quiet(alert: dict[str, Any]) -> None:
    cases = [
        case
        for doc in RULE_TEST_DOCS.values()
        for test in doc["tests"]
        for case in test.get("alert_rule_test", [])
        if case["alertname"] == alert["alert"]
    ]
    firing = [c for c in cases if c.get("exp_alerts")]
    quiet = [c for c in cases if not c.get("exp_alerts")]
    assert firing and quiet, (
        f"{alert['alert']}: expected at least one firing and one quiet case in "
        f"{[p.name for p in RULE_TESTS]}, "
        f"found {len(firing)} firing and {len(quiet)} quiet"
    )


def test_the_rule_tests_evaluate_recording_rules_before_the_alerts() -> None:
    """Without group_eval_order promtool evaluates the groups in a random order, and an alert's
    {{ $value }} is sometimes the recorded value of the step before: a flaky test."""
    groups = [g["name"] for path in RULES for g in yaml.safe_load(path.read_text())["groups"]]
    recording = [
        g["name"]
        for path in RULES
        for g in yaml.safe_load(path.read_text())["groups"]
        if all("record" in r for r in g["rules"])
    ]
    for path, doc in RULE_TEST_DOCS.items():
        order = doc.get("group_eval_order", [])
        assert sorted(order) == sorted(groups), f"{path.name}: group_eval_order {order}, groups {groups}"
        assert order[: len(recording)] == recording, f"{path.name}: {recording} should come first in {order}"
