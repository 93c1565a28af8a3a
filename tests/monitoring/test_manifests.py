"""manifests/monitoring as `kubectl apply -k` sends it: valid for the pinned K3s, and the
house rules of STYLE.md (labels, pinned images, non-root, read-only root, limits, probes on
named ports, local-path volumes) that a schema cannot express."""

from __future__ import annotations

import re
from typing import Any

import kubernetes_validate
import pytest

from tests.monitoring.conftest import pins

LABELS = ("app.kubernetes.io/name", "app.kubernetes.io/component", "app.kubernetes.io/part-of")
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet")


def k8s_version() -> str:
    """The Kubernetes release inside the pinned K3s (v1.34.3+k3s3 -> 1.34.3)."""
    match = re.fullmatch(r"v(\d+\.\d+\.\d+)\+k3s\d+", pins()["CA4_K3S_VERSION_PINNED"])
    assert match, f"CA4_K3S_VERSION_PINNED is not a K3s tag: {pins()['CA4_K3S_VERSION_PINNED']}"
    return match.group(1)


def ref(obj: dict[str, Any]) -> str:
    """``Kind namespace/name`` for messages."""
    meta = obj["metadata"]
    return f"{obj['kind']} {meta.get('namespace', '')}/{meta['name']}"


def pods(rendered: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(reference, pod spec) of every workload."""
    return [(ref(o), o["spec"]["template"]["spec"]) for o in rendered if o["kind"] in WORKLOADS]


def test_every_object_is_valid_for_the_pinned_kubernetes(rendered: list[dict[str, Any]]) -> None:
    problems = []
    for obj in rendered:
        try:
            kubernetes_validate.validate(obj, k8s_version(), strict=True)
        except kubernetes_validate.ValidationError as exc:
            problems.append(f"{ref(obj)}: {exc.message} at {'/'.join(map(str, exc.path))}")
    assert not problems, f"invalid for Kubernetes {k8s_version()}:\n  " + "\n  ".join(problems)


def test_everything_is_labelled_and_namespaced(rendered: list[dict[str, Any]]) -> None:
    for obj in rendered:
        labels = obj["metadata"].get("labels", {})
        missing = [label for label in LABELS if not labels.get(label)]
        assert not missing, f"{ref(obj)} lacks labels {missing}"
        assert labels["app.kubernetes.io/part-of"] == "ca4", f"{ref(obj)} is not part-of ca4"
        if obj["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            assert obj["metadata"].get("namespace") == "monitoring", (
                f"{ref(obj)} is not in namespace monitoring"
            )
        else:
            assert obj["metadata"]["name"].startswith("ca4-"), (
                f"{ref(obj)}: cluster-wide names carry the ca4 prefix"
            )
    assert not [o for o in rendered if o["kind"] == "Namespace"], (
        "namespace monitoring belongs to manifests/platform"
    )


@pytest.mark.parametrize("check", ["images", "security", "resources", "probes"])
def test_every_container_follows_the_house_rules(rendered: list[dict[str, Any]], check: str) -> None:
    for where, pod in pods(rendered):
        assert pod["securityContext"].get("runAsNonRoot") is True, f"{where}: runAsNonRoot"
        assert pod["securityContext"].get("seccompProfile", {}).get("type") == "RuntimeDefault", (
            f"{where}: seccomp"
        )
        assert pod.get("enableServiceLinks") is False, f"{where}: enableServiceLinks"
        assert not [v for v in pod.get("volumes", []) if "hostPath" in v], (
            f"{where}: no hostPath (Pod Security restricted)"
        )
        for c in pod["containers"]:
            name = f"{where} container {c['name']}"
            if check == "images":
                assert re.fullmatch(r"[\w./-]+:v?\d+\.\d+\.\d+", c["image"]), (
                    f"{name}: image not pinned: {c['image']}"
                )
            elif check == "security":
                sc = c["securityContext"]
                assert sc.get("allowPrivilegeEscalation") is False, f"{name}: allowPrivilegeEscalation"
                assert sc.get("readOnlyRootFilesystem") is True, f"{name}: readOnlyRootFilesystem"
                assert sc.get("capabilities", {}).get("drop") == ["ALL"], f"{name}: capabilities.drop ALL"
            elif check == "resources":
                for kind in ("requests", "limits"):
                    assert {"cpu", "memory"} <= set(c["resources"].get(kind, {})), f"{name}: {kind}"
            else:
                ports = {p["name"] for p in c.get("ports", [])}
                for probe in ("readinessProbe", "livenessProbe"):
                    spec = c.get(probe)
                    assert spec, f"{name}: no {probe}"
                    port = (spec.get("httpGet") or spec.get("tcpSocket") or {}).get("port")
                    assert port in ports, f"{name}: {probe} on {port!r}, not one of its named ports {ports}"


def test_volumes_refer_to_objects_in_the_build(rendered: list[dict[str, Any]]) -> None:
    names = {(o["kind"], o["metadata"]["name"]) for o in rendered}
    for where, pod in pods(rendered):
        for volume in pod.get("volumes", []):
            if "configMap" in volume:
                assert ("ConfigMap", volume["configMap"]["name"]) in names, f"{where}: {volume}"
            if "persistentVolumeClaim" in volume:
                assert ("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"]) in names, where
        for c in pod["containers"]:
            for env in c.get("env", []):
                secret = env.get("valueFrom", {}).get("secretKeyRef")
                if secret:  # rendered by scripts/deploy_monitoring_ca4.sh, never in git
                    assert secret["name"] == "grafana-admin", f"{where}: unexpected Secret {secret}"
    for claim in [o for o in rendered if o["kind"] == "PersistentVolumeClaim"]:
        assert claim["spec"]["storageClassName"] == "local-path", f"{ref(claim)}: K3s's local-path"


def test_the_tunnel_services_use_the_agreed_node_ports(rendered: list[dict[str, Any]]) -> None:
    """scripts/tunnels_ca4.sh forwards to these NodePorts on edge node 0 (scripts/lib/pins.sh)."""
    expected = {
        "grafana": (3000, int(pins()["CA4_GRAFANA_NODE_PORT"])),
        "prometheus": (9090, int(pins()["CA4_PROMETHEUS_NODE_PORT"])),
    }
    for name, (port, node_port) in expected.items():
        service = next(o for o in rendered if o["kind"] == "Service" and o["metadata"]["name"] == name)
        (spec_port,) = service["spec"]["ports"]
        assert service["spec"]["type"] == "NodePort", f"Service {name}: type {service['spec']['type']}"
        assert (spec_port["port"], spec_port.get("nodePort")) == (port, node_port), (
            f"Service {name}: {spec_port}"
        )


def test_scraped_pods_announce_a_port_they_open(rendered: list[dict[str, Any]]) -> None:
    for obj in (o for o in rendered if o["kind"] in WORKLOADS):
        annotations = obj["spec"]["template"]["metadata"].get("annotations", {})
        if annotations.get("prometheus.io/scrape") != "true":
            continue
        ports = {
            p["containerPort"]
            for c in obj["spec"]["template"]["spec"]["containers"]
            for p in c.get("ports", [])
        }
        assert int(annotations["prometheus.io/port"]) in ports, f"{ref(obj)}: scrape port not opened"
