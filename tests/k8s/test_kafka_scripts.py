"""The two scripts of ConfigMap kafka-cluster, run for real with bash: the broker settings
derived from the pod ordinal and cluster size (and accepted by Kafka 4.1.1's own docker
launcher and storage formatter), and the topic creation with stand-ins for Kafka's tools."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from local_stack import kafka as local_kafka
from local_stack import prereqs
from local_stack.config import StackConfig, default_cache_dir
from tests.kube import Obj, find, pod_spec
from tests.tools.run import run


def script(objects: list[Obj], name: str, tmp_path: Path) -> Path:
    """One script of the ConfigMap, written out as a file."""
    cm = find(objects, "ConfigMap", "kafka-cluster", "platform")
    path = tmp_path / name
    path.write_text(cm.body["data"][name])
    return path


def statefulset_env(objects: list[Obj]) -> dict[str, str]:
    """The literal env of the broker container (references resolved to the base ConfigMap)."""
    sts = find(objects, "StatefulSet", "kafka", "platform")
    cm = find(objects, "ConfigMap", "kafka-cluster", "platform")
    env = {}
    for var in pod_spec(sts)["containers"][0]["env"]:
        if "value" in var:
            env[var["name"]] = str(var["value"])
        elif "configMapKeyRef" in var["valueFrom"]:
            env[var["name"]] = cm.body["data"][var["valueFrom"]["configMapKeyRef"]["key"]]
        else:
            env[var["name"]] = "platform"  # metadata.namespace
    return env


def executable(path: Path, text: str) -> Path:
    """Write an executable stand-in."""
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def run_start(
    objects: list[Obj], tmp_path: Path, hostname: str, brokers: int
) -> subprocess.CompletedProcess[str]:
    """kafka-start.sh as pod `hostname`, with a launcher that prints the environment it got."""
    launcher = executable(
        tmp_path / "launcher",
        '#!/bin/bash\nexec python3 -c "import json, os; print(json.dumps(dict(os.environ)))"\n',
    )
    env = {
        **statefulset_env(objects),
        "HOSTNAME": hostname,
        "CA4_KAFKA_BROKERS": str(brokers),
        "CA4_KAFKA_LAUNCHER": str(launcher),
        "PATH": os.environ["PATH"],
    }
    return run(["bash", str(script(objects, "kafka-start.sh", tmp_path))], timeout=30, env=env)


@pytest.mark.parametrize(("brokers", "rf", "isr"), [(1, 1, 1), (2, 2, 1), (3, 3, 2)])
def test_broker_settings_follow_ordinal_and_size(
    objects: list[Obj], tmp_path: Path, brokers: int, rf: int, isr: int
) -> None:
    """Node id = ordinal; voters = every broker; replication min(3, n), min ISR one less; the
    tunnel listener advertised as localhost:19092+ordinal."""
    last = brokers - 1
    proc = run_start(objects, tmp_path, f"kafka-{last}", brokers)
    assert proc.returncode == 0, f"kafka-start.sh failed for kafka-{last} of {brokers}: {proc.stderr}"
    env = json.loads(proc.stdout.strip().splitlines()[-1])
    domain = "kafka.platform.svc.cluster.local"
    assert env["KAFKA_NODE_ID"] == str(last), f"node id {env['KAFKA_NODE_ID']} for kafka-{last}"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == ",".join(
        f"{i}@kafka-{i}.{domain}:9093" for i in range(brokers)
    )
    assert (
        env["KAFKA_ADVERTISED_LISTENERS"]
        == f"PLAINTEXT://kafka-{last}.{domain}:9092,TUNNEL://localhost:{19092 + last}"
    )
    for key, want in {
        "KAFKA_DEFAULT_REPLICATION_FACTOR": rf,
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": rf,
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": rf,
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR": rf,
        "KAFKA_MIN_INSYNC_REPLICAS": isr,
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": isr,
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR": isr,
    }.items():
        assert env[key] == str(want), f"{key}={env[key]} for {brokers} broker(s), expected {want}"
    own = [
        k
        for k in env
        if k.startswith("KAFKA_") and k.removeprefix("KAFKA_").startswith(("BROKERS", "SERVICE", "TUNNEL"))
    ]
    assert not own, f"{own}: a KAFKA_* name becomes a broker property in apache/kafka's launcher"


@pytest.mark.parametrize(
    ("hostname", "brokers", "message"),
    [
        ("kafka-3", 3, "outside the 3-broker quorum"),
        ("kafka-0", 4, "expected 1 to 3"),
        ("kafka", 3, "cannot read the pod ordinal"),
    ],
)
def test_broker_refuses_an_inconsistent_cluster(
    objects: list[Obj], tmp_path: Path, hostname: str, brokers: int, message: str
) -> None:
    """A pod beyond the voter set, or a size out of range, stops with a reason instead of a bad quorum."""
    proc = run_start(objects, tmp_path, hostname, brokers)
    assert proc.returncode != 0 and message in proc.stderr, (
        f"{hostname} of {brokers}: rc {proc.returncode}, {proc.stderr!r}"
    )


def test_kafkas_launcher_and_storage_tool_accept_the_settings(objects: list[Obj], tmp_path: Path) -> None:
    """The environment of broker kafka-1 (of 3) goes through Kafka 4.1.1's own docker wrapper
    (KafkaDockerWrapper setup: env -> server.properties, then StorageTool format), from the
    jars the local stack uses. A listener, voter or replication mistake fails here."""
    if not shutil.which("java"):
        pytest.fail("java is not installed (it runs the local stack's Kafka and this check)")
    libs = local_kafka.ensure_jars(StackConfig(state_dir=tmp_path / "state", cache_dir=default_cache_dir()))
    java = prereqs.require_java("Kafka's docker wrapper")
    dirs = {n: tmp_path / n for n in ("defaults", "mounted", "final", "data")}
    for d in dirs.values():
        d.mkdir()
    launcher = executable(
        tmp_path / "launcher",
        f"#!/bin/bash\nexec {java} -cp '{libs}/*' kafka.docker.KafkaDockerWrapper setup "
        f"--default-configs-dir {dirs['defaults']} --mounted-configs-dir {dirs['mounted']} "
        f"--final-configs-dir {dirs['final']}\n",
    )
    env = {
        **statefulset_env(objects),
        "HOSTNAME": "kafka-1",
        "CA4_KAFKA_LAUNCHER": str(launcher),
        "KAFKA_LOG_DIRS": str(dirs["data"] / "logs"),
        "PATH": os.environ["PATH"],
    }
    proc = run(["bash", str(script(objects, "kafka-start.sh", tmp_path))], timeout=120, env=env)
    assert proc.returncode == 0, (
        f"Kafka's docker wrapper refused the broker settings:\n{proc.stdout[-1500:]}\n{proc.stderr[-1500:]}"
    )
    props = dict(
        line.split("=", 1)
        for line in (dirs["final"] / "server.properties").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    assert props["node.id"] == "1" and props["process.roles"] == "broker,controller", (
        f"server.properties: {props}"
    )
    assert props["listeners"] == "PLAINTEXT://:9092,CONTROLLER://:9093,TUNNEL://:9094", (
        f"listeners {props['listeners']}"
    )
    assert "port" not in props, "a stray KAFKA_PORT reached the broker config"
    meta = (dirs["data"] / "logs" / "meta.properties").read_text()
    assert f"cluster.id={env['CLUSTER_ID']}" in meta and "node.id=1" in meta, f"meta.properties: {meta}"


STUB = """#!/bin/bash
# stand-in for {tool}: records its arguments; fails the first {fail} create calls like a
# cluster whose brokers have not all registered yet
echo "{tool} $*" >> "{log}"
if [ "{tool}" = kafka-topics.sh ] && [[ " $* " == *" --create "* ]]; then
  n=$(grep -c -- '--create' "{log}")
  if [ "$n" -le {fail} ]; then echo "InvalidReplicationFactorException" >&2; exit 1; fi
