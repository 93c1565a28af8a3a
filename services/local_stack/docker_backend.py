"""Optional backend: Kafka, MongoDB and S3 as containers (testcontainers), where Docker runs.

Chosen with ``CA4_LOCAL_BACKEND=docker``; the native backend (jars, FerretDB, moto as
processes) stays the default and is what CI runs. The API and the worker remain local
processes either way, so only the three servers change.

The containers publish the same loopback ports as the native stack, bound to 127.0.0.1
only. They are named ``ca4-local-<component>-<kafka port>`` and must outlive the CLI
process that started them (``make local-up`` returns), so testcontainers' Ryuk reaper
is disabled and ``down`` removes them by name.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

from local_stack import ferretdb
from local_stack import kafka as native_kafka
from local_stack import s3 as native_s3
from local_stack.config import KAFKA_CLUSTER_ID, StackConfig, kafka_version
from local_stack.procs import StackError, require_free_port, step

MONGO_IMAGE = "mongo:7.0"


def kafka_image() -> str:
    """The official image of the Kafka version pinned for the native stack and the cluster."""
    return f"apache/kafka:{kafka_version()}"


def moto_image() -> str:
    """moto's image at the version the native stack runs."""
    return f"motoserver/moto:{version('moto')}"


def docker_problem() -> str | None:
    """``None`` when a Docker daemon answers, else why not (one line)."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if host.startswith("unix://") and not Path(host.removeprefix("unix://")).exists():
        # checked first: the SDK leaks a socket when its constructor cannot reach a daemon
        return (
            f"no Docker daemon socket at {host.removeprefix('unix://')} (the docker CLI alone is not enough)"
        )
    try:
        with _docker(timeout=3) as client:
            client.ping()
    except Exception as exc:  # the SDK raises several unrelated types for "no daemon"
        return f"no Docker daemon answers ({type(exc).__name__}: {str(exc)[:120]})"
    return None


def container_name(cfg: StackConfig, component: str) -> str:
    """Unique per stack (its Kafka port), so a test stack runs beside a user's."""
    return f"ca4-local-{component}-{cfg.kafka_port}"


def kafka_env(cfg: StackConfig) -> dict[str, str]:
    """apache/kafka reads KAFKA_* variables as broker settings: one KRaft node, loopback listener."""
    return {
        "KAFKA_NODE_ID": "1",
        "KAFKA_PROCESS_ROLES": "broker,controller",
        "KAFKA_LISTENERS": "PLAINTEXT://0.0.0.0:9092,CONTROLLER://0.0.0.0:9093",
        # clients on the host connect through the published port
        "KAFKA_ADVERTISED_LISTENERS": f"PLAINTEXT://127.0.0.1:{cfg.kafka_port}",
        "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "KAFKA_INTER_BROKER_LISTENER_NAME": "PLAINTEXT",
        "KAFKA_CONTROLLER_QUORUM_VOTERS": "1@localhost:9093",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR": "1",
        "KAFKA_AUTO_CREATE_TOPICS_ENABLE": "false",
        "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
        "CLUSTER_ID": KAFKA_CLUSTER_ID,
    }


@contextlib.contextmanager
def _docker(timeout: int = 60) -> Iterator[Any]:
    import docker  # noqa: PLC0415 - only this optional backend needs the Docker SDK

    client = docker.from_env(timeout=timeout)
    try:
        yield client
    finally:
        client.close()


def running(cfg: StackConfig, component: str) -> str | None:
    """Short id of the component's running container, if any."""
    import docker.errors  # noqa: PLC0415 - optional backend

    with _docker() as client:
        try:
            container = client.containers.get(container_name(cfg, component))
        except docker.errors.NotFound:
            return None
    return str(container.short_id) if container.status == "running" else None


@contextlib.contextmanager
def _without_reaper() -> Iterator[None]:
    """testcontainers' Ryuk reaper off for one start (the containers outlive this process)."""
    from testcontainers.core.config import testcontainers_config  # noqa: PLC0415 - optional backend

    before = testcontainers_config.ryuk_disabled
    testcontainers_config.ryuk_disabled = True
    try:
        yield
    finally:
        testcontainers_config.ryuk_disabled = before


def _start(
    cfg: StackConfig, component: str, image: str, *, port_field: str, inner: int, env: dict[str, str]
) -> None:
    from testcontainers.core.container import DockerContainer  # noqa: PLC0415 - optional backend

    port = int(getattr(cfg, port_field))
    if running(cfg, component):
        print(f"{component} container already running on 127.0.0.1:{port}", flush=True)
        return
    require_free_port(cfg, port_field)
    stop(cfg, component)  # a stopped container of the same name would block the new one
    container = DockerContainer(image, name=container_name(cfg, component)).with_envs(**env)
    # docker-py takes (ip, port) to publish on one address; testcontainers' helper only takes a port
    ports: dict[str, Any] = container.ports
    ports[f"{inner}/tcp"] = ("127.0.0.1", port)
    with _without_reaper():
        container.start()


def _logs(cfg: StackConfig, component: str, lines: int = 15) -> str:
    import docker.errors  # noqa: PLC0415 - optional backend

    name = container_name(cfg, component)
    try:
        with _docker() as client:
            text = client.containers.get(name).logs(tail=lines).decode(errors="replace")
    except docker.errors.DockerException as exc:
        return f"\n(no logs of container {name}: {exc})"
    return f"\n--- last lines of container {name} ---\n{text}"


def _wait_ready(cfg: StackConfig, component: str, ready: Callable[[], bool], timeout: float) -> None:
    """Poll ``ready``; fail with the container's log when it stops or the time is up."""
    what = f"{component} container"
    deadline = time.monotonic() + timeout
    while not ready():
        if running(cfg, component) is None:
            raise StackError(f"{what}: the container exited during start-up{_logs(cfg, component)}")
        if time.monotonic() >= deadline:
            raise StackError(f"{what}: not ready after {timeout:.0f} s{_logs(cfg, component)}")
        time.sleep(0.5)


def start_s3(cfg: StackConfig) -> None:
    """moto in a container, then the archive bucket."""
    with step(f"starting S3 endpoint ({moto_image()}) on {cfg.s3_endpoint}"):
        _start(cfg, "s3", moto_image(), port_field="s3_port", inner=5000, env={})
        _wait_ready(cfg, "s3", lambda: native_s3.ready(cfg), 60)
    native_s3.ensure_bucket(cfg)


def start_mongo(cfg: StackConfig) -> None:
    """MongoDB in a container (the database FerretDB stands in for natively)."""
    with step(f"starting MongoDB ({MONGO_IMAGE}) on {cfg.mongo_uri}"):
        _start(cfg, "mongo", MONGO_IMAGE, port_field="mongo_port", inner=27017, env={})
        _wait_ready(cfg, "mongo", lambda: ferretdb.ready(cfg), 60)


def start_kafka(cfg: StackConfig) -> None:
    """Kafka in KRaft mode from the official image, then the topics."""
    with step(f"starting Kafka ({kafka_image()}) on {cfg.kafka_bootstrap}"):
        _start(cfg, "kafka", kafka_image(), port_field="kafka_port", inner=9092, env=kafka_env(cfg))
        _wait_ready(cfg, "kafka", lambda: native_kafka.ready(cfg), 120)
    native_kafka.ensure_topics(cfg)


def stop(cfg: StackConfig, component: str) -> bool:
    """Remove the component's container; True when one existed."""
    import docker.errors  # noqa: PLC0415 - optional backend

    with _docker() as client:
        try:
            client.containers.get(container_name(cfg, component)).remove(force=True)
        except docker.errors.NotFound:
            return False
    return True
