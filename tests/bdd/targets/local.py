"""The embedded local stack as a verification target (what CI runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from ca4_events import names
from local_stack import pipeline, prometheus, s3, stack
from local_stack.config import BUCKET, StackConfig
from tests.bdd.targets import dbprobe
from tests.bdd.targets.base import Target


class LocalTarget(Target):
    """Processes on 127.0.0.1 started by the session fixture."""

    name = "local"
    timeout_s = 30.0

    def __init__(self, cfg: StackConfig) -> None:
        self.cfg = cfg
        self.api_url = cfg.api_url
        self.token = cfg.api_token()
        self.kafka_bootstrap = cfg.kafka_bootstrap
        self.prometheus_url = cfg.prometheus_url

    def missing(self, need: str) -> str | None:
        """Only what the local stack cannot show is missing."""
        if need == "cluster":
            return "the local stack has no Kubernetes nodes or pods; only a live cluster shows this"
        if need == "public-address":
            return "locally every service shares 127.0.0.1; only the live API's public address shows this"
        if need == "prometheus" and prometheus.binary() is None:
            return "prometheus is not installed (scripts/ensure_packages.sh prometheus)"
        return None

    def component_ready(self, component: str) -> tuple[bool, str]:
        """Probe the local process behind ``component``."""
        probes = {
            "kafka": self._kafka,
            "database": self._database,
            "processor-api": lambda: self._service("processor-api"),
            "metadata-worker": lambda: self._service("metadata-worker"),
            "prometheus": lambda: self._service("prometheus"),
            "s3-archive": self._bucket,
        }
        if component not in probes:
            raise ValueError(f"unknown component {component!r}")
        return probes[component]()

    def _kafka(self) -> tuple[bool, str]:
        info = self.describe_topic(names.TOPIC)
        return info is not None, f"broker {self.cfg.kafka_bootstrap}, topic {names.TOPIC}: {info}"

    def _database(self) -> tuple[bool, str]:
        client: MongoClient[dict[str, Any]] = MongoClient(self.cfg.mongo_uri, serverSelectionTimeoutMS=3000)
        try:
            client.admin.command("ping")
            return True, f"{self.cfg.mongo_uri} answers ping"
        except PyMongoError as exc:
            return False, f"{self.cfg.mongo_uri}: {exc}"
        finally:
            client.close()

    def _service(self, name: str) -> tuple[bool, str]:
        # the same readiness probe the stack waits for at start-up and reports in status
        comp = stack.component(self.cfg, name)
        return comp.healthy(self.cfg), f"{name} at {comp.endpoint(self.cfg)}"

    def _bucket(self) -> tuple[bool, str]:
        try:
            s3.client(self.cfg).head_bucket(Bucket=BUCKET)
            return True, f"bucket {BUCKET} at {self.cfg.s3_endpoint}"
        except Exception as exc:  # botocore raises several types for a missing endpoint
            return False, f"bucket {BUCKET} at {self.cfg.s3_endpoint}: {exc}"

    def api_environment(self) -> dict[str, str]:
        """Read /proc/<pid>/environ of the API process."""
        pid = pipeline.api_process(self.cfg).pid()
        assert pid is not None, "the local Processor API is not running"
        raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        return dict(entry.decode().split("=", 1) for entry in raw if b"=" in entry)

    def db(self, ops: list[dict[str, Any]]) -> list[Any]:
        """The probe, in-process against FerretDB (locally the database is on loopback)."""
        return dbprobe.run(self.cfg.mongo_uri, names.DATABASE, ops)

    def worker_logs_contain(self, text: str) -> bool:
        """Search the worker's log file."""
        log = pipeline.worker_process(self.cfg).log_file
        return log.exists() and text in log.read_text(errors="replace")

    @property
    def archive_enabled(self) -> bool:
        """As configured for the local worker."""
        return self.cfg.archive_enabled

    def s3_client(self) -> Any:
        """moto."""
        return s3.client(self.cfg)

    @property
    def archive_bucket(self) -> str:
        """The local archive bucket."""
        return BUCKET

    @property
    def expected_topic(self) -> tuple[int, int]:
        """One broker: replication 1."""
        return self.cfg.kafka_partitions, 1
