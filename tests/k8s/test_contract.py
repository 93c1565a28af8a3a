"""The manifests against the code they deploy: environment variables both ways, Service
selectors and pod labels, ports and probe paths the services really serve, scrape
annotations, the public entry, Kafka's version and names, and the NetworkPolicy flows.

Variables: a service reads exactly the fields of its pydantic Settings (the env name is
the field name upper-cased). A Deployment must set every required one, may set only
those, and lists the optional ones it leaves at their defaults in the annotation
`ca4/env-defaults-kept`, so that every field is decided once, in the manifest.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import math
import re
import urllib.request
from typing import Any

import pytest
from pydantic_settings import BaseSettings

from ca4_events import names
from local_stack.config import StackConfig, kafka_version
from metadata_worker.config import Settings as WorkerSettings
from metadata_worker.health import Health, serve
from processor_api.config import Settings as ApiSettings
from processor_api.routes import router
from tests.bdd.targets import live
from tests.kube import MANIFESTS, REPO, Obj, find, load_objects, pins, pod_labels, pod_spec, workloads

KEPT = "ca4/env-defaults-kept"
SERVICES: dict[str, type[BaseSettings]] = {"processor-api": ApiSettings, "metadata-worker": WorkerSettings}


def env_names(settings: type[BaseSettings]) -> set[str]:
    """What a Settings class reads from the environment."""
    return {name.upper() for name in settings.model_fields}


def required(settings: type[BaseSettings]) -> set[str]:
    """The variables without a default."""
    return {name.upper() for name, field in settings.model_fields.items() if field.is_required()}


def secret_data(secrets: list[Obj], name: str) -> dict[str, str]:
    """Decoded data of a rendered Secret in namespace app."""
    obj = find(secrets, "Secret", name, "app")
    return {k: base64.b64decode(v).decode() for k, v in obj.body["data"].items()}


def effective_env(obj: Obj, container: dict[str, Any], secrets: list[Obj]) -> dict[str, str]:
    """The environment a container gets from its env and envFrom, with the rendered Secrets'
    values; a reference to a missing Secret or key fails here."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        ref = source.get("secretRef")
        assert ref, f"{obj.ref}: envFrom {source} is not a secretRef (only the rendered Secrets are expected)"
        env.update(secret_data(secrets, ref["name"]))
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = str(var["value"])
            continue
        if "resourceFieldRef" in var["valueFrom"]:
            env[var["name"]] = resource_field(obj, container, var["valueFrom"]["resourceFieldRef"])
            continue
        ref = var["valueFrom"]["secretKeyRef"]
        data = secret_data(secrets, ref["name"])
        assert ref["key"] in data, (
            f"{obj.ref} {var['name']}: Secret {ref['name']} has no key {ref['key']} (keys {sorted(data)})"
        )
        env[var["name"]] = data[ref["key"]]
    return env


def _cpu(quantity: str) -> float:
    return float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def resource_field(obj: Obj, container: dict[str, Any], ref: dict[str, Any]) -> str:
    """What the kubelet puts in a resourceFieldRef variable: the CPU quantity over the
    divisor, rounded up (limits.cpu 500m with divisor 1 -> "1")."""
    assert ref.get("containerName", container["name"]) == container["name"], f"{obj.ref}: {ref}"
    kind, _, resource = ref["resource"].partition(".")
    assert resource == "cpu", f"{obj.ref}: only CPU resourceFieldRefs are expected, not {ref}"
    quantity = container["resources"][kind]["cpu"]
    return str(math.ceil(_cpu(quantity) / _cpu(str(ref.get("divisor", "1")))))


def service_container(objects: list[Obj], name: str) -> tuple[Obj, dict[str, Any]]:
    """The Deployment of a service and its one container."""
    dep = find(objects, "Deployment", name, "app")
    (container,) = pod_spec(dep)["containers"]
    return dep, container


