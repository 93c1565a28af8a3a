"""The live cluster as a verification target, reached through the bastion's SSH tunnels.

Its inputs come from what the lifecycle produced (``live_inputs``: Terraform outputs, the
files of ``make ca4-bootstrap-k3s`` and ``make ca4-platform-setup``); the environment
overrides each. The endpoints behind the tunnels (defaults are what ``make ca4-tunnels-up``
opens):

| variable | default | what |
| --- | --- | --- |
| ``CA4_KUBECONFIG`` | ``kubeconfigs/ca4-kubeconfig`` | K3s API through the tunnel on 127.0.0.1:16443 |
| ``CA4_KAFKA_BOOTSTRAP`` | ``localhost:19092`` | Kafka's tunnel listener (one port per broker) |
| ``CA4_PROMETHEUS_URL`` | ``http://localhost:19090`` | Prometheus through its tunnel |
| ``CA4_VERIFY_TIMEOUT`` | ``120`` | seconds any single wait may take |

A missing prerequisite skips the scenario with a one-line reason, and the ``ca4-verify-*``
targets run strict (``tests/bdd/strict.py``): each such skip fails the run. Probes use
short connect timeouts, so a run without any cluster finishes in seconds. ``KUBECONFIG`` is
ignored: a personal one must never point the verification at another cluster.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import socket
import subprocess
import urllib.parse
import uuid
from typing import Any

from ca4_events import names
from tests.bdd.targets import dbprobe, live_inputs
from tests.bdd.targets.base import Target
from tests.tools.run import run

APP_NS = "app"
PLATFORM_NS = "platform"
WORKER_LABEL = "app.kubernetes.io/name=metadata-worker"
TOOLBOX_NAME = "ca4-db-toolbox"


TUNNELS_SCRIPT = live_inputs.REPO / "scripts" / "tunnels_ca4.sh"
TUNNELS_TIMEOUT_S = 90


def _reachable(hostport: str, timeout: float = 1.0) -> bool:
    host, _, port = hostport.rpartition(":")
    try:
        with socket.create_connection((host or "localhost", int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


class LiveTarget(Target):
    """The AWS deployment, through tunnels and the Kubernetes API."""

    name = "live"

    def __init__(self, env: dict[str, str] | None = None) -> None:
        env = dict(os.environ if env is None else env)
        self.env = env
        self.inputs = live_inputs.resolve(env)
        self.kubeconfig = self.inputs.kubeconfig
        self.api_url = self.inputs.api_url
        self.token = self.inputs.token
        self.ca_bundle = self.inputs.ca_bundle
        self.kafka_bootstrap = env.get("CA4_KAFKA_BOOTSTRAP", "localhost:19092")
        self.prometheus_url = env.get("CA4_PROMETHEUS_URL", "http://localhost:19090").rstrip("/")
        self.bucket = self.inputs.bucket
        self.archive_prefix = self.inputs.prefix
        self.brokers = self.inputs.brokers
        self._deleted_uids: dict[str, str] = {}  # broker pod name -> the uid it had when deleted
        self.timeout_s = float(env.get("CA4_VERIFY_TIMEOUT", "120"))
        self.tunnel_problem = ""
        self._k8s: Any = None

    def open_tunnels(self) -> None:
        """Open the tunnels a verify target needs, as ``make ca4-tunnels-up`` does, when the stack
        exists and they are not up yet (``CA4_VERIFY_TUNNELS=0``: never). Idempotent: a tunnel
        that is up is left alone; what failed is added to the reasons that name a tunnel."""
        if self.env.get("CA4_VERIFY_TUNNELS", "1") == "0" or not self.inputs.have_outputs:
            return
        wanted = [self.kafka_bootstrap.split(",")[0], urllib.parse.urlsplit(self.prometheus_url).netloc]
        if all(_reachable(hostport) for hostport in wanted) and self._kube_reachable():
            return
        try:
            done = run([str(TUNNELS_SCRIPT), "up"], timeout=TUNNELS_TIMEOUT_S, env=self.env)
        except subprocess.TimeoutExpired:
            self.tunnel_problem = f"scripts/tunnels_ca4.sh up did not finish in {TUNNELS_TIMEOUT_S} s"
            return
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no message"])[-1]
            self.tunnel_problem = f"scripts/tunnels_ca4.sh up failed: {last}"

    def _kube_reachable(self) -> bool:
        server = self._kube_server() if self.kubeconfig.exists() else None
        return server is None or _reachable(server)

    def _no_tunnel(self, what: str) -> str:
        why = f"; {self.tunnel_problem}" if self.tunnel_problem else ""
        return f"{what} (run make ca4-tunnels-up){why}"

    # --- prerequisites --------------------------------------------------------------------

    def missing(self, need: str) -> str | None:  # noqa: PLR0911 - one answer per prerequisite
        """Check one prerequisite quickly (no waits longer than a TCP connect)."""
        if need in ("api", "public-address"):
            return self.inputs.problems.get("api")
        if need == "token":
            return self.inputs.problems.get("token")
        if need == "kafka":
            first = self.kafka_bootstrap.split(",")[0]
            return None if _reachable(first) else self._no_tunnel(f"no Kafka tunnel on {first}")
        if need == "prometheus":
            hostport = urllib.parse.urlsplit(self.prometheus_url).netloc
            return None if _reachable(hostport) else self._no_tunnel(f"no Prometheus tunnel on {hostport}")
        if need in ("cluster", "database", "logs", "api-environment", "worker"):
            # the database, the worker's logs and the API's environment are reached through the K3s API
            return self._cluster_problem()
        if need == "s3":
            return self.inputs.problems.get("s3")
        return None

    def _cluster_problem(self) -> str | None:
        if not self.kubeconfig.exists():
            return f"no kubeconfig at {self.kubeconfig} (run make ca4-bootstrap-k3s, or set CA4_KUBECONFIG)"
        try:
            import kubernetes  # noqa: F401, PLC0415 - only live runs need the client
        except ImportError:
            return "the kubernetes Python client is not installed (nox -s live installs it)"
        server = self._kube_server()
        if server and not _reachable(server):
            return self._no_tunnel(f"the K3s API at {server} does not answer")
        return None

    def _kube_server(self) -> str | None:
        try:
            import yaml  # noqa: PLC0415 - a dependency of the kubernetes client
        except ImportError:
            return None
        with contextlib.suppress(Exception):
            conf = yaml.safe_load(self.kubeconfig.read_text())
            url = conf["clusters"][0]["cluster"]["server"]
            return str(urllib.parse.urlsplit(url).netloc)
        return None

    def _api(self) -> Any:
        if self._k8s is None:
            from kubernetes import client, config  # noqa: PLC0415

            config.load_kube_config(config_file=str(self.kubeconfig))
            self._k8s = client
        return self._k8s

    # --- components --------------------------------------------------------------------------

    def component_ready(self, component: str) -> tuple[bool, str]:
        """Probe a component the way an operator would, through the tunnels."""
        if component == "kafka":
            info = self.describe_topic(names.TOPIC)
            return info is not None, f"via {self.kafka_bootstrap}: {info}"
        if component == "database":
            (collections,) = self.db([{"op": "collections"}])
            return True, f"toolbox Job listed collections {collections}"
        if component == "processor-api":
            resp = self.api_get("/readyz")
            return resp.status_code == 200, f"{self.api_url}/readyz -> {resp.status_code} {resp.text[:80]}"
        if component == "metadata-worker":
            dep = (
                self._api()
                .AppsV1Api()
                .read_namespaced_deployment("metadata-worker", APP_NS, _request_timeout=10)
            )
            ready = dep.status.ready_replicas or 0
            return ready >= 1, f"deployment metadata-worker: {ready}/{dep.spec.replicas} ready"
        if component == "prometheus":
            resp = self._get(f"{self.prometheus_url}/-/ready")
            return resp == 200, f"{self.prometheus_url}/-/ready -> {resp}"
        if component == "s3-archive":
            self.s3_client().head_bucket(Bucket=self.bucket)
            return True, f"bucket {self.bucket} answers"
        raise ValueError(f"unknown component {component!r}")

    @staticmethod
    def _get(url: str) -> int:
        import httpx  # noqa: PLC0415

        try:
            return httpx.get(url, timeout=10).status_code
        except httpx.HTTPError:
            return 0

    def nodes(self) -> list[tuple[str, bool]]:
        """Every node and its Ready condition."""
        out = []
        for node in self._api().CoreV1Api().list_node(_request_timeout=10).items:
            ready = any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])
            out.append((node.metadata.name, ready))
        return out

    def pods(self, namespace: str) -> list[tuple[str, bool]]:
        """Pods of ``namespace`` (finished Job pods excluded) and whether each is running and ready."""
        out = []
        for pod in self._api().CoreV1Api().list_namespaced_pod(namespace, _request_timeout=10).items:
            if pod.status.phase == "Succeeded":
                continue
            statuses = pod.status.container_statuses or []
            ready = pod.status.phase == "Running" and bool(statuses) and all(s.ready for s in statuses)
            out.append((pod.metadata.name, ready))
        return out

    def delete_broker_pod(self) -> str:
        """Delete the last broker's pod (kafka-<replicas - 1>); the StatefulSet makes a new one."""
        api = self._api()
        replicas = api.AppsV1Api().read_namespaced_stateful_set("kafka", PLATFORM_NS, _request_timeout=10)
        name = f"kafka-{(replicas.spec.replicas or 1) - 1}"
        core = api.CoreV1Api()
        self._deleted_uids[name] = core.read_namespaced_pod(
            name, PLATFORM_NS, _request_timeout=10
        ).metadata.uid
        core.delete_namespaced_pod(name, PLATFORM_NS, _request_timeout=10)
        return name

    def broker_pod_ready(self, name: str) -> bool:
        """A new pod of that name, Ready."""
        from kubernetes.client.exceptions import ApiException  # noqa: PLC0415

        try:
            pod = self._api().CoreV1Api().read_namespaced_pod(name, PLATFORM_NS, _request_timeout=10)
        except ApiException:
            return False  # not created yet
        conditions = pod.status.conditions or []
        ready = any(c.type == "Ready" and c.status == "True" for c in conditions)
        return ready and pod.metadata.uid != self._deleted_uids.get(name)

    def run_documents(self, run: str) -> list[list[Any]]:
        """Through the toolbox Job, as every database read here."""
        (docs,) = self.db([{"op": "run", "collection": names.COLLECTION_EVENTS, "run": run}])
        return list(docs)

    def api_environment(self) -> dict[str, str]:
        """Names of the variables the API Deployment sets (values of secrets are not read)."""
        api = self._api()
        dep = api.AppsV1Api().read_namespaced_deployment("processor-api", APP_NS, _request_timeout=10)
        env: dict[str, str] = {}
        for container in dep.spec.template.spec.containers:
            for var in container.env or []:
                env[var.name] = "(set)"
            for source in container.env_from or []:
                if source.secret_ref:
                    secret = api.CoreV1Api().read_namespaced_secret(
                        source.secret_ref.name, APP_NS, _request_timeout=10
                    )
                    env.update(dict.fromkeys(secret.data or {}, "(secret)"))
                if source.config_map_ref:
                    cm = api.CoreV1Api().read_namespaced_config_map(
                        source.config_map_ref.name, APP_NS, _request_timeout=10
                    )
                    env.update(dict.fromkeys(cm.data or {}, "(configmap)"))
        return env

    # --- the database, through a toolbox Job ---------------------------------------------------

    def db(self, ops: list[dict[str, Any]]) -> list[Any]:
        """Run the probe in a short-lived Job in namespace app (never from the laptop)."""
        api = self._api()
        batch, core = api.BatchV1Api(), api.CoreV1Api()
        image = self._worker_image()
        name = f"{TOOLBOX_NAME}-{uuid.uuid4().hex[:8]}"
        labels = {
            "app.kubernetes.io/name": TOOLBOX_NAME,
            "app.kubernetes.io/component": "verification",
            "app.kubernetes.io/part-of": "ca4",
        }
        script = inspect.getsource(dbprobe)
        job = api.V1Job(
            metadata=api.V1ObjectMeta(name=name, namespace=APP_NS, labels=labels),
            spec=api.V1JobSpec(
                backoff_limit=0,
                active_deadline_seconds=int(self.timeout_s),
                ttl_seconds_after_finished=300,
                template=api.V1PodTemplateSpec(
                    metadata=api.V1ObjectMeta(labels=labels),
                    spec=api.V1PodSpec(
                        restart_policy="Never",
                        automount_service_account_token=False,
                        security_context=api.V1PodSecurityContext(
                            run_as_non_root=True,
                            run_as_user=10001,
                            seccomp_profile=api.V1SeccompProfile(type="RuntimeDefault"),
                        ),
                        containers=[
                            api.V1Container(
                                name="probe",
                                image=image,
                                command=["python", "-c", script, json.dumps(ops)],
                                env_from=[
                                    api.V1EnvFromSource(
                                        secret_ref=api.V1SecretEnvSource(name="ca4-mongo-credentials")
                                    )
                                ],
                                security_context=api.V1SecurityContext(
                                    allow_privilege_escalation=False,
                                    read_only_root_filesystem=True,
                                    capabilities=api.V1Capabilities(drop=["ALL"]),
                                ),
                                resources=api.V1ResourceRequirements(
                                    requests={"cpu": "50m", "memory": "64Mi"},
                                    limits={"cpu": "500m", "memory": "256Mi"},
                                ),
                            )
                        ],
                    ),
                ),
            ),
        )
        batch.create_namespaced_job(APP_NS, job, _request_timeout=10)
        try:
            self.eventually(f"toolbox Job {name} to finish", lambda: self._job_done(batch, name))
            pods = core.list_namespaced_pod(
                APP_NS, label_selector=f"job-name={name}", _request_timeout=10
            ).items
            log = core.read_namespaced_pod_log(pods[0].metadata.name, APP_NS, _request_timeout=10)
        finally:
            batch.delete_namespaced_job(name, APP_NS, propagation_policy="Background", _request_timeout=10)
        for line in log.splitlines():
            if line.startswith(dbprobe.RESULT_MARKER):
                return list(json.loads(line.removeprefix(dbprobe.RESULT_MARKER)))
        raise AssertionError(f"[live] toolbox Job {name} printed no result; its log:\n{log[-2000:]}")

    @staticmethod
    def _job_done(batch: Any, name: str) -> bool | None:
        status = batch.read_namespaced_job_status(name, APP_NS, _request_timeout=10).status
        if status.failed:
            raise AssertionError(f"[live] toolbox Job {name} failed")
        return True if status.succeeded else None

    def _worker_image(self) -> str:
        dep = (
            self._api().AppsV1Api().read_namespaced_deployment("metadata-worker", APP_NS, _request_timeout=10)
        )
        return str(dep.spec.template.spec.containers[0].image)

    # --- logs, archive, topic expectations ------------------------------------------------------

    def worker_logs_contain(self, text: str) -> bool:
        """Search the last ten minutes of every worker pod's log."""
        core = self._api().CoreV1Api()
        for pod in core.list_namespaced_pod(APP_NS, label_selector=WORKER_LABEL, _request_timeout=10).items:
            log = core.read_namespaced_pod_log(
                pod.metadata.name, APP_NS, since_seconds=600, _request_timeout=20
            )
            if text in log:
                return True
        return False

    @property
    def archive_enabled(self) -> bool:
        """As the worker Deployment says (ARCHIVE_ENABLED), else CA4_ARCHIVE_ENABLED."""
        return self.env.get("CA4_ARCHIVE_ENABLED", "true").lower() == "true"

    def s3_client(self) -> Any:
        """boto3 with the operator's own AWS credentials, in the stack's region."""
        import boto3  # noqa: PLC0415

        return boto3.client("s3", region_name=self.inputs.region or None)

    @property
    def archive_bucket(self) -> str:
        """CA4_S3_BUCKET, else the Terraform output s3_bucket_name."""
        return self.bucket

    @property
    def expected_topic(self) -> tuple[int, int]:
        """Partitions as created by the topics Job; replication min(3, brokers)."""
        return int(self.env.get("CA4_KAFKA_PARTITIONS", "3")), min(3, self.brokers)
