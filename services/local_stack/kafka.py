"""Apache Kafka, single node in KRaft mode (broker + controller), from the official jars.

The jars come from Maven Central through ``mvn dependency:copy-dependencies`` on
``kafka-pom.xml`` and are cached per version. The storage folder is formatted once with a
fixed cluster id; a later start reuses it.
"""

from __future__ import annotations

import contextlib
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


def server_properties(cfg: StackConfig) -> str:
    """The broker configuration for one combined broker+controller node."""
    data = cfg.data_dir("kafka")
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{cfg.kafka_controller_port}",
            f"listeners=PLAINTEXT://127.0.0.1:{cfg.kafka_port},CONTROLLER://127.0.0.1:{cfg.kafka_controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{cfg.kafka_port}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name=PLAINTEXT",
            f"log.dirs={data}",
            # a single node: internal topics cannot have more replicas than brokers
            "offsets.topic.replication.factor=1",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "min.insync.replicas=1",
            # topics are created on purpose (names.TOPIC, names.DLQ_TOPIC), never by a typo
            "auto.create.topics.enable=false",
            "group.initial.rebalance.delay.ms=0",
            "num.partitions=1",
            "log.retention.hours=168",
            "",
        ]
    )


def process(cfg: StackConfig) -> Process:
    """The broker's process handle."""
    return Process("kafka", cfg.run_dir, cfg.logs_dir)


def start(cfg: StackConfig) -> None:
    """Format storage on first use, start the broker, wait for it and create the topics."""
    proc = process(cfg)
    if proc.alive():
        print(f"kafka already running (pid {proc.pid()}) on {cfg.kafka_bootstrap}", flush=True)
        ensure_topics(cfg)
        return
    require_free_port(cfg, "kafka_port")
    java = prereqs.require_java("the Kafka broker")
    libs = ensure_jars(cfg)
    conf_dir = cfg.state_dir / "conf"
    conf_dir.mkdir(parents=True, exist_ok=True)
    props = conf_dir / "kafka-server.properties"
    props.write_text(server_properties(cfg))
    classpath = f"{libs}/*"
    data = cfg.data_dir("kafka")
    if not (data / "meta.properties").exists():
        with step(f"formatting Kafka storage in {data} (cluster id {KAFKA_CLUSTER_ID})"):
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
                "kafka storage format",
                log_file=proc.log_file,
            )
    env = {**os.environ}
    with step(f"starting Kafka {kafka_version()} (KRaft) on {cfg.kafka_bootstrap}"):
        proc.start(
            [
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
            ],
            env,
        )
        wait_until(lambda: port_open(cfg.kafka_port), 90, "kafka", proc.log_file, proc)
        wait_until(lambda: ready(cfg), 60, "kafka metadata", proc.log_file, proc)
    ensure_topics(cfg)


def ready(cfg: StackConfig) -> bool:
    """True when the broker answers a metadata request."""
    try:
        admin = KafkaAdminClient(bootstrap_servers=cfg.kafka_bootstrap, request_timeout_ms=3000)
    except KafkaError:
        return False
    try:
        admin.list_topics()
        return True
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
        missing = [NewTopic(t, p, 1) for t, p in wanted.items() if t not in existing]
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
    """Controlled shutdown (SIGTERM), SIGKILL after 30 s."""
    return process(cfg).stop(timeout=30)