# --- environment, both ways ---------------------------------------------------------------------


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_every_variable_set_is_read(service: str, objects: list[Obj], rendered_secrets: list[Obj]) -> None:
    """Nothing in the manifest that the service would silently ignore (a typo, a stale name)."""
    dep, container = service_container(objects, service)
    env = effective_env(dep, container, rendered_secrets)
    unread = set(env) - env_names(SERVICES[service])
    assert not unread, (
        f"{dep.ref} sets {sorted(unread)}, which {SERVICES[service].__module__}.Settings does not read"
    )


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_every_variable_read_is_set_or_a_documented_default(
    service: str, objects: list[Obj], rendered_secrets: list[Obj]
) -> None:
    """Required ones are set; each optional one is set or listed in ca4/env-defaults-kept, never both."""
    settings = SERVICES[service]
    dep, container = service_container(objects, service)
    env = set(effective_env(dep, container, rendered_secrets))
    kept = {v for v in str(dep.body["metadata"].get("annotations", {}).get(KEPT, "")).split(",") if v}
    missing_required = required(settings) - env
    assert not missing_required, f"{dep.ref} does not set the required {sorted(missing_required)}"
    undecided = env_names(settings) - env - kept
    assert not undecided, f"{dep.ref}: {sorted(undecided)} are neither set nor listed in {KEPT}"
    both = env & kept
    assert not both, f"{dep.ref}: {sorted(both)} are set and also listed in {KEPT}"
    stale = kept - env_names(settings)
    assert not stale, f"{dep.ref}: {KEPT} lists {sorted(stale)}, which Settings does not read"
    required_kept = kept & required(settings)
    assert not required_kept, f"{dep.ref}: {sorted(required_kept)} have no default to keep"


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_the_environment_is_accepted_by_the_service(
    service: str, objects: list[Obj], rendered_secrets: list[Obj], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Settings class itself validates what the pod would get (token digests, archive bucket, ports)."""
    dep, container = service_container(objects, service)
    env = effective_env(dep, container, rendered_secrets)
    for name in env_names(SERVICES[service]):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings: Any = SERVICES[service]()
    port = container["ports"][0]["containerPort"]
    pod_wide = "0.0.0.0"  # noqa: S104 - a pod must listen on its pod address, which is what the manifest sets
    if service == "processor-api":
        assert (settings.api_host, settings.api_port) == (pod_wide, port), (
            f"{dep.ref}: API listens on {settings.api_host}:{settings.api_port}"
        )
        assert settings.kafka_topic == names.TOPIC, (
            f"{dep.ref}: topic {settings.kafka_topic}, expected {names.TOPIC}"
        )
    else:
        assert (settings.worker_http_host, settings.worker_http_port) == (pod_wide, port), (
            f"{dep.ref}: probes on {settings.worker_http_host}:{settings.worker_http_port}"
        )
        assert (settings.kafka_topic, settings.kafka_dlq_topic, settings.kafka_group_id) == (
            names.TOPIC,
            names.DLQ_TOPIC,
            names.CONSUMER_GROUP,
        ), f"{dep.ref}: Kafka names differ from ca4_events.names"
        assert settings.archive_enabled and settings.s3_bucket, (
            f"{dep.ref}: the archive should be on with a bucket"
        )
        assert "MONGO_URI" not in effective_env(
            *service_container(objects, "processor-api"), rendered_secrets
        ), "the API must not hold database credentials"


def test_the_secrets_template_documents_exactly_the_rendered_keys(rendered_secrets: list[Obj]) -> None:
    """manifests/platform/secrets.yaml is the reference a reader sees; it must not drift."""
    template = {
        o.name: set(o.body["stringData"]) for o in load_objects([MANIFESTS / "platform" / "secrets.yaml"])
    }
    rendered = {o.name: set(o.body["data"]) for o in rendered_secrets}
    assert template == rendered, f"secrets.yaml documents {template}, the renderer writes {rendered}"


def test_the_toolbox_job_finds_what_it_reads(rendered_secrets: list[Obj]) -> None:
    """The verification Job (envFrom ca4-mongo-credentials) reads MONGO_URI and MONGO_DATABASE."""
    data = secret_data(rendered_secrets, "ca4-mongo-credentials")
    source = (REPO / "tests" / "bdd" / "targets" / "dbprobe.py").read_text()
    read = set(re.findall(r"os\.environ(?:\.get)?[\[(]\"([A-Z_]+)\"", source))
    assert read and read <= set(data), (
        f"dbprobe reads {sorted(read)}, ca4-mongo-credentials holds {sorted(data)}"
    )


# --- selectors, ports, probes, scraping ----------------------------------------------------------


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    """matchLabels semantics."""
    return all(labels.get(k) == v for k, v in selector.items())


def test_workload_selectors_match_their_pod_templates(objects: list[Obj]) -> None:
    """A Deployment or StatefulSet whose selector misses its template is rejected by the API."""
    for obj in workloads(objects):
        if obj.kind == "Job":
            continue
        selector = obj.body["spec"]["selector"]["matchLabels"]
        assert matches(selector, pod_labels(obj)), (
            f"{obj.ref}: selector {selector} vs template labels {pod_labels(obj)}"
        )


def test_service_selectors_pick_pods_with_their_target_ports(objects: list[Obj]) -> None:
    """Each Service selects exactly one workload's pods, and its named target ports exist there."""
    for svc in (o for o in objects if o.kind == "Service"):
        selector = dict(svc.body["spec"]["selector"])
        pod_name = selector.pop("statefulset.kubernetes.io/pod-name", None)
        hits = [
            w for w in workloads(objects) if w.namespace == svc.namespace and matches(selector, pod_labels(w))
        ]
        assert len(hits) == 1, (
            f"{svc.ref}: selector {svc.body['spec']['selector']} matches {[h.ref for h in hits]}"
        )
        if pod_name:
            assert re.fullmatch(rf"{hits[0].name}-\d+", pod_name), (
                f"{svc.ref}: pod {pod_name} is not a pod of {hits[0].ref}"
            )
        ports = {p["name"] for c in pod_spec(hits[0])["containers"] for p in c.get("ports", [])}
        for port in svc.body["spec"]["ports"]:
            assert port["targetPort"] in ports, (
                f"{svc.ref}: targetPort {port['targetPort']} not among {sorted(ports)} of {hits[0].ref}"
            )


def test_disruption_budgets_select_a_workload(objects: list[Obj]) -> None:
    """A PDB selecting nothing protects nothing."""
    for pdb in (o for o in objects if o.kind == "PodDisruptionBudget"):
        selector = pdb.body["spec"]["selector"]["matchLabels"]
        hits = [
            w.ref
            for w in workloads(objects)
            if w.namespace == pdb.namespace and matches(selector, pod_labels(w))
        ]
        assert len(hits) == 1, f"{pdb.ref}: selector {selector} matches {hits}"


def api_routes() -> set[str]:
    """The paths the Processor API serves."""
    return {getattr(r, "path", "") for r in router.routes}


@pytest.fixture(scope="module")
def worker_server() -> Any:
    """The worker's real probe server on a free loopback port."""
    server = serve(Health(), "127.0.0.1", 0)
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def get_status(url: str) -> int:
    """HTTP status of a GET (errors included)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - loopback only
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def probe_paths(container: dict[str, Any]) -> set[str]:
    """HTTP paths of a container's probes."""
    return {
        c[p]["httpGet"]["path"]
        for p in ("startupProbe", "livenessProbe", "readinessProbe")
        if (c := container).get(p, {}).get("httpGet")
    }


def test_api_probe_and_scrape_paths_are_routes_of_the_api(objects: list[Obj]) -> None:
    """/healthz, /readyz and /metrics exist in processor_api.routes; the scrape port is the container port."""
    dep, container = service_container(objects, "processor-api")
    routes = api_routes()
    annotations = dep.body["spec"]["template"]["metadata"]["annotations"]
    paths = probe_paths(container) | {annotations["prometheus.io/path"]}
    assert paths <= routes, (
        f"{dep.ref}: probe/scrape paths {sorted(paths - routes)} are not API routes {sorted(routes)}"
    )
    assert {"/healthz", "/readyz"} <= probe_paths(container), f"{dep.ref}: probes on {probe_paths(container)}"
    port = container["ports"][0]["containerPort"]
    assert (
        annotations["prometheus.io/port"] == str(port) == str(ApiSettings.model_fields["api_port"].default)
    ), f"{dep.ref}: scrape port {annotations['prometheus.io/port']}, container port {port}"
    assert annotations["prometheus.io/scrape"] == "true", f"{dep.ref}: not scraped"


def test_worker_probe_and_scrape_paths_are_served(objects: list[Obj], worker_server: str) -> None:
    """The worker's real HTTP server answers every probe path and /metrics (404 would mean a wrong path)."""
    dep, container = service_container(objects, "metadata-worker")
    annotations = dep.body["spec"]["template"]["metadata"]["annotations"]
    for path in sorted(probe_paths(container)):
        status = get_status(worker_server + path)
        assert status in (200, 503), f"{dep.ref}: probe path {path} answered {status} on the worker's server"
    assert get_status(worker_server + annotations["prometheus.io/path"]) == 200, (
        f"{dep.ref}: /metrics not served"
    )
    assert get_status(worker_server + "/nothing-here") == 404, (
        "the worker's server answers any path: this test would prove nothing"
    )
    port = container["ports"][0]["containerPort"]
    assert (
        annotations["prometheus.io/port"]
        == str(port)
        == str(WorkerSettings.model_fields["worker_http_port"].default)
    ), f"{dep.ref}: scrape port {annotations['prometheus.io/port']}, container port {port}"


def test_the_public_entry_routes_the_load_balancer_to_the_api(objects: list[Obj]) -> None:
    """Traefik's websecure entrypoint (the load balancer's target port) -> Service processor-api,
    publishing the API's routes and the load balancer's health check path, not /metrics."""
    ing = find(objects, "Ingress", "processor-api", "app")
    ann = ing.body["metadata"]["annotations"]
    assert ann.get("traefik.ingress.kubernetes.io/router.entrypoints") == "websecure", (
        f"{ing.ref}: entrypoints {ann}"
    )
    assert ing.body["spec"]["ingressClassName"] == "traefik", f"{ing.ref}: not served by K3s's Traefik"
    (rule,) = ing.body["spec"]["rules"]
    assert "host" not in rule, f"{ing.ref}: a host rule would miss the load balancer's health checks"
    paths = {p["path"]: p["backend"]["service"] for p in rule["http"]["paths"]}
    tf = REPO / "ca4" / "terraform"
    health = re.search(
        r'variable "health_check_path"[^}]*default\s*=\s*"([^"]+)"',
        (tf / "modules" / "edge_api" / "variables.tf").read_text(),
        re.S,
    )
    node_port = re.search(
        r'variable "api_node_port"[^}]*default\s*=\s*(\d+)', (tf / "variables.tf").read_text(), re.S
    )
    assert health and node_port, "ca4/terraform no longer declares health_check_path / api_node_port defaults"
    assert node_port.group(1) == "443", (
        f"the load balancer targets node port {node_port.group(1)}, Traefik's websecure is 443"
    )
    assert health.group(1) in paths, (
        f"{ing.ref}: the load balancer checks {health.group(1)}, published are {sorted(paths)}"
    )
    assert "/metadata" in paths and "/metrics" not in paths, f"{ing.ref}: published {sorted(paths)}"
    routes = api_routes() | {"/openapi.json"}
    assert set(paths) <= routes, f"{ing.ref}: {sorted(set(paths) - routes)} are not API routes"
    svc = find(objects, "Service", "processor-api", "app")
    svc_ports = {p["name"] for p in svc.body["spec"]["ports"]}
    for path, backend in paths.items():
        assert backend["name"] == svc.name and backend["port"]["name"] in svc_ports, (
            f"{ing.ref} {path}: backend {backend}"
        )


# --- Kafka ----------------------------------------------------------------------------------------


def test_kafka_image_is_the_local_stacks_version(objects: list[Obj]) -> None:
    """One Kafka version everywhere: the pom's <kafka.version> is the image tag of brokers and Job."""
    pom = (REPO / "services" / "local_stack" / "kafka-pom.xml").read_text()
    m = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", pom)
    assert m, "kafka-pom.xml has no <kafka.version>"
    assert m.group(1) == kafka_version(), "local_stack.config.kafka_version() disagrees with the pom"
    for name in ("kafka", "kafka-topics"):
        obj = find(objects, "StatefulSet" if name == "kafka" else "Job", name, "platform")
        images = {c["image"] for c in pod_spec(obj)["containers"]}
        assert images == {f"apache/kafka:{m.group(1)}"}, (
            f"{obj.ref}: images {images}, the pom pins Kafka {m.group(1)}"
        )


def test_kafka_statefulset_follows_the_kraft_rules(objects: list[Obj]) -> None:
    """PITFALLS.md: no service links, 9092+9093 headless with not-ready addresses, Parallel,
    fixed cluster id, local-path volumes; replicas equal to the ConfigMap's broker count."""
    sts = find(objects, "StatefulSet", "kafka", "platform")
    spec, pod = sts.body["spec"], pod_spec(sts)
    assert pod["enableServiceLinks"] is False, f"{sts.ref}: service links would inject KAFKA_PORT"
    assert spec["podManagementPolicy"] == "Parallel", f"{sts.ref}: {spec['podManagementPolicy']}"
    headless = find(objects, "Service", spec["serviceName"], "platform")
    hs = headless.body["spec"]
    assert hs["clusterIP"] == "None" and hs["publishNotReadyAddresses"] is True, f"{headless.ref}: {hs}"
    assert {p["port"] for p in hs["ports"]} == {9092, 9093}, f"{headless.ref}: ports {hs['ports']}"
    (claim,) = spec["volumeClaimTemplates"]
    assert claim["spec"]["storageClassName"] == "local-path", f"{sts.ref}: storage {claim['spec']}"
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    cluster_id = env["CLUSTER_ID"]["value"]
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16 and len(cluster_id) == 22, (
        f"{sts.ref}: CLUSTER_ID {cluster_id!r} is not a base64 UUID"
    )
    cm = find(objects, "ConfigMap", "kafka-cluster", "platform")
    assert env["CA4_KAFKA_BROKERS"]["valueFrom"]["configMapKeyRef"] == {"name": cm.name, "key": "brokers"}, (
        f"{sts.ref}: broker count not from {cm.ref}"
    )
    assert str(spec["replicas"]) == cm.body["data"]["brokers"], (
        f"{sts.ref}: replicas {spec['replicas']} vs {cm.ref} brokers {cm.body['data']['brokers']}"
    )
    assert env["CA4_KAFKA_TUNNEL_PORT_BASE"]["value"] == pins()["CA4_KAFKA_TUNNEL_PORT_BASE"], (
        f"{sts.ref}: tunnel port base differs from scripts/lib/pins.sh"
    )
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"]["value"] == "false", (
        f"{sts.ref}: topics must be created on purpose"
    )


