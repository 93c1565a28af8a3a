"""Apache Kafka in KRaft mode, from the official jars: one combined broker+controller node,
or three (``CA4_LOCAL_KAFKA_NODES=3``) replicating every topic as the cluster does.

The jars come from Maven Central through ``mvn dependency:copy-dependencies`` on
``kafka-pom.xml`` and are cached per version. The storage folder is formatted once with a
fixed cluster id; a later start reuses it.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import os
import time
from pathlib import Path

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from ca4_events import names
from local_stack import prereqs
from local_stack.config import KAFKA_CLUSTER_ID, KAFKA_LOG4J, KAFKA_POM, StackConfig, kafka_version
from local_stack.procs import Process, StackError, port_open, require_free_port, run_checked, step, wait_until

COMPLETE_MARKER = ".complete"


def libs_dir(cfg: StackConfig) -> Path:
    """Cached jars of the pinned Kafka version."""
    return cfg.cache_dir / f"kafka-{kafka_version()}" / "libs"


def ensure_jars(cfg: StackConfig) -> Path:
    """Fetch the broker's classpath once; later runs reuse the cache."""
    return maven_jars(KAFKA_POM, libs_dir(cfg), "kafka_2.13", cfg.cache_dir / "logs" / "mvn-kafka.log")


def maven_jars(pom: Path, libs: Path, must_have: str, log_file: Path) -> Path:
    """``mvn dependency:copy-dependencies`` of ``pom`` into ``libs`` once (a marker file says it
    completed); ``must_have`` is the jar name prefix that proves it fetched what it should. The
    rehearsal's Kafka image fetches its classpath the same way."""
    if (libs / COMPLETE_MARKER).exists():
        return libs
    mvn = prereqs.require("mvn", "fetching Kafka's jars")
    with step(f"fetching Kafka {kafka_version()} jars from Maven Central into {libs}"):
        libs.mkdir(parents=True, exist_ok=True)
        run_checked(
            [
                mvn,
                "-B",
                "-q",
                "-f",
                str(pom),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={libs}",
                "-DincludeScope=runtime",
            ],
            "mvn dependency:copy-dependencies",
            log_file=log_file,
        )
        if not any(libs.glob(f"{must_have}-*.jar")):
            raise StackError(f"Maven finished but {libs} has no {must_have} jar")
        (libs / COMPLETE_MARKER).write_text(kafka_version() + "\n")
    return libs


def node_name(node: int) -> str:
    """Node 1 is ``kafka`` (its process, log and data folder), the others ``kafka-<n>``."""
    return "kafka" if node == 1 else f"kafka-{node}"


def server_properties(cfg: StackConfig, node: int = 1) -> str:
    """The configuration of combined broker+controller ``node`` (1-based) of ``cfg.kafka_nodes``.

    With three nodes it is the cluster's StatefulSet: every topic replicated three times, and
    ``min.insync.replicas=2``, so an ``acks=all`` write survives one broker down and is refused
    (NOT_ENOUGH_REPLICAS) with two down, never acknowledged unreplicated.
    """
    ports = cfg.kafka_node_ports()[node - 1]
    voters = ",".join(f"{i}@127.0.0.1:{p.controller}" for i, p in enumerate(cfg.kafka_node_ports(), start=1))
    # the worker has a listener of its own, so that a test can cut it off Kafka alone
    listeners = [("PLAINTEXT", ports.broker), ("CONTROLLER", ports.controller), ("WORKER", ports.worker)]
    advertised = [(name, port) for name, port in listeners if name != "CONTROLLER"]
    replicas = cfg.kafka_nodes
    min_isr = 2 if replicas >= 3 else 1
    return "\n".join(
        [
            "process.roles=broker,controller",
            f"node.id={node}",
            f"controller.quorum.voters={voters}",
            "listeners=" + ",".join(f"{name}://127.0.0.1:{port}" for name, port in listeners),
            "advertised.listeners=" + ",".join(f"{n}://127.0.0.1:{p}" for n, p in advertised),
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,WORKER:PLAINTEXT",
            "inter.broker.listener.name=PLAINTEXT",
            f"log.dirs={cfg.data_dir(node_name(node))}",
            # internal topics cannot have more replicas than there are brokers
            f"offsets.topic.replication.factor={replicas}",
            f"transaction.state.log.replication.factor={replicas}",
            f"transaction.state.log.min.isr={min_isr}",
            f"share.coordinator.state.topic.replication.factor={replicas}",
            f"share.coordinator.state.topic.min.isr={min_isr}",
            f"default.replication.factor={replicas}",
            f"min.insync.replicas={min_isr}",
            # topics are created on purpose (names.TOPIC, names.DLQ_TOPIC), never by a typo
            "auto.create.topics.enable=false",
            "group.initial.rebalance.delay.ms=0",
            "num.partitions=1",
            "log.retention.hours=168",
            "",
        ]
    )


def process(cfg: StackConfig) -> Process:
    """Node 1's process handle (the only node unless ``kafka_nodes`` is 3)."""
    return node_process(cfg, 1)


def node_process(cfg: StackConfig, node: int) -> Process:
    """One node's process handle."""
    return Process(node_name(node), cfg.run_dir, cfg.logs_dir)


def _nodes(cfg: StackConfig) -> range:
    return range(1, cfg.kafka_nodes + 1)