fi
if [[ " $* " == *" --describe "* ]]; then
  printf 'Topic: x\tTopicId: y\tPartitionCount: 3\t'
  echo "ReplicationFactor: {described_rf}	Configs: min.insync.replicas=2"
fi
exit 0
"""


def run_topics(
    objects: list[Obj], tmp_path: Path, brokers: int, fail: int = 0, described_rf: int | None = None
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """create-topics.sh with stand-in tools in CA4_KAFKA_BIN."""
    job = find(objects, "Job", "kafka-topics", "platform")
    log = tmp_path / "calls.log"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    rf = min(3, brokers) if described_rf is None else described_rf
    for tool in ("kafka-topics.sh", "kafka-configs.sh"):
        executable(bin_dir / tool, STUB.format(tool=tool, log=log, fail=fail, described_rf=rf))
    env = {
        e["name"]: str(e.get("value", "platform"))
        for e in pod_spec(job)["containers"][0]["env"]
        if "value" in e or "fieldRef" in e.get("valueFrom", {})
    }
    env.update(
        CA4_KAFKA_BROKERS=str(brokers),
        CA4_KAFKA_BIN=str(bin_dir),
        CA4_TOPICS_RETRY_SECONDS="0",
        CA4_TOPICS_ATTEMPTS="5",
        PATH=os.environ["PATH"],
    )
    proc = run(["bash", str(script(objects, "create-topics.sh", tmp_path))], timeout=30, env=env)
    calls = log.read_text().splitlines() if log.exists() else []
    return proc, calls


@pytest.mark.parametrize(("brokers", "rf", "isr"), [(1, 1, 1), (3, 3, 2)])
def test_topics_are_created_with_replication_to_match(
    objects: list[Obj], tmp_path: Path, brokers: int, rf: int, isr: int
) -> None:
    """Both topics, --if-not-exists, replication min(3, n), min.insync.replicas re-asserted,
    every broker in the bootstrap list."""
    proc, calls = run_topics(objects, tmp_path, brokers)
    assert proc.returncode == 0, f"create-topics.sh failed: {proc.stderr}"
    creates = [c for c in calls if "--create" in c]
    assert len(creates) == 2, f"expected 2 create calls, got {creates}"
    for topic, partitions in (("gpu-metadata", 3), ("gpu-metadata.dlq", 1)):
        (create,) = [c for c in creates if f"--topic {topic} " in c]
        for part in (
            "--if-not-exists",
            f"--partitions {partitions}",
            f"--replication-factor {rf}",
            f"--config min.insync.replicas={isr}",
        ):
            assert part in create, f"{topic}: {part!r} missing in {create!r}"
        assert any(f"--entity-name {topic} --add-config min.insync.replicas={isr}" in c for c in calls), (
            f"{topic}: min ISR not re-asserted: {calls}"
        )
    bootstrap = ",".join(f"kafka-{i}.kafka.platform.svc.cluster.local:9092" for i in range(brokers))
    assert all(f"--bootstrap-server {bootstrap} " in c for c in calls), (
        f"calls without the full bootstrap list: {calls}"
    )


def test_topic_creation_waits_for_the_brokers_boundedly(objects: list[Obj], tmp_path: Path) -> None:
    """Retries while brokers register (3 failures), gives up after CA4_TOPICS_ATTEMPTS."""
    proc, _ = run_topics(objects, tmp_path, 3, fail=3)
    assert proc.returncode == 0, f"3 failures within 5 attempts should succeed: {proc.stderr}"
    again = tmp_path / "again"  # a fresh call log and bin folder
    again.mkdir()
    proc, _ = run_topics(objects, again, 3, fail=99)
    assert proc.returncode != 0 and "gave up after 5 attempts" in proc.stderr, (
        f"expected a bounded failure, got {proc.returncode}: {proc.stderr}"
    )


def test_existing_topic_with_other_replication_is_reported(objects: list[Obj], tmp_path: Path) -> None:
    """A topic created earlier with 1 replica on a 3-broker cluster is not silently accepted."""
    proc, _ = run_topics(objects, tmp_path, 3, described_rf=1)
    assert proc.returncode != 0 and "replication factor '1', expected 3" in proc.stderr, (
        f"rc {proc.returncode}: {proc.stderr}"
    )