def test_kafka_tunnel_node_ports_match_the_tunnel_script(objects: list[Obj]) -> None:
    """Broker N: NodePort base+N -> its tunnel listener; localhost:19092+N is what live.py expects."""
    p = pins()
    for n in range(3):
        svc = find(objects, "Service", f"kafka-tunnel-{n}", "platform")
        assert svc.body["spec"]["selector"]["statefulset.kubernetes.io/pod-name"] == f"kafka-{n}", (
            f"{svc.ref}: selects {svc.body['spec']['selector']}"
        )
        (port,) = svc.body["spec"]["ports"]
        assert (
            port["nodePort"] == int(p["CA4_KAFKA_NODE_PORT_BASE"]) + n and port["targetPort"] == "tunnel"
        ), f"{svc.ref}: {port}"
    assert live.LiveTarget(env={}).kafka_bootstrap == f"localhost:{p['CA4_KAFKA_TUNNEL_PORT_BASE']}", (
        "live target's Kafka default differs"
    )
    assert live.LiveTarget(env={}).prometheus_url.endswith(f":{p['CA4_PROMETHEUS_LOCAL_PORT']}"), (
        "live target's Prometheus port differs"
    )


def test_topic_names_and_partitions_are_the_services(objects: list[Obj], renderer: Any) -> None:
    """The Job creates what the API publishes to and the worker reads, as partitioned locally."""
    job = find(objects, "Job", "kafka-topics", "platform")
    env = {e["name"]: e.get("value") for e in pod_spec(job)["containers"][0]["env"]}
    assert (env["CA4_TOPIC"], env["CA4_DLQ_TOPIC"]) == (names.TOPIC, names.DLQ_TOPIC), (
        f"{job.ref}: topics {env}"
    )
    assert int(env["CA4_TOPIC_PARTITIONS"]) == StackConfig.kafka_partitions == 3, (
        f"{job.ref}: partitions {env['CA4_TOPIC_PARTITIONS']}"
    )
    assert renderer.TOPIC == names.TOPIC, "render_platform_config.TOPIC differs from ca4_events.names.TOPIC"
    assert pins()["CA4_IMAGE_NAME"] == renderer.IMAGE_NAME, (
        "render_platform_config.IMAGE_NAME differs from pins.sh"
    )
    for name in SERVICES:
        _, container = service_container(objects, name)
        assert container["image"].startswith(renderer.IMAGE_NAME + ":"), (
            f"{name}: image {container['image']} is not {renderer.IMAGE_NAME}"
        )
        assert container["imagePullPolicy"] == "Never", f"{name}: the side-loaded image must never be pulled"


