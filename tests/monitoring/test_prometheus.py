"""The cluster's Prometheus configuration and rules, checked by the promtools that read them."""

from __future__ import annotations

import glob
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from local_stack import prometheus as local_prometheus
from tests.monitoring.conftest import BUILD_TIMEOUT_S
from tests.monitoring.grafana import MONITORING

PROM_DIR = MONITORING / "prometheus"
CONFIG = PROM_DIR / "config" / "prometheus.yml"
RULES = sorted((PROM_DIR / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROM_DIR / "tests").glob("*.test.yml"))
SEVERITIES = {"critical", "warning"}
# the first use of the cluster's promtool builds it (minutes, once per machine): the session's
# 300 s per-test timeout (pyproject.toml) covers fixture setup too
BUILDS_PROMTOOL = pytest.mark.timeout(BUILD_TIMEOUT_S + 120)


def promtool(binary: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run promtool; the result with its output."""
    return subprocess.run([binary, *map(str, args)], check=False, capture_output=True, text=True, timeout=120)


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


def test_the_api_and_worker_jobs_carry_the_local_stacks_job_names() -> None:
    """Dashboards select on job; the local proof is only valid if the cluster's jobs are named alike."""
    jobs = {job["job_name"]: job for job in yaml.safe_load(CONFIG.read_text())["scrape_configs"]}
    for name in (local_prometheus.JOB_API, local_prometheus.JOB_WORKER):
        assert name in jobs, f"no scrape job {name!r} in {CONFIG}; jobs: {sorted(jobs)}"
        keep = jobs[name]["relabel_configs"][0]
        assert keep == {
            "source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_name"],
            "regex": name,
            "action": "keep",
        }, f"job {name} must select pods labelled app.kubernetes.io/name={name}; first rule: {keep}"
        assert jobs[name]["kubernetes_sd_configs"] == [{"role": "pod", "namespaces": {"names": ["app"]}}]


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
        for path in RULE_TESTS
        for test in yaml.safe_load(path.read_text())["tests"]
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
