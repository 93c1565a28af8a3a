"""manifests/monitoring as `kubectl apply -k` sends it: valid for the pinned K3s, the house
rules of STYLE.md (labels, pinned images, non-root, read-only root, limits, probes on named
ports; tests/kube.py, shared with tests/k8s), Pod Security "restricted", and what ties the
objects to each other (volumes, NodePorts, scrape ports)."""

from __future__ import annotations

from tests.kube import (
    CLUSTER_SCOPED,
    Obj,
    find,
    house_rule_problems,
    pins,
    pod_spec,
    restricted_problems,
    validate,
    workloads,
)


def test_every_object_is_valid_for_the_pinned_kubernetes(built: list[Obj]) -> None:
    problems = validate(built)
    assert not problems, "invalid for the pinned Kubernetes:\n  " + "\n  ".join(problems)


def test_everything_is_namespaced_in_monitoring(built: list[Obj]) -> None:
    for obj in built:
        if obj.kind not in CLUSTER_SCOPED:
            assert obj.namespace == "monitoring", f"{obj.ref} is not in namespace monitoring"
        else:
            assert obj.name.startswith("ca4-"), f"{obj.ref}: cluster-wide names carry the ca4 prefix"
    assert not [o for o in built if o.kind == "Namespace"], (
        "namespace monitoring belongs to manifests/platform"
    )


def test_everything_follows_the_house_rules(built: list[Obj]) -> None:
    """Labels, non-root with RuntimeDefault seccomp, no service links, a token only for the
    API's clients (Prometheus, Alloy), no escalation, read-only root, every capability dropped,
    requests and limits, release-pinned images, readiness and liveness on named ports."""
    assert workloads(built), "no workload in manifests/monitoring"
    problems = house_rule_problems(built)
    assert not problems, "\n".join(problems)


def test_every_pod_meets_pod_security_restricted(built: list[Obj]) -> None:
    """Namespace monitoring enforces "restricted" (manifests/platform/namespaces.yaml): no
    hostPath, host namespaces, privileges or added capabilities."""
    problems = [p for obj in workloads(built) for p in restricted_problems(obj)]
    assert not problems, "\n".join(problems)


def test_volumes_refer_to_objects_in_the_build(built: list[Obj]) -> None:
    names = {(o.kind, o.name) for o in built}
    for obj in workloads(built):
        pod = pod_spec(obj)
        for volume in pod.get("volumes", []):
            if "configMap" in volume:
                assert ("ConfigMap", volume["configMap"]["name"]) in names, f"{obj.ref}: {volume}"
            if "persistentVolumeClaim" in volume:
                claim = volume["persistentVolumeClaim"]["claimName"]
                assert ("PersistentVolumeClaim", claim) in names, obj.ref
        for c in pod["containers"]:
            for env in c.get("env", []):
                secret = env.get("valueFrom", {}).get("secretKeyRef")
                if secret:  # rendered by scripts/deploy_monitoring_ca4.sh, never in git
                    assert secret["name"] == "grafana-admin", f"{obj.ref}: unexpected Secret {secret}"
    for claim in [o for o in built if o.kind == "PersistentVolumeClaim"]:
        assert claim.body["spec"]["storageClassName"] == "local-path", f"{claim.ref}: K3s's local-path"


def test_the_tunnel_services_use_the_agreed_node_ports(built: list[Obj]) -> None:
    """scripts/tunnels_ca4.sh forwards to these NodePorts on edge node 0 (scripts/lib/pins.sh)."""
    expected = {
        "grafana": (3000, int(pins()["CA4_GRAFANA_NODE_PORT"])),
        "prometheus": (9090, int(pins()["CA4_PROMETHEUS_NODE_PORT"])),
    }
    for name, (port, node_port) in expected.items():
        service = find(built, "Service", name).body
        (spec_port,) = service["spec"]["ports"]
        assert service["spec"]["type"] == "NodePort", f"Service {name}: type {service['spec']['type']}"
        assert (spec_port["port"], spec_port.get("nodePort")) == (port, node_port), (
            f"Service {name}: {spec_port}"
        )


def test_scraped_pods_announce_a_port_they_open(built: list[Obj]) -> None:
    for obj in workloads(built):
        annotations = obj.body["spec"]["template"]["metadata"].get("annotations", {})
        if annotations.get("prometheus.io/scrape") != "true":
            continue
        ports = {p["containerPort"] for c in pod_spec(obj)["containers"] for p in c.get("ports", [])}
        assert int(annotations["prometheus.io/port"]) in ports, f"{obj.ref}: scrape port not opened"


def test_replaced_configmaps_stay_few(built: list[Obj]) -> None:
    """deploy_monitoring_ca4.sh keeps the content-named ConfigMaps that the kept ReplicaSets
    mount (so `kubectl rollout undo` works): a small history bounds how many stay."""
    for obj in (o for o in built if o.kind == "Deployment"):
        limit = obj.body["spec"].get("revisionHistoryLimit")
        assert limit is not None and 1 <= limit <= 5, f"{obj.ref}: revisionHistoryLimit {limit} (default 10)"
