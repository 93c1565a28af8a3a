"""Loki's configuration and Grafana Alloy's, as far as their formats can be checked offline.

Neither Loki nor Alloy can run here. Loki's config is YAML whose rules for a single binary
on a filesystem are checked below (the ones Loki 3 refuses to start without, and the ones
that tie it to its Deployment); Alloy's is parsed by tests/monitoring/alloy_syntax.py and its
components are checked for their required arguments and their references to each other.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
import yaml

from tests.kube import Obj, find, pod_spec
from tests.monitoring import alloy_syntax, grafana
from tests.monitoring.alloy_syntax import Block
from tests.monitoring.grafana import MONITORING, datasource_uids

LOKI_CONFIG = MONITORING / "loki" / "loki-config.yaml"
ALLOY_CONFIG = MONITORING / "alloy" / "config.alloy"

# Loki 3's top-level configuration blocks (docs: configure/#supported-contents-and-default-values)
LOKI_TOP_LEVEL = {
    "target", "auth_enabled", "ballast_bytes", "server", "distributor", "querier", "query_scheduler",
    "frontend", "query_range", "ruler", "ingester_client", "ingester", "pattern_ingester",
    "index_gateway", "bloom_build", "bloom_gateway", "storage_config", "chunk_store_config",
    "schema_config", "compactor", "limits_config", "frontend_worker", "table_manager", "memberlist",
    "runtime_config", "operational_config", "tracing", "analytics", "common", "shutdown_delay",
    "metrics_namespace", "kafka_config", "dataobj", "ui",
}  # fmt: skip

# The components config.alloy may use, and what each exports (Alloy's component reference)
ALLOY_EXPORTS = {
    "discovery.kubernetes": {"targets"},
    "discovery.relabel": {"output", "rules"},
    "loki.source.kubernetes": set(),
    "loki.process": {"receiver"},
    "loki.write": {"receiver"},
}
ALLOY_REQUIRED = {
    "discovery.kubernetes": {"role"},
    "discovery.relabel": {"targets"},
    "loki.source.kubernetes": {"targets", "forward_to"},
    "loki.process": {"forward_to"},
    "loki.write": set(),
}


def loki() -> dict[str, Any]:
    """The Loki configuration."""
    return dict(yaml.safe_load(LOKI_CONFIG.read_text()))


def paths_in(value: Any) -> list[str]:
    """Every absolute filesystem path in a config value."""
    if isinstance(value, dict):
        return [p for v in value.values() for p in paths_in(v)]
    if isinstance(value, list):
        return [p for v in value for p in paths_in(v)]
    return [value] if isinstance(value, str) and value.startswith("/") else []


# --- Loki ---------------------------------------------------------------------------------


def test_loki_config_has_only_known_blocks() -> None:
    unknown = set(loki()) - LOKI_TOP_LEVEL
    assert not unknown, f"{LOKI_CONFIG.name}: blocks Loki 3 does not know: {sorted(unknown)}"


def test_loki_schema_is_the_current_one() -> None:
    """Loki 3 refuses to start without schema_config; v13 with the tsdb index is the current one."""
    configs = loki()["schema_config"]["configs"]
    assert configs, "schema_config.configs is empty"
    for entry in configs:
        assert (entry["store"], entry["schema"], entry["object_store"]) == ("tsdb", "v13", "filesystem"), (
            f"schema entry {entry}: expected store tsdb, schema v13, object_store filesystem"
        )
        assert entry["index"]["period"] == "24h", f"tsdb needs a 24h index period, found {entry['index']}"
        assert dt.date.fromisoformat(entry["from"]) <= dt.date.today(), (
            f"schema starts in the future: {entry}"
        )


def test_loki_is_a_single_binary_with_retention_it_can_apply() -> None:
    cfg = loki()
    assert cfg["auth_enabled"] is False, "one tenant: Grafana and Alloy send no X-Scope-OrgID"
    assert cfg["common"]["replication_factor"] == 1
    assert cfg["common"]["ring"]["kvstore"]["store"] == "inmemory", "no memberlist: one replica"
    compactor = cfg["compactor"]
    assert compactor["retention_enabled"] is True and cfg["limits_config"]["retention_period"]
    assert compactor.get("delete_request_store") == "filesystem", (
        "Loki 3 refuses retention without compactor.delete_request_store"
    )


def test_loki_writes_only_to_its_volume_and_listens_where_its_service_points(built: list[Obj]) -> None:
    cfg = loki()
    pod = pod_spec(find(built, "Deployment", "loki"))
    (container,) = pod["containers"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    claims = {v["name"] for v in pod["volumes"] if "persistentVolumeClaim" in v}
    data_mounts = [path for path, name in mounts.items() if name in claims]
    assert data_mounts == ["/loki"], f"Loki's volume should be mounted at /loki, mounts: {mounts}"
    outside = [p for p in paths_in(cfg) if not p.startswith("/loki/") and p != "/loki"]
    assert not outside, f"paths outside the volume (the root filesystem is read-only): {outside}"
    config_arg = next(a for a in container["args"] if a.startswith("-config.file="))
    path = config_arg.split("=", 1)[1]
    configmap = next(
        v["configMap"]["name"] for v in pod["volumes"] if v["name"] == mounts[path.rsplit("/", 1)[0]]
    )
    data = find(built, "ConfigMap", configmap).body["data"]
    assert yaml.safe_load(data[path.rsplit("/", 1)[1]]) == cfg, f"{path} in the pod is not {LOKI_CONFIG.name}"
    port = cfg["server"]["http_listen_port"]
    service = find(built, "Service", "loki")
    assert any(p["port"] == port for p in service.body["spec"]["ports"]), (
        f"Service loki does not expose {port}"
    )
    datasources = yaml.safe_load((MONITORING / "grafana/provisioning/datasources/ca4.yaml").read_text())
    url = next(d["url"] for d in datasources["datasources"] if d["uid"] == datasource_uids()["loki"])
    assert url == f"http://loki.monitoring.svc.cluster.local:{port}", (
        f"Grafana's Loki datasource points at {url}"
    )


# --- Alloy --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def components() -> dict[str, Block]:
    """``{"loki.write.loki": block}`` for every component in config.alloy."""
    blocks = alloy_syntax.parse(ALLOY_CONFIG.read_text())
    out = {}
    for block in blocks:
        assert block.label, f"line {block.line}: component {block.name} needs a label"
        key = f"{block.name}.{block.label}"
        assert key not in out, f"line {block.line}: {key} declared twice"
        out[key] = block
    return out


def test_the_alloy_parser_rejects_what_alloy_rejects() -> None:
    """The reader is only a check if it fails on broken input."""
    for broken in (
        'loki.write "x" {\n  endpoint {\n',
        'a "b" { c = [1, 2 }\n',
        'a "b" { c = "x\n}\n',
        "x = 1\n",
    ):
        with pytest.raises(alloy_syntax.AlloySyntaxError):
            alloy_syntax.parse(broken)


def test_alloy_uses_known_components_with_their_required_arguments(components: dict[str, Block]) -> None:
    for key, block in components.items():
        assert block.name in ALLOY_EXPORTS, f"{key}: not a component this config is checked for"
        missing = ALLOY_REQUIRED[block.name] - set(block.attrs)
        assert not missing, f"{key} (line {block.line}) lacks required arguments {sorted(missing)}"
    writers = [b for b in components.values() if b.name == "loki.write"]
    assert writers and all(w.children("endpoint") for w in writers), "loki.write needs an endpoint block"


def test_alloy_references_point_at_declared_components(components: dict[str, Block]) -> None:
    def walk(block: Block) -> list[str]:
        found = [r for v in block.attrs.values() for r in alloy_syntax.refs(v)]
        return found + [r for child in block.blocks for r in walk(child)]

    for key, block in components.items():
        for ref in walk(block):
            target, _, export = ref.rpartition(".")
            assert target in components, f"{key} references {ref}, but {target} is not declared"
            exports = ALLOY_EXPORTS[components[target].name]
            assert export in exports, f"{key} references {ref}: {components[target].name} exports {exports}"


def test_alloy_ships_the_app_namespace_to_the_loki_service(components: dict[str, Block]) -> None:
    """Follow forward_to from each log source: every path must end in loki.write."""
    (discovery,) = [b for b in components.values() if b.name == "discovery.kubernetes"]
    namespaces = discovery.children("namespaces")[0].attrs["names"]
    assert "app" in namespaces, f"discovery.kubernetes watches {namespaces}: the pipeline's pods are in app"

    def ends(key: str, seen: frozenset[str] = frozenset()) -> set[str]:
        block = components[key]
        if block.name == "loki.write":
            return {key}
        assert key not in seen, f"forward_to loops through {key}"
        nexts = [r.rpartition(".")[0] for r in alloy_syntax.refs(block.attrs.get("forward_to", []))]
        assert nexts, f"{key} forwards nowhere"
        return set().union(*(ends(n, seen | {key}) for n in nexts))

    sources = [k for k, b in components.items() if b.name.startswith("loki.source.")]
    assert sources, "no log source in config.alloy"
    for source in sources:
        for writer in ends(source):
            url = components[writer].children("endpoint")[0].attrs["url"]
            assert url == "http://loki.monitoring.svc.cluster.local:3100/loki/api/v1/push", (
                f"{writer} pushes to {url}, not the loki Service of manifests/monitoring/loki"
            )


def test_alloy_keeps_event_ids_out_of_the_labels(components: dict[str, Block]) -> None:
    """Labels multiply streams: an event id as a label would make one stream per event."""
    text = ALLOY_CONFIG.read_text()
    labels = re.findall(r'target_label\s*=\s*"([^"]+)"', text)
    labels += [k for b in components.values() for s in b.blocks for st in s.children("stage.labels")
               for k in st.attrs["values"]]  # fmt: skip
    assert not [label for label in labels if "event" in label], f"event ids must stay in the line: {labels}"
    assert {"namespace", "app"} <= set(labels), (
        f"the documented LogQL needs namespace and app labels: {labels}"
    )


def alloy_labels(components: dict[str, Block]) -> set[str]:
    """Every stream label Alloy attaches: relabel targets, stage.labels, external_labels."""
    labels = set(re.findall(r'target_label\s*=\s*"([^"]+)"', ALLOY_CONFIG.read_text()))
    for block in components.values():
        labels |= set(block.attrs.get("external_labels", {}))
        for stage in block.blocks:
            for child in [stage, *stage.blocks]:
                if child.name == "stage.labels":
                    labels |= set(child.attrs["values"])
    return labels


def test_the_loki_panels_select_on_labels_alloy_sets(components: dict[str, Block]) -> None:
    """A stream selector on a label Alloy never sets matches nothing; a filter on `level`
    after `| json` parses every line for what is already a stream label."""
    known = alloy_labels(components)
    assert "level" in known, f"config.alloy should make the log level a label: {sorted(known)}"
    levels = {"debug", "info", "warning", "error", "critical"}  # ca4_events/jsonlog.py: levelname.lower()
    loki_panels = [
        (panel, target["expr"])
        for panel in grafana.query_panels()
        for target in panel.targets
        if panel.datasource_uid(target) == datasource_uids()["loki"]
    ]
    assert loki_panels, "no Loki panel found"
    for panel, expr in loki_panels:
        selector = re.match(r"\s*\{([^}]*)\}", expr)
        assert selector, f"{panel}: {expr!r} does not start with a stream selector"
        matchers = re.findall(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"', selector.group(1))
        unknown = {name for name, _, _ in matchers} - known
        assert not unknown, f"{panel}: selects on {sorted(unknown)}, which Alloy never sets ({sorted(known)})"
        for name, _, value in matchers:
            if name == "level":
                assert set(value.split("|")) <= levels, (
                    f"{panel}: levels {value!r}, the services log {levels}"
                )
        assert not re.search(r"\|\s*json\b.*\blevel\b", expr), (
            f"{panel}: filter on the level label, not on parsed JSON"
        )
