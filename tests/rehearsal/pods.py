"""Short-lived pods on the rehearsal cluster: run one, wait for it to finish, read its log."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from rehearsal.cluster import Cluster

POD_TIMEOUT_S = 90


def pod_manifest(
    image: str, name: str, script: str, namespace: str, labels: dict[str, str] | None = None
) -> dict[str, Any]:
    """A busybox pod running ``script`` once, as a non-root user, with nothing to pull."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "containers": [
                {
                    "name": "main",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "command": ["/bin/busybox", "sh", "-c", script],
                    "securityContext": {"runAsUser": 65534, "allowPrivilegeEscalation": False},
                }
            ],
        },
    }


def httpd_pod(
    image: str, name: str, namespace: str, labels: dict[str, str], body: str, *, node: str | None = None
) -> dict[str, Any]:
    """A busybox httpd on port 8080 serving ``body`` at /, ready once it listens."""
    script = (
        f"mkdir -p /tmp/www && echo {body} > /tmp/www/index.html && exec busybox httpd -f -p 8080 -h /tmp/www"
    )
    spec: dict[str, Any] = {
        "containers": [
            {
                "name": "httpd",
                "image": image,
                "imagePullPolicy": "Never",
                "command": ["/bin/busybox", "sh", "-c", script],
                "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
                "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
            }
        ],
        "volumes": [{"name": "tmp", "emptyDir": {}}],
    }
    if node:
        spec["nodeName"] = node
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": spec,
    }


def http_get(host: str, port: int, path: str = "/") -> str:
    """Shell for a busybox pod: GET ``path`` with nc, printing the answer; exits non-zero when
    the connection fails (5 s). Debian's static busybox ``wget`` crashes in a scratch image
    (glibc's static NSS), ``nc`` does not."""
    return f"printf 'GET {path} HTTP/1.0\\r\\nHost: {host}\\r\\n\\r\\n' | busybox nc -w 5 {host} {port}"


def run_pod(cluster: Cluster, script: str, namespace: str = "default", **extra: Any) -> tuple[str, str]:
    """Run ``script`` in a fresh busybox pod; ``(phase, log)`` once it ended (Succeeded/Failed)."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    manifest = pod_manifest(cluster.images["busybox"].ref, name, script, namespace, extra.pop("labels", None))
    if mounts := extra.pop("mounts", None):
        manifest["spec"]["containers"][0]["volumeMounts"] = mounts
    manifest["spec"].update(extra)
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(manifest))
    deadline = time.monotonic() + POD_TIMEOUT_S
    phase = ""
    while time.monotonic() < deadline:
        phase = cluster.kubectl("-n", namespace, "get", "pod", name, "-o", "jsonpath={.status.phase}").stdout
        if phase in ("Succeeded", "Failed"):
            break
        time.sleep(0.5)
    log = cluster.kubectl("-n", namespace, "logs", name, check=False).stdout
    cluster.kubectl("-n", namespace, "delete", "pod", name, "--wait=false", check=False)
    if phase not in ("Succeeded", "Failed"):
        described = cluster.kubectl("-n", namespace, "describe", "pod", name, check=False).stdout[-1500:]
        raise AssertionError(
            f"pod {namespace}/{name} still {phase or 'unknown'} after {POD_TIMEOUT_S} s:\n{described}"
        )
    return phase, log
