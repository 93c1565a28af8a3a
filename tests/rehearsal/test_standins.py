"""The stand-in images on the rehearsal cluster, under the manifests' own names and contracts:
the platform layer's Kafka (StatefulSet, start script, topics Job, network policies) as
``make ca4-platform-setup`` applies it, sized to one broker; Prometheus at its pinned version."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from rehearsal.cluster import Cluster
from rehearsal.pins import REPO

WAIT_S = 300


@pytest.fixture(scope="module")
def standins(cluster: Cluster) -> dict[str, str]:
    """The stand-ins built (cold: Kafka's jars, a Debian Java base, Prometheus from Go) and on
    every node: manifest reference -> the image it names there."""
    return {ref: image.ref for ref, image in cluster.standin_images().items()}


def wait_for(cluster: Cluster, what: str, check: object, timeout: float = WAIT_S) -> None:
    """Poll ``check()`` every 2 s until true; fail naming ``what`` and the platform's pods."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(2)
    pods = cluster.kubectl("-n", "platform", "get", "pods", "-o", "wide", check=False).stdout
    events = cluster.kubectl("-n", "platform", "get", "events", check=False).stdout[-2000:]
    raise AssertionError(f"{what}: not within {timeout:.0f} s\n{pods}\n{events}")


def one_broker_overlay(folder: Path) -> Path:
    """The platform layer, unchanged but for its size (what CA4_KAFKA_BROKERS=1 renders)."""
    folder.mkdir(parents=True, exist_ok=True)
    base = os.path.relpath(REPO / "manifests" / "platform", folder)
    (folder / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\n"
        "kind: Kustomization\n"
        f"resources:\n  - {base}\n"
        "patches:\n"
        "  - target: {kind: StatefulSet, name: kafka}\n"
        '    patch: \'[{"op": "replace", "path": "/spec/replicas", "value": 1}]\'\n'
        "  - target: {kind: ConfigMap, name: kafka-cluster}\n"
        '    patch: \'[{"op": "replace", "path": "/data/brokers", "value": "1"}]\'\n'
    )
    return folder


def job_done(cluster: Cluster) -> bool:
    """The topics Job succeeded (a failure fails the test at once, with its log)."""
    status = json.loads(cluster.kubectl("-n", "platform", "get", "job", "kafka-topics", "-o", "json").stdout)
    if status.get("status", {}).get("failed"):
        log = cluster.kubectl("-n", "platform", "logs", "job/kafka-topics", check=False).stdout
        raise AssertionError(f"the kafka-topics Job failed:\n{log[-2000:]}")
    return bool(status.get("status", {}).get("succeeded"))


def broker_ready(cluster: Cluster, uid: str | None = None) -> bool:
    """kafka-0 is Ready (and, with ``uid``, is a new pod: not that one)."""
    done = cluster.kubectl("-n", "platform", "get", "pod", "kafka-0", "-o", "json", check=False)
    if done.returncode != 0:
        return False
    pod = json.loads(done.stdout)
    conditions = pod.get("status", {}).get("conditions", [])
    ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
    return ready and pod["metadata"]["uid"] != uid


@pytest.mark.timeout(1800)  # cold: the jars, debootstrap with Java, Prometheus from its module
def test_the_platform_layers_kafka_runs_on_the_stand_in_and_keeps_its_topics(
    cluster: Cluster, standins: dict[str, str], tmp_path: Path
) -> None:
    assert "apache/kafka:4.1.1" in standins, standins
    overlay = one_broker_overlay(tmp_path / "platform")
    cluster.kubectl("apply", "-k", str(overlay))
    try:
        wait_for(cluster, "the topics Job done against kafka-0", lambda: job_done(cluster))
        log = cluster.kubectl("-n", "platform", "logs", "job/kafka-topics").stdout
        assert "create-topics: done on kafka-0.kafka.platform.svc.cluster.local:9092" in log, log
        broker_log = cluster.kubectl("-n", "platform", "logs", "kafka-0").stdout
        assert (
            "kafka-start: node 0 of 1; voters 0@kafka-0.kafka.platform.svc.cluster.local:9093" in broker_log
        )
        # a new pod on the same volume: the launcher finds the storage formatted, the topics stay
        uid = cluster.kubectl(
            "-n", "platform", "get", "pod", "kafka-0", "-o", "jsonpath={.metadata.uid}"
        ).stdout
        cluster.kubectl("-n", "platform", "delete", "pod", "kafka-0", "--wait=false")
        wait_for(cluster, "kafka-0 Ready again on its volume", lambda: broker_ready(cluster, uid))
        described = cluster.kubectl(
            "-n",
            "platform",
            "exec",
            "kafka-0",
            "--",
            "/opt/kafka/bin/kafka-topics.sh",
            "--bootstrap-server",
            "localhost:9092",
            "--describe",
            "--topic",
            "gpu-metadata",
        ).stdout
        assert "PartitionCount: 3" in described and "min.insync.replicas=1" in described, described
    finally:
        cluster.kubectl("delete", "-k", str(overlay), "--wait=false", check=False)


@pytest.mark.timeout(1800)
def test_the_prometheus_stand_in_is_the_pinned_release(cluster: Cluster, standins: dict[str, str]) -> None:
    ref = "prom/prometheus:v3.10.0"
    assert ref in standins, standins
    name = "prometheus-version"
    manifest = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "containers": [
                {"name": "p", "image": ref, "imagePullPolicy": "IfNotPresent", "args": ["--version"]}
            ],
        },
    }
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(manifest))
    try:
        phase = lambda: cluster.kubectl("get", "pod", name, "-o", "jsonpath={.status.phase}").stdout  # noqa: E731
        deadline = time.monotonic() + 90
        while phase() not in ("Succeeded", "Failed") and time.monotonic() < deadline:
            time.sleep(1)
        log = cluster.kubectl("logs", name, check=False).stdout
        assert phase() == "Succeeded", f"{ref} --version: {phase()}\n{log}"
        assert "prometheus, version 3.10.0" in log, log
    finally:
        cluster.kubectl("delete", "pod", name, "--wait=false", check=False)
