"""Where the local stack keeps its state and caches, which ports it uses, and the env it gives services.

The API and the worker get exactly the environment variables the Kubernetes manifests
set (see manifests/app), so the local stack exercises the same configuration contract.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from ca4_events import names

PACKAGE_DIR = Path(__file__).resolve().parent
KAFKA_POM = PACKAGE_DIR / "kafka-pom.xml"
KAFKA_LOG4J = PACKAGE_DIR / "log4j2.properties"
FERRETDB_VERSION = "v1.24.2"
FERRETDB_MODULE = "github.com/FerretDB/FerretDB"
# fixed, so a reused data folder never fails with "Invalid cluster.id in meta.properties"
KAFKA_CLUSTER_ID = "Y2E0LWxvY2FsLWtyYWZ0"
LOCAL_AWS_KEY = "ca4-local-test"  # moto accepts any credentials; these are not secrets
BUCKET = "ca4-archive-local"
REGION = "us-east-1"
BACKENDS = ("native", "docker")
# one combined broker+controller, or three as the cluster's StatefulSet runs them
KAFKA_NODE_COUNTS = (1, 3)


def kafka_version() -> str:
    """The Kafka version pinned in kafka-pom.xml (one place for the jars and the cluster image)."""
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", KAFKA_POM.read_text())
    if not match:
        raise RuntimeError(f"{KAFKA_POM} has no <kafka.version>")
    return match.group(1)


def default_cache_dir() -> Path:
    """``$CA4_CACHE_DIR``, else ``$XDG_CACHE_HOME/ca4``, else ``~/.cache/ca4``."""
    if os.environ.get("CA4_CACHE_DIR"):
        return Path(os.environ["CA4_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ca4"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class KafkaPorts:
    """One Kafka node's loopback ports."""

    broker: int  # PLAINTEXT: the API, the tests, replication between nodes
    controller: int  # CONTROLLER: the KRaft quorum
    worker: int  # WORKER: the metadata worker only


def kafka_nodes_from_env() -> int:
    """``CA4_LOCAL_KAFKA_NODES`` (1 unless set); a value that is not a number is named."""
    raw = os.environ.get("CA4_LOCAL_KAFKA_NODES", "1").strip() or "1"
    if not raw.isdigit():
        raise ValueError(f"CA4_LOCAL_KAFKA_NODES must be 1 or 3, not {raw!r}")
    return int(raw)


def port_fields() -> list[str]:
    """The ``*_port`` fields of ``StackConfig``; each can be moved with ``CA4_LOCAL_<FIELD>``."""
    return [f.name for f in fields(StackConfig) if f.name.endswith("_port")]


def port_env(field: str) -> str:
    """``kafka_port`` -> ``CA4_LOCAL_KAFKA_PORT``."""
    return f"CA4_LOCAL_{field.upper()}"


