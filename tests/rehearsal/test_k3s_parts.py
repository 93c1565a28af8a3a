"""The parts K3s bundles that CA4's manifests rely on, working on the rehearsal cluster:
local-path storage, and (below) network policies and Traefik."""

from __future__ import annotations

import json
import socket
import ssl
import uuid

from local_stack.config import free_port
from rehearsal import bastion
from rehearsal.cluster import Cluster
from tests.rehearsal.pods import http_get, httpd_pod, run_pod


def test_local_path_is_the_default_class_and_keeps_data_across_pods(cluster: Cluster) -> None:
    classes = json.loads(cluster.kubectl("get", "storageclass", "-o", "json").stdout)["items"]
    default = [
        c["metadata"]["name"]
        for c in classes
        if c["metadata"].get("annotations", {}).get("storageclass.kubernetes.io/is-default-class") == "true"
    ]
    assert default == ["local-path"], f"default StorageClass(es): {default}"
    claim = f"data-{uuid.uuid4().hex[:6]}"
    pvc = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": claim, "namespace": "default"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "16Mi"}}},
    }
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(pvc))
    volume = [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]
    mounts = [{"name": "data", "mountPath": "/data"}]
    try:
        phase, log = run_pod(
            cluster, "echo kept-$HOSTNAME > /data/note && cat /data/note", volumes=volume, mounts=mounts
        )
        assert phase == "Succeeded", f"writing to the claim {claim}: {phase}\n{log}"
        bound = cluster.kubectl("get", "pvc", claim, "-o", "jsonpath={.status.phase}").stdout
        assert bound == "Bound", f"PVC {claim} is {bound}, expected Bound (class local-path)"
        phase, second = run_pod(cluster, "cat /data/note", volumes=volume, mounts=mounts)
        assert phase == "Succeeded" and second.strip() == log.strip(), (
            f"the second pod read {second!r} from {claim}, the first wrote {log!r}"
        )
    finally:
        cluster.kubectl("delete", "pvc", claim, "--wait=false", check=False)


def _server(cluster: Cluster, namespace: str) -> str:
    """An HTTP pod (app=server) in a new namespace; returns its pod IP."""
    manifest = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
            httpd_pod(cluster.images["busybox"].ref, "server", namespace, {"app": "server"}, "policy-ok"),
        ],
    }
    namespace_object, pod = manifest["items"]
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(namespace_object))
    # pods are refused until the controller-manager made the namespace's default ServiceAccount
    cluster.wait(
        f"the default ServiceAccount of {namespace}",
        lambda: cluster.kubectl("-n", namespace, "get", "sa", "default", check=False).returncode == 0,
        timeout=60,
    )
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(pod))
    cluster.kubectl("-n", namespace, "wait", "--for=condition=Ready", "pod/server", "--timeout=90s")
    return cluster.kubectl("-n", namespace, "get", "pod", "server", "-o", "jsonpath={.status.podIP}").stdout


def _get(cluster: Cluster, namespace: str, ip: str, role: str) -> tuple[str, str]:
    return run_pod(cluster, http_get(ip, 8080), namespace=namespace, labels={"role": role})


def test_network_policies_are_enforced(cluster: Cluster) -> None:
    """Default deny really blocks a pod-to-pod connection; an allow rule really lets one through."""
    namespace = f"np-{uuid.uuid4().hex[:6]}"
    ip = _server(cluster, namespace)
    try:
        phase, log = _get(cluster, namespace, ip, "other")
        assert phase == "Succeeded" and "policy-ok" in log, f"without a policy the server must answer: {log}"
        deny = {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "default-deny", "namespace": namespace},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
        }
        cluster.kubectl("apply", "-f", "-", stdin=json.dumps(deny))
        cluster.wait(
            f"default-deny enforced in {namespace}",
            lambda: _get(cluster, namespace, ip, "other")[0] == "Failed",
            timeout=60,
        )
        allow = {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "allow-clients", "namespace": namespace},
            "spec": {
                "podSelector": {"matchLabels": {"app": "server"}},
                "ingress": [
                    {
                        "from": [{"podSelector": {"matchLabels": {"role": "client"}}}],
                        "ports": [{"port": 8080}],
                    }
                ],
            },
        }
        cluster.kubectl("apply", "-f", "-", stdin=json.dumps(allow))
        cluster.wait(
            f"allow-clients letting role=client through in {namespace}",
            lambda: "policy-ok" in _get(cluster, namespace, ip, "client")[1],
            timeout=60,
        )
        phase, log = _get(cluster, namespace, ip, "other")
        assert phase == "Failed", f"a pod without role=client got through the default deny: {log}"
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def test_an_ingress_routes_https_through_traefik_to_a_pod(cluster: Cluster) -> None:
    """As the load balancer reaches the API on AWS: HTTPS to a node's port 443 (here through an
    SSH tunnel via the bastion), Traefik's websecure entrypoint, an Ingress of class traefik."""
    namespace = f"ing-{uuid.uuid4().hex[:6]}"
    _server(cluster, namespace)
    objects = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "server", "namespace": namespace},
                "spec": {
                    "selector": {"app": "server"},
                    "ports": [{"name": "http", "port": 80, "targetPort": 8080}],
                },
            },
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "Ingress",
                "metadata": {
                    "name": "server",
                    "namespace": namespace,
                    "annotations": {
                        "traefik.ingress.kubernetes.io/router.entrypoints": "websecure",
                        "traefik.ingress.kubernetes.io/router.tls": "true",
                    },
                },
                "spec": {
                    "ingressClassName": "traefik",
                    "rules": [
                        {
                            "host": f"{namespace}.rehearsal.test",
                            "http": {
                                "paths": [
                                    {
                                        "path": "/",
                                        "pathType": "Prefix",
                                        "backend": {"service": {"name": "server", "port": {"name": "http"}}},
                                    }
                                ]
                            },
                        }
                    ],
                },
            },
        ],
    }
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(objects))
    port = free_port()
    node = cluster.topology.nodes[-1]
    try:
        bastion.tunnel(cluster, "test-https-tunnel", port, f"{node.addr}:443")
        cluster.wait(
            f"https://{namespace}.rehearsal.test/ through Traefik on {node.name}:443",
            lambda: _https_get(port, f"{namespace}.rehearsal.test") == (200, "policy-ok"),
            timeout=60,
        )
        assert _https_get(port, "unknown.rehearsal.test")[0] == 404, "a host no Ingress names must get 404"
    finally:
        cluster.proc("test-https-tunnel").stop()
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def _https_get(port: int, host: str) -> tuple[int, str]:
    """GET / over TLS (Traefik's default certificate: not verified) with ``host`` as SNI and Host."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        tls.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := tls.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode(errors="replace").strip()