# --- NetworkPolicies --------------------------------------------------------------------------------


def policies(objects: list[Obj], namespace: str) -> list[Obj]:
    """NetworkPolicies of a namespace."""
    return [o for o in objects if o.kind == "NetworkPolicy" and o.namespace == namespace]


def test_app_is_default_deny(objects: list[Obj]) -> None:
    """One policy selects every pod for ingress and egress and allows nothing."""
    deny = [
        p
        for p in policies(objects, "app")
        if p.body["spec"]["podSelector"] == {}
        and set(p.body["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        and not p.body["spec"].get("ingress")
        and not p.body["spec"].get("egress")
    ]
    assert len(deny) == 1, f"expected one default-deny policy in app, found {[p.ref for p in deny]}"


def test_policy_pod_selectors_select_real_pods(objects: list[Obj]) -> None:
    """A selector with a typo would silently allow nothing; the toolbox Job's pods come from live.py."""
    toolbox = {"app.kubernetes.io/name": live.TOOLBOX_NAME}
    for pol in policies(objects, "app") + policies(objects, "platform"):
        selector = pol.body["spec"]["podSelector"].get("matchLabels", {})
        if not selector:
            continue
        hits = [
            w for w in workloads(objects) if w.namespace == pol.namespace and matches(selector, pod_labels(w))
        ]
        assert hits or matches(selector, toolbox), f"{pol.ref}: podSelector {selector} selects no pod"
        for rule in pol.body["spec"].get("egress", []):
            for peer in rule.get("to", []):
                ns = (
                    peer.get("namespaceSelector", {})
                    .get("matchLabels", {})
                    .get("kubernetes.io/metadata.name", pol.namespace)
                )
                pod_sel = peer.get("podSelector", {}).get("matchLabels")
                if pod_sel and ns in ("platform", "app"):
                    assert any(
                        w.namespace == ns and matches(pod_sel, pod_labels(w)) for w in workloads(objects)
                    ), f"{pol.ref}: egress peer {peer} selects no pod"


def allowed_egress(pol: Obj, address: str, port: int) -> bool:
    """True when one of the policy's egress rules admits address:port by ipBlock."""
    ip = ipaddress.ip_address(address)
    for rule in pol.body["spec"].get("egress", []):
        ports = {p["port"] for p in rule.get("ports", [])}
        if ports and port not in ports:
            continue
        for peer in rule.get("to", []):
            block = peer.get("ipBlock")
            if (
                block
                and ip in ipaddress.ip_network(block["cidr"])
                and not any(ip in ipaddress.ip_network(e) for e in block.get("except", []))
            ):
                return True
    return False


def test_only_the_worker_reaches_the_instance_metadata_service(objects: list[Obj]) -> None:
    """The node role's credentials are for the archive writer only (ca4/terraform/README.md)."""
    reach = [
        p.name
        for p in policies(objects, "app") + policies(objects, "platform")
        if allowed_egress(p, "169.254.169.254", 80)
    ]
    assert reach == ["metadata-worker"], (
        f"policies admitting 169.254.169.254:80: {reach}, expected only metadata-worker"
    )


@pytest.mark.parametrize(
    ("policy", "address", "port", "allowed"),
    [
        ("metadata-worker", "10.40.3.7", 27017, True),  # DocumentDB in the VPC
        ("metadata-worker", "10.42.0.9", 27017, False),  # never a pod
        ("metadata-worker", "52.219.170.1", 443, True),  # S3
        ("metadata-worker", "10.43.0.1", 443, False),  # never the cluster's API Service
        ("metadata-worker", "52.219.170.1", 27017, False),  # no database outside the VPC
        ("ca4-db-toolbox", "10.40.3.7", 27017, True),
        ("ca4-db-toolbox", "52.219.170.1", 443, False),
        ("ca4-db-toolbox", "169.254.169.254", 80, False),
    ],
)
def test_address_flows(objects: list[Obj], policy: str, address: str, port: int, allowed: bool) -> None:
    """The address-based flows of DESIGN.md, one by one."""
    pol = find(objects, "NetworkPolicy", policy, "app")
    assert allowed_egress(pol, address, port) is allowed, (
        f"{pol.ref}: egress to {address}:{port} expected {'allowed' if allowed else 'denied'}"
    )


def test_ingress_from_traefik_and_monitoring_on_the_metrics_ports(objects: list[Obj]) -> None:
    """Traefik (kube-system) reaches the API; namespace monitoring reaches both services' scrape ports."""
    for service, sources in (
        ("processor-api", {"kube-system", "monitoring"}),
        ("metadata-worker", {"monitoring"}),
    ):
        pol = find(objects, "NetworkPolicy", service, "app")
        _, container = service_container(objects, service)
        port_names = {p["name"] for p in container["ports"]}
        seen = set()
        for rule in pol.body["spec"]["ingress"]:
            for peer in rule["from"]:
                ns = peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                seen.add(ns)
                if ns == "kube-system":
                    assert peer["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "traefik"}, (
                        f"{pol.ref}: {peer}"
                    )
            assert {p["port"] for p in rule["ports"]} <= port_names, (
                f"{pol.ref}: ports {rule['ports']} vs {sorted(port_names)}"
            )
        assert seen == sources, f"{pol.ref}: ingress from {sorted(seen)}, expected {sorted(sources)}"


def test_worker_and_api_reach_kafka_on_the_client_port_only(objects: list[Obj]) -> None:
    """9092 to the brokers in platform; the controller port stays internal to Kafka."""
    for service in SERVICES:
        pol = find(objects, "NetworkPolicy", service, "app")
        kafka_rules = [r for r in pol.body["spec"]["egress"] if any("podSelector" in p for p in r["to"])]
        assert len(kafka_rules) == 1 and [p["port"] for p in kafka_rules[0]["ports"]] == [9092], (
            f"{pol.ref}: {kafka_rules}"
        )


def test_live_target_expectations_hold(objects: list[Obj]) -> None:
    """live.py reads these objects by name; json keeps the message readable if not."""
    for kind, name in (("Deployment", "processor-api"), ("Deployment", "metadata-worker")):
        obj = find(objects, kind, name, live.APP_NS)
        assert obj.body["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"] == name, (
            json.dumps(obj.body["metadata"])
        )
    assert live.WORKER_LABEL == "app.kubernetes.io/name=metadata-worker", (
        f"live.WORKER_LABEL is {live.WORKER_LABEL}"
    )
    toolbox_uid = 10001  # live.py runs the toolbox as this uid, in the worker's image
    for name in SERVICES:
        dep, _ = service_container(objects, name)
        assert pod_spec(dep)["securityContext"]["runAsUser"] == toolbox_uid, (
            f"{dep.ref}: uid differs from the image's and the toolbox's"
        )
    dockerfile = (REPO / "Dockerfile").read_text()
    assert f"USER {toolbox_uid}:{toolbox_uid}" in dockerfile, f"Dockerfile does not run as {toolbox_uid}"
