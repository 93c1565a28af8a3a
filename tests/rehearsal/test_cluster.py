"""The rehearsal cluster is a real Kubernetes at the K3s pin's patch: nodes Ready, pods run,
Services and cluster DNS work."""

from __future__ import annotations

import json

import pytest

from rehearsal.cluster import Cluster
from rehearsal.pins import pins
from rehearsal.topology import API_SERVICE_IP
from tests.rehearsal.pods import http_get, httpd_pod, run_pod


def test_every_node_is_ready_at_the_k3s_pins_kubernetes(cluster: Cluster) -> None:
    expected = pins().kubernetes
    assert pins().k3s.startswith(expected + "+k3s"), f"{expected} is not the patch of {pins().k3s}"
    server = json.loads(cluster.kubectl("version", "-o", "json").stdout)["serverVersion"]["gitVersion"]
    assert server == expected, f"the API server reports {server}, the K3s pin says {expected}"
    nodes = json.loads(cluster.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    assert len(nodes) == cluster.topology.count, [n["metadata"]["name"] for n in nodes]
    for node in nodes:
        name, info = node["metadata"]["name"], node["status"]["nodeInfo"]
        assert cluster.node_ready(name), f"node {name} is not Ready: {node['status']['conditions']}"
        assert info["kubeletVersion"] == expected, f"node {name} runs kubelet {info['kubeletVersion']}"
        assert info["containerRuntimeVersion"].startswith("containerd://"), info


def test_service_dns_resolves_inside_a_pod(cluster: Cluster) -> None:
    phase, log = run_pod(cluster, "busybox nslookup kubernetes.default.svc.cluster.local")
    assert phase == "Succeeded", f"nslookup in a pod: {phase}\n{log}"
    assert f"Address: {API_SERVICE_IP}" in log, (
        f"kubernetes.default did not resolve to {API_SERVICE_IP}:\n{log}"
    )


def test_a_pod_reaches_another_through_its_service(cluster: Cluster) -> None:
    """The server on the last node, the client on the first: with more than one node
    (CA4_REHEARSAL_NODES) the request crosses the nodes' network."""
    first, last = cluster.topology.nodes[0].name, cluster.topology.nodes[-1].name
    server = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            httpd_pod(
                cluster.images["busybox"].ref, "echo", "default", {"app": "echo"}, "rehearsal-ok", node=last
            ),
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "echo", "namespace": "default"},
                "spec": {"selector": {"app": "echo"}, "ports": [{"port": 80, "targetPort": 8080}]},
            },
        ],
    }
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(server))
    try:
        cluster.kubectl("wait", "--for=condition=Ready", "pod/echo", "--timeout=90s")
        # kube-proxy programs the Service a moment after the endpoint is ready: bounded retries
        answers: list[tuple[str, str]] = []
        get = http_get("echo.default.svc.cluster.local", 80)

        def answered() -> bool:
            answers.append(run_pod(cluster, get, nodeName=first))
            return "rehearsal-ok" in answers[-1][1]

        cluster.wait(
            "GET http://echo.default.svc.cluster.local/ from a pod on the first node", answered, timeout=60
        )
        assert answers[-1][0] == "Succeeded", f"GET the echo Service: {answers[-1]}"
    finally:
        cluster.kubectl("delete", "pod,service", "echo", "--wait=false", check=False)


@pytest.mark.timeout(1200)  # cold: debootstrap and the image's dependencies from PyPI, a few minutes
def test_the_projects_image_runs_in_a_pod(cluster: Cluster) -> None:
    """The Dockerfile built for real (buildah, a debootstrap Debian 12 base as BASE_IMAGE),
    imported into the nodes' containerd, runs `ca4-api --help` as uid 10001."""
    image = cluster.project_image()
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "ca4-image-help", "namespace": "default"},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "api",
                    "image": image.ref,
                    "imagePullPolicy": "Never",
                    "command": ["sh", "-c", "id -u && ca4-api --help"],
                }
            ],
        },
    }
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(pod))
    try:
        cluster.wait(
            "the ca4-api --help pod to finish",
            lambda: (
                cluster.kubectl("get", "pod", "ca4-image-help", "-o", "jsonpath={.status.phase}").stdout
                in ("Succeeded", "Failed")
            ),
            timeout=120,
        )
        phase = cluster.kubectl("get", "pod", "ca4-image-help", "-o", "jsonpath={.status.phase}").stdout
        log = cluster.kubectl("logs", "ca4-image-help").stdout
        assert phase == "Succeeded", f"ca4-api --help in {image.ref}: {phase}\n{log}"
        assert "API_TOKENS" in log, f"ca4-api --help did not list its settings:\n{log}"
        assert log.splitlines()[0] == "10001", (
            f"the image runs as {log.splitlines()[0]}, the manifests say 10001"
        )
    finally:
        cluster.kubectl("delete", "pod", "ca4-image-help", "--wait=false", check=False)