@dataclass(frozen=True)
class StackConfig:
    """One local stack: its folders and its loopback ports."""

    state_dir: Path
    cache_dir: Path
    kafka_port: int = 9092  # the API's and every other client's listener
    kafka_controller_port: int = 9093
    kafka_worker_port: int = 9094  # the worker's own listener (a fault can cut the worker off alone)
    # nodes 2 and 3, used only with kafka_nodes=3
    kafka_node2_port: int = 9192
    kafka_node2_controller_port: int = 9193
    kafka_node2_worker_port: int = 9194
    kafka_node3_port: int = 9292
    kafka_node3_controller_port: int = 9293
    kafka_node3_worker_port: int = 9294
    mongo_port: int = 27017
    s3_port: int = 4566
    api_port: int = 8080
    worker_port: int = 8081
    prometheus_port: int = 9090
    kafka_partitions: int = 3
    archive_enabled: bool = True
    kafka_heap: str = "512m"
    backend: str = "native"  # or "docker": Kafka, MongoDB and S3 as containers
    kafka_nodes: int = 1  # CA4_LOCAL_KAFKA_NODES: 1, or 3 (replication 3, min.insync.replicas 2)

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"CA4_LOCAL_BACKEND must be one of {', '.join(BACKENDS)}, not {self.backend!r}")
        if self.kafka_nodes not in KAFKA_NODE_COUNTS:
            raise ValueError(f"CA4_LOCAL_KAFKA_NODES must be 1 or 3, not {self.kafka_nodes}")
        if self.kafka_nodes > 1 and self.backend != "native":
            raise ValueError("CA4_LOCAL_KAFKA_NODES=3 needs the native backend (unset CA4_LOCAL_BACKEND)")

    @classmethod
    def from_env(cls, project_root: Path) -> StackConfig:
        """Defaults, with any ``CA4_LOCAL_*`` variable overriding its field."""
        cfg = cls(
            state_dir=Path(os.environ.get("CA4_LOCAL_STATE_DIR", project_root / ".ca4-local")),
            cache_dir=default_cache_dir(),
            backend=os.environ.get("CA4_LOCAL_BACKEND", "native"),
            kafka_nodes=kafka_nodes_from_env(),
        )
        overrides: dict[str, Any] = {}
        for field in port_fields():
            raw = os.environ.get(port_env(field))
            if raw:
                overrides[field] = int(raw)
        return replace(cfg, **overrides)

    @classmethod
    def ephemeral(
        cls, state_dir: Path, cache_dir: Path | None = None, backend: str = "native", kafka_nodes: int = 1
    ) -> StackConfig:
        """A stack on free ports in its own folder (tests run beside a user's stack)."""
        cfg = cls(
            state_dir=state_dir,
            cache_dir=cache_dir or default_cache_dir(),
            backend=backend,
            kafka_nodes=kafka_nodes,
        )
        ports: dict[str, Any] = {field: free_port() for field in port_fields()}
        return replace(cfg, **ports)

    # --- folders -------------------------------------------------------------------

    @property
    def logs_dir(self) -> Path:
        """One log file per component."""
        return self.state_dir / "logs"

    @property
    def run_dir(self) -> Path:
        """PID files."""
        return self.state_dir / "run"

    def data_dir(self, component: str) -> Path:
        """Persistent data of one component."""
        return self.state_dir / "data" / component

    # --- endpoints ------------------------------------------------------------------

    def kafka_node_ports(self) -> list[KafkaPorts]:
        """The ports of each Kafka node, node 1 first."""
        every = [
            KafkaPorts(self.kafka_port, self.kafka_controller_port, self.kafka_worker_port),
            KafkaPorts(self.kafka_node2_port, self.kafka_node2_controller_port, self.kafka_node2_worker_port),
            KafkaPorts(self.kafka_node3_port, self.kafka_node3_controller_port, self.kafka_node3_worker_port),
        ]
        return every[: self.kafka_nodes]

    @property
    def kafka_bootstrap(self) -> str:
        """Bootstrap servers for the API, the tests and the tools: every node's client listener."""
        return ",".join(f"127.0.0.1:{p.broker}" for p in self.kafka_node_ports())

    @property
    def kafka_worker_bootstrap(self) -> str:
        """The worker's bootstrap servers: its own listener on every node, so that a test can
        cut the worker off Kafka (iptables on these ports) while the API keeps publishing. The
        docker backend's Kafka image has the clients' listener only."""
        if self.backend == "docker":
            return self.kafka_bootstrap
        return ",".join(f"127.0.0.1:{p.worker}" for p in self.kafka_node_ports())

    @property
    def mongo_uri(self) -> str:
        """FerretDB connection string (no TLS, no auth: loopback only)."""
        return f"mongodb://127.0.0.1:{self.mongo_port}/"

    @property
    def s3_endpoint(self) -> str:
        """moto server URL."""
        return f"http://127.0.0.1:{self.s3_port}"

    @property
    def api_url(self) -> str:
        """Processor API base URL."""
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def worker_url(self) -> str:
        """Worker probes and metrics."""
        return f"http://127.0.0.1:{self.worker_port}"

    @property
    def prometheus_url(self) -> str:
        """Local Prometheus (query API, UI)."""
        return f"http://127.0.0.1:{self.prometheus_port}"

    # --- the API token ---------------------------------------------------------------

    @property
    def token_file(self) -> Path:
        """Where the generated local API token is kept (mode 600, never in git)."""
        return self.state_dir / "api-token"

    def api_token(self) -> str:
        """The local stack's bearer token, generated on first use."""
        if self.token_file.exists():
            return self.token_file.read_text().strip()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        token = secrets.token_urlsafe(32)
        fd = os.open(self.token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token + "\n")
        return token

    # --- the configuration contract ---------------------------------------------------

    def aws_env(self) -> dict[str, str]:
        """Credentials for moto, and no instance-metadata lookups on a laptop."""
        return {
            "AWS_ACCESS_KEY_ID": LOCAL_AWS_KEY,
            "AWS_SECRET_ACCESS_KEY": LOCAL_AWS_KEY,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def api_env(self) -> dict[str, str]:
        """What manifests/app/processor-api.yaml sets, with local values."""
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap,
            "KAFKA_TOPIC": names.TOPIC,
            "API_TOKENS": self.api_token(),
            "API_HOST": "127.0.0.1",
            "API_PORT": str(self.api_port),
            "LOG_LEVEL": "INFO",
        }

    def worker_env(self) -> dict[str, str]:
        """What manifests/app/metadata-worker.yaml sets, with local values."""
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka_worker_bootstrap,
            "KAFKA_TOPIC": names.TOPIC,
            "KAFKA_DLQ_TOPIC": names.DLQ_TOPIC,
            "KAFKA_GROUP_ID": names.CONSUMER_GROUP,
            "MONGO_URI": self.mongo_uri,
            "MONGO_DATABASE": names.DATABASE,
            "ARCHIVE_ENABLED": "true" if self.archive_enabled else "false",
            # locally a short window keeps the demo and the tests quick; pods keep the default
            "ARCHIVE_FLUSH_SECONDS": "2",
            "S3_BUCKET": BUCKET,
            "S3_REGION": REGION,
            "S3_PREFIX": "",
            "S3_ENDPOINT_URL": self.s3_endpoint,
            "WORKER_HTTP_HOST": "127.0.0.1",
            "WORKER_HTTP_PORT": str(self.worker_port),
            "LOG_LEVEL": "INFO",
        }
        return {**env, **self.aws_env()}