def start(cfg: StackConfig) -> None:
    """Format storage on first use, start every node, wait for all of them, create the topics.

    The nodes start together and are waited for afterwards: with three controllers none is
    ready before a majority of them runs.
    """
    down = [n for n in _nodes(cfg) if not node_process(cfg, n).alive()]
    if not down:
        print(f"kafka already running (pid {process(cfg).pid()}) on {cfg.kafka_bootstrap}", flush=True)
        ensure_topics(cfg)
        return
    for node in down:
        prefix = "kafka" if node == 1 else f"kafka_node{node}"
        for field in (f"{prefix}_port", f"{prefix}_controller_port", f"{prefix}_worker_port"):
            require_free_port(cfg, field)
    java = prereqs.require_java("the Kafka broker")
    libs = ensure_jars(cfg)
    nodes = f"{cfg.kafka_nodes} nodes" if cfg.kafka_nodes > 1 else "KRaft"
    with step(f"starting Kafka {kafka_version()} ({nodes}) on {cfg.kafka_bootstrap}"):
        for node in down:
            start_node(cfg, node, java=java, libs=libs, wait=False)
        for node in down:
            broker = cfg.kafka_node_ports()[node - 1].broker
            proc = node_process(cfg, node)
            wait_until(functools.partial(port_open, broker), 90, node_name(node), proc.log_file, proc)
        wait_until(lambda: ready(cfg), 60, "kafka metadata", process(cfg).log_file, process(cfg))
    ensure_topics(cfg)


def start_node(
    cfg: StackConfig, node: int, *, java: str | None = None, libs: Path | None = None, wait: bool = True
) -> None:
    """Start one node (formatting its storage on first use); with ``wait``, until its port answers."""
    java = java or prereqs.require_java("the Kafka broker")
    libs = libs or ensure_jars(cfg)
    proc = node_process(cfg, node)
    conf_dir = cfg.state_dir / "conf"
    conf_dir.mkdir(parents=True, exist_ok=True)
    props = conf_dir / f"{node_name(node)}-server.properties"
    props.write_text(server_properties(cfg, node))
    classpath = f"{libs}/*"
    data = cfg.data_dir(node_name(node))
    if not (data / "meta.properties").exists():
        data.mkdir(parents=True, exist_ok=True)
        run_checked(
            [
                java,
                "-cp",
                classpath,
                "kafka.tools.StorageTool",
                "format",
                "-t",
                KAFKA_CLUSTER_ID,
                "-c",
                str(props),
            ],
            f"kafka storage format ({node_name(node)})",
            log_file=proc.log_file,
        )
    argv = [
        java,
        "-Xms128m",
        f"-Xmx{cfg.kafka_heap}",
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={KAFKA_LOG4J}",
        "-cp",
        classpath,
        "kafka.Kafka",
        str(props),
    ]
    proc.start(argv, {**os.environ})
    if wait:
        broker = cfg.kafka_node_ports()[node - 1].broker
        wait_until(lambda: port_open(broker), 90, node_name(node), proc.log_file, proc)


def ready(cfg: StackConfig) -> bool:
    """True when the brokers answer a metadata request and every node is in it."""
    try:
        admin = KafkaAdminClient(bootstrap_servers=cfg.kafka_bootstrap, request_timeout_ms=3000)
    except KafkaError:
        return False
    try:
        admin.list_topics()
        return len(admin.describe_cluster().get("brokers", [])) >= cfg.kafka_nodes
    except KafkaError:
        return False
    finally:
        admin.close()


def ensure_topics(cfg: StackConfig) -> None:
    """Create ``gpu-metadata`` and its DLQ if missing (idempotent)."""
    wanted = {names.TOPIC: cfg.kafka_partitions, names.DLQ_TOPIC: 1}
    admin = KafkaAdminClient(bootstrap_servers=cfg.kafka_bootstrap, request_timeout_ms=10000)
    try:
        existing = set(admin.list_topics())
        # min.insync.replicas on the topics too, as the cluster's create-topics.sh sets it
        isr = {"min.insync.replicas": "2" if cfg.kafka_nodes >= 3 else "1"}
        missing = [
            NewTopic(t, p, cfg.kafka_nodes, topic_configs=isr) for t, p in wanted.items() if t not in existing
        ]
        if missing:
            with step(
                "creating topics " + ", ".join(f"{t.name} ({t.num_partitions} partitions)" for t in missing)
            ):
                with contextlib.suppress(TopicAlreadyExistsError):
                    admin.create_topics(missing)
                deadline = time.monotonic() + 30
                while set(wanted) - set(admin.list_topics()):
                    if time.monotonic() > deadline:
                        raise StackError("topics were not visible 30 s after creation")
                    time.sleep(0.2)
    finally:
        admin.close()


def stop(cfg: StackConfig) -> bool:
    """Controlled shutdown (SIGTERM) of every node, SIGKILL after 30 s; True if any was running."""
    # all at once: stopped one by one, the last nodes would wait for a controller quorum that is gone
    with concurrent.futures.ThreadPoolExecutor(max_workers=cfg.kafka_nodes) as pool:
        stopped = list(pool.map(lambda n: node_process(cfg, n).stop(timeout=30), _nodes(cfg)))
    return any(stopped)
