"""The dashboard JSON as Grafana's file provisioning will read it (no Grafana needed).

Their queries are proven against a real Prometheus in tests/integration/test_dashboards.py;
here: the shape that makes provisioning work at all.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.kube import Obj, find, pod_spec
from tests.monitoring import grafana

BOARDS = grafana.dashboards()
REQUIRED_TITLES = {"ca4-pipeline": "CA4 pipeline", "ca4-fleet": "CA4 accelerator fleet"}
BUILTIN_VARIABLES = {
    "__rate_interval",
    "__interval",
    "__range",
    "__interval_ms",
    "__range_s",
    "__from",
    "__to",
}


def test_the_two_dashboards_exist_with_their_titles() -> None:
    found = {board["uid"]: board["title"] for board in BOARDS.values()}
    assert found == REQUIRED_TITLES, f"dashboards in {grafana.DASHBOARD_DIR}: {found}"


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_no_import_inputs_are_left(name: str) -> None:
    """An exported dashboard's ${DS_...} inputs fail when provisioned from a file."""
    board = BOARDS[name]
    text = (grafana.DASHBOARD_DIR / name).read_text()
    assert "__inputs" not in board and "__requires" not in board, f"{name} still has import sections"
    assert "${DS_" not in text and "$DS_" not in text, f"{name} refers to a ${{DS_...}} import input"
    assert board.get("id") is None, f"{name}: a fixed numeric id clashes across Grafana instances; use uid"


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_every_datasource_is_a_provisioned_uid(name: str) -> None:
    provisioned = grafana.datasource_uids()
    allowed = {(kind, uid) for kind, uid in provisioned.items()} | {("grafana", "-- Grafana --")}
    wrong = []

    def check(where: str, ds: Any) -> None:
        if not isinstance(ds, dict) or (ds.get("type"), ds.get("uid")) not in allowed:
            wrong.append(f"{where}: {ds!r}")

    board = BOARDS[name]
    for panel in grafana.all_panels(board["panels"]):
        if panel["type"] == "row":
            continue
        check(f"panel {panel['id']} {panel['title']!r}", panel.get("datasource"))
        for target in panel.get("targets", []):
            check(f"panel {panel['id']} target {target.get('refId')}", target.get("datasource"))
    for var in board["templating"]["list"]:
        if var["type"] == "query":
            check(f"variable {var['name']}", var.get("datasource"))
    for annotation in board["annotations"]["list"]:
        check(f"annotation {annotation['name']}", annotation.get("datasource"))
    assert not wrong, f"{name}: datasources other than the provisioned {provisioned}:\n  " + "\n  ".join(
        wrong
    )


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_panel_ids_are_unique_and_the_layout_fits(name: str) -> None:
    panels = list(grafana.all_panels(BOARDS[name]["panels"]))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), (
        f"{name}: duplicate panel ids {sorted(i for i in ids if ids.count(i) > 1)}"
    )
    titles = [p["title"] for p in panels if p["type"] != "row"]
    assert len(titles) == len(set(titles)), f"{name}: duplicate panel titles (the tests name panels by title)"
    cells: dict[tuple[int, int], str] = {}
    for panel in panels:
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, (
            f"{name}: {panel['title']!r} is wider than the grid"
        )
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{name}: {panel['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = panel["title"]


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_every_variable_used_is_defined_and_has_a_test_value(name: str) -> None:
    board = BOARDS[name]
    defined = {var["name"] for var in board["templating"]["list"]}
    for panel in grafana.all_panels(board["panels"]):
        for target in panel.get("targets", []):
            used = grafana.variables_used(target.get("expr", ""))
            assert used <= defined | BUILTIN_VARIABLES, (
                f"{name}: {panel['title']!r} uses undefined variables "
                f"{sorted(used - defined - BUILTIN_VARIABLES)}"
            )
            if target.get("datasource", {}).get("type") == "prometheus":
                grafana.expand(target["expr"])  # raises naming a variable the live proof cannot expand


def test_the_cluster_only_list_names_existing_panels() -> None:
    panels = {p.key for p in grafana.query_panels()}
    stale = set(grafana.CLUSTER_ONLY) - panels
    assert not stale, f"grafana.CLUSTER_ONLY lists panels no dashboard has: {sorted(stale)}"


def test_grafana_reads_the_dashboards_from_where_they_are_mounted(built: list[Obj]) -> None:
    providers = yaml.safe_load((grafana.MONITORING / "grafana/provisioning/dashboards/ca4.yaml").read_text())
    (provider,) = providers["providers"]
    pod = pod_spec(find(built, "Deployment", "grafana"))
    mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}
    path = provider["options"]["path"]
    assert path in mounts, f"the provider reads {path}; Grafana mounts {sorted(mounts)}"
    volume = next(v for v in pod["volumes"] if v["name"] == mounts[path])
    configmap = find(built, "ConfigMap", volume["configMap"]["name"])
    assert set(configmap.body["data"]) == set(BOARDS), (
        f"{configmap.ref} holds {sorted(configmap.body['data'])}"
    )


def test_the_datasource_interval_matches_the_scrape_interval() -> None:
    """$__rate_interval is derived from timeInterval; a mismatch gives windows with too few samples."""
    config = yaml.safe_load((grafana.MONITORING / "prometheus/config/prometheus.yml").read_text())
    datasources = yaml.safe_load(grafana.DATASOURCES_FILE.read_text())["datasources"]
    prom = next(d for d in datasources if d["type"] == "prometheus")
    assert prom["jsonData"]["timeInterval"] == config["global"]["scrape_interval"]
    assert prom["url"] == "http://prometheus.monitoring.svc.cluster.local:9090"
