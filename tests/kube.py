"""What the Kubernetes checks share (tests/k8s, tests/monitoring, tests/ssh): the manifests as
objects, the pins of scripts/lib/pins.sh, one kustomize, strict schema validation, the house
rules of STYLE.md that a schema cannot express, and Pod Security "restricted".

No cluster and no network (kustomize may be built once from the Go module proxy where neither
kubectl nor kustomize is installed).
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import socket
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from local_stack.config import default_cache_dir
from tests.tools.run import run

REPO = Path(__file__).resolve().parents[1]
MANIFESTS = REPO / "manifests"
SCRIPTS = REPO / "scripts"
PINS_FILE = SCRIPTS / "lib" / "pins.sh"

LABELS = ("app.kubernetes.io/name", "app.kubernetes.io/component", "app.kubernetes.io/part-of")
NAMESPACES = ("platform", "app", "monitoring")
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job")
CLUSTER_SCOPED = ("Namespace", "ClusterRole", "ClusterRoleBinding")
# the pods that read the Kubernetes API (service discovery, pod logs): each under its own
# ServiceAccount; every other pod gets no token at all
API_CLIENTS = frozenset({"prometheus", "alloy"})
# third-party images: a release tag; the CA4 image: the commit tag the deploy pins
RELEASE_IMAGE = re.compile(r"[\w./-]+:v?\d+\.\d+\.\d+")
CA4_IMAGE_TAG = re.compile(r"git-[0-9a-f]{12}(-dirty-[0-9a-f]{12})?")

# kubectl 1.32 embeds kustomize v5.5.0: the same release builds here when kubectl is missing
KUSTOMIZE_MODULE = "sigs.k8s.io/kustomize/kustomize/v5@v5.5.0"
KUSTOMIZE_BUILD_TIMEOUT_S = 900


@dataclass(frozen=True)
class Obj:
    """One Kubernetes object and the file (or kustomization) it came from."""

    path: Path
    body: dict[str, Any]

    @property
    def kind(self) -> str:
        """``Deployment``, ``Service``, ..."""
        return str(self.body["kind"])

    @property
    def name(self) -> str:
        """metadata.name"""
        return str(self.body["metadata"]["name"])

    @property
    def namespace(self) -> str | None:
        """metadata.namespace (None for cluster-scoped objects)."""
        return self.body["metadata"].get("namespace")

    @property
    def labels(self) -> dict[str, str]:
        """metadata.labels ({} when there are none)."""
        return dict(self.body["metadata"].get("labels") or {})

    @property
    def ref(self) -> str:
        """``Kind namespace/name (file)`` for assertion messages."""
        where = f"{self.namespace}/" if self.namespace else ""
        shown = self.path.relative_to(REPO) if self.path.is_relative_to(REPO) else self.path.name
        return f"{self.kind} {where}{self.name} ({shown})"


def load_objects(paths: Iterable[Path]) -> list[Obj]:
    """Every non-empty YAML document of the given files."""
    return [Obj(path, doc) for path in paths for doc in yaml.safe_load_all(path.read_text()) if doc]


def find(objects: Iterable[Obj], kind: str, name: str, namespace: str | None = None) -> Obj:
    """The one object of that kind and name (and namespace); a clear failure otherwise."""
    hits = [
        o
        for o in objects
        if o.kind == kind and o.name == name and (namespace is None or o.namespace == namespace)
    ]
    assert len(hits) == 1, f"expected exactly one {kind} {namespace or '*'}/{name}, found {len(hits)}"
    return hits[0]


def workloads(objects: Iterable[Obj]) -> list[Obj]:
    """The objects with a pod template."""
    return [o for o in objects if o.kind in WORKLOAD_KINDS]


def pod_spec(obj: Obj) -> dict[str, Any]:
    """spec.template.spec of a workload."""
    return dict(obj.body["spec"]["template"]["spec"])


def pod_labels(obj: Obj) -> dict[str, str]:
    """The labels of a workload's pod template."""
    return dict(obj.body["spec"]["template"]["metadata"].get("labels") or {})


def containers(obj: Obj) -> list[dict[str, Any]]:
    """The containers and init containers of a workload."""
    spec = pod_spec(obj)
    return list(spec.get("containers", [])) + list(spec.get("initContainers", []))


# --- pins ---------------------------------------------------------------------------------


@functools.cache
def _pins() -> tuple[tuple[str, str], ...]:
    found = []
    for n, raw in enumerate(PINS_FILE.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"(CA4_[A-Z0-9_]+)=([^\s$`\"'#]+)", line)
        assert m, f"{PINS_FILE}:{n}: expected a plain CA4_KEY=value line (tests parse it), found {raw!r}"
        found.append((m.group(1), m.group(2)))
    return tuple(found)


def pins() -> dict[str, str]:
    """scripts/lib/pins.sh as a dict: every line is CA4_KEY=value (shared with the live scripts)."""
    return dict(_pins())


def k8s_version() -> str:
    """The Kubernetes release inside the pinned K3s (v1.34.3+k3s3 -> 1.34.3)."""
    pinned = pins()["CA4_K3S_VERSION_PINNED"]
    m = re.fullmatch(r"v(\d+\.\d+\.\d+)\+k3s\d+", pinned)
    assert m, f"CA4_K3S_VERSION_PINNED is not a K3s release tag: {pinned!r}"
    return m.group(1)


@contextlib.contextmanager
def k3s_api_tunnel() -> Iterator[None]:
    """Something listening on the K3s API tunnel's local port, as after make ca4-tunnels-up
    (all the live scripts check before talking to a stand-in kubectl)."""
    sock = socket.socket()
    try:
        sock.bind(("127.0.0.1", int(pins()["CA4_K3S_API_LOCAL_PORT"])))
        sock.listen()
    except OSError:
        pass  # taken: something (a real tunnel) already accepts there, which is all the scripts check
    try:
        yield
    finally:
        sock.close()


# --- kustomize ------------------------------------------------------------------------------


def cache_dir() -> Path:
    """Where CA4 keeps what it downloads or builds (the local stack's folder)."""
    return default_cache_dir()


@functools.cache
def kustomize_command() -> tuple[str, ...]:
    """A kustomize build: kubectl's built-in one (what `kubectl apply -k` runs), a kustomize
    binary, or kustomize built once from the Go module proxy into the CA4 cache."""
    if shutil.which("kubectl"):
        return ("kubectl", "kustomize")
    if shutil.which("kustomize"):
        return ("kustomize", "build")
    gobin = cache_dir() / "bin"
    built = gobin / "kustomize"
    if not built.exists():
        go = shutil.which("go")
        if go is None:
            pytest.fail("no kubectl, kustomize or go on PATH: install kubectl (or Go, to build kustomize)")
        env = {**os.environ, "GOBIN": str(gobin), "GOWORK": "off"}
        out = run([go, "install", KUSTOMIZE_MODULE], timeout=KUSTOMIZE_BUILD_TIMEOUT_S, env=env)
        assert out.returncode == 0, f"go install {KUSTOMIZE_MODULE} failed:\n{out.stderr}"
    return (str(built), "build")


@functools.cache
def _build(folder: Path) -> tuple[Obj, ...]:
    proc = run([*kustomize_command(), str(folder)], timeout=120)
    assert proc.returncode == 0, f"kustomize build of {folder} failed: {proc.stderr.strip()[-800:]}"
    return tuple(Obj(folder / "kustomization.yaml", d) for d in yaml.safe_load_all(proc.stdout) if d)


def kustomize_build(folder: Path) -> list[Obj]:
    """The objects `kubectl apply -k folder` sends; each folder is built once per session."""
    return list(_build(folder.resolve()))


# --- the schema -------------------------------------------------------------------------------


def validate(objs: Iterable[Obj]) -> list[str]:
    """Strict validation against the pinned Kubernetes' schemas; one line per invalid object."""
    # the k8s dependency group's; imported here so the rest of this module needs only PyYAML
    import kubernetes_validate  # noqa: PLC0415

    problems = []
    version = k8s_version()
    for obj in objs:
        try:
            kubernetes_validate.validate(obj.body, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            problems.append(
                f"{obj.ref}: no schema for {obj.body.get('apiVersion')}/{obj.kind} in Kubernetes {version}"
            )
        except kubernetes_validate.ValidationError as exc:
            path = "/".join(str(p) for p in exc.path)
            problems.append(f"{obj.ref}: {exc.message} at {path or '(root)'}")
    return problems


# --- the house rules ------------------------------------------------------------------------------


def label_problems(obj: Obj) -> list[str]:
    """app.kubernetes.io/{name,component,part-of=ca4} on the object and on its pod template."""
    targets = [("metadata", obj.labels)]
    if obj.kind in WORKLOAD_KINDS:
        targets.append(("pod template", pod_labels(obj)))
    problems = []
    for where, labels in targets:
        missing = [label for label in LABELS if not labels.get(label)]
        if missing or labels.get("app.kubernetes.io/part-of") != "ca4":
            problems.append(f"{obj.ref} {where}: expected {LABELS} with part-of=ca4, found {labels}")
    return problems


def scope_problems(obj: Obj) -> list[str]:
    """Namespaced objects in a CA4 namespace (nothing lands in `default`); cluster-wide ones named ca4-*."""
    if obj.kind == "Namespace":
        return [] if obj.name in NAMESPACES else [f"{obj.ref}: not one of the CA4 namespaces {NAMESPACES}"]
    if obj.kind in CLUSTER_SCOPED:
        ok = obj.namespace is None and obj.name.startswith("ca4-")
        return [] if ok else [f"{obj.ref}: cluster-wide names carry the ca4- prefix and no namespace"]
    if obj.namespace not in NAMESPACES:
        return [f"{obj.ref}: namespace {obj.namespace!r} is not one of {NAMESPACES}"]
    return []


def image_problem(image: str) -> str | None:
    """None for a pinned image: a release tag, or the CA4 image at its commit tag."""
    ca4_name = pins()["CA4_IMAGE_NAME"]
    if image.startswith(f"{ca4_name}:"):
        tag = image.removeprefix(f"{ca4_name}:")
        return (
            None if CA4_IMAGE_TAG.fullmatch(tag) else f"the CA4 image should carry a commit tag, not {tag!r}"
        )
    return None if RELEASE_IMAGE.fullmatch(image) else "not pinned to a release tag (name:vX.Y.Z)"


def pod_problems(obj: Obj, api_clients: frozenset[str]) -> list[str]:
    """Non-root with RuntimeDefault seccomp, no service links, a token only for the API's clients."""
    spec = pod_spec(obj)
    problems = []
    psc = spec.get("securityContext", {})
    if psc.get("runAsNonRoot") is not True or psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        problems.append(f"{obj.ref}: pod securityContext {psc}")
    if spec.get("enableServiceLinks") is not False:
        problems.append(f"{obj.ref}: enableServiceLinks should be false (no *_SERVICE_HOST variables)")
    if pod_labels(obj).get("app.kubernetes.io/name") in api_clients:
        if spec.get("serviceAccountName") in (None, "", "default"):
            problems.append(f"{obj.ref}: a pod that reads the API runs under its own ServiceAccount")
    elif spec.get("automountServiceAccountToken") is not False:
        problems.append(
            f"{obj.ref}: automountServiceAccountToken should be false (the pod does not use the API)"
        )
    return problems


def container_problems(obj: Obj, c: dict[str, Any]) -> list[str]:
    """No escalation, read-only root, every capability dropped, requests and limits, a pinned image."""
    where = f"{obj.ref} container {c['name']}"
    problems = []
    sc = c.get("securityContext", {})
    expected = {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    for key, value in expected.items():
        if sc.get(key) != value:
            problems.append(f"{where}: securityContext.{key} expected {value}, found {sc.get(key)}")
    res = c.get("resources", {})
    for part in ("requests", "limits"):
        for kind in ("cpu", "memory"):
            if kind not in res.get(part, {}):
                problems.append(f"{where}: no {part}.{kind}")
    wrong = image_problem(str(c.get("image", "")))
    if wrong:
        problems.append(f"{where}: image {c.get('image')!r}: {wrong}")
    return problems


def probe_problems(obj: Obj, c: dict[str, Any]) -> list[str]:
    """Long-running containers: readiness and liveness probes; every probe on a named port of its own."""
    where = f"{obj.ref} container {c['name']}"
    names = {p["name"] for p in c.get("ports", []) if "name" in p}
    problems = []
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        spec = c.get(probe)
        if spec is None:
            if probe != "startupProbe" and obj.kind != "Job":
                problems.append(f"{where}: no {probe}")
            continue
        port = (spec.get("httpGet") or spec.get("tcpSocket") or {}).get("port")
        if not isinstance(port, str) or port not in names:
            problems.append(f"{where}: {probe} port {port!r} is not one of the named ports {sorted(names)}")
    return problems


def house_rule_problems(objs: Iterable[Obj], api_clients: frozenset[str] = API_CLIENTS) -> list[str]:
    """Every house rule of STYLE.md a schema cannot express, over a layer's objects; one line each."""
    problems = []
    for obj in objs:
        problems += label_problems(obj) + scope_problems(obj)
        if obj.kind not in WORKLOAD_KINDS:
            continue
        problems += pod_problems(obj, api_clients) + restricted_problems(obj)
        for c in containers(obj):
            problems += container_problems(obj, c) + probe_problems(obj, c)
    return problems


# --- Pod Security "restricted" ------------------------------------------------------------------------

# the volume types the restricted profile allows (Kubernetes' pod-security-admission, v1.25+)
RESTRICTED_VOLUMES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected",
    "secret",
}  # fmt: skip


def restricted_problems(obj: Obj) -> list[str]:
    """What Pod Security admission's "restricted" profile (and "baseline" beneath it) refuses
    in a workload's pod, as the API server checks it under the label enforce: restricted."""
    spec = pod_spec(obj)
    psc = spec.get("securityContext", {})
    problems = [f"{obj.ref}: {k} is set" for k in ("hostNetwork", "hostPID", "hostIPC") if spec.get(k)]
    for volume in spec.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            problems.append(f"{obj.ref}: volume {volume['name']} of type {sorted(kinds)} is not allowed")
    if psc.get("sysctls"):
        problems.append(f"{obj.ref}: sysctls {psc['sysctls']}")
    if psc.get("runAsUser") == 0:
        problems.append(f"{obj.ref}: pod runAsUser 0")
    for c in containers(obj):
        problems += [f"{obj.ref} container {c['name']}: {p}" for p in restricted_container(c, psc)]
    return problems


def restricted_container(c: dict[str, Any], psc: dict[str, Any]) -> list[str]:
    """The container-level part of "restricted" (psc: the pod's securityContext, inherited)."""
    sc = c.get("securityContext", {})
    caps = sc.get("capabilities", {})
    seccomp = sc.get("seccompProfile", psc.get("seccompProfile", {})).get("type")
    checks = {
        "privileged": bool(sc.get("privileged")),
        "allowPrivilegeEscalation must be false": sc.get("allowPrivilegeEscalation") is not False,
        f"capabilities {caps} (drop ALL, add at most NET_BIND_SERVICE)": (
            "ALL" not in caps.get("drop", []) or bool(set(caps.get("add", [])) - {"NET_BIND_SERVICE"})
        ),
        "not forced to run as non-root": (
            sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is not True or sc.get("runAsUser") == 0
        ),
        f"seccomp profile {seccomp!r}": seccomp not in ("RuntimeDefault", "Localhost"),
        "hostPort": any(p.get("hostPort") for p in c.get("ports", [])),
        f"procMount {sc.get('procMount')}": sc.get("procMount", "Default") != "Default",
        "AppArmor unconfined": sc.get("appArmorProfile", {}).get("type") == "Unconfined",
    }
    return [what for what, failed in checks.items() if failed]


def checkov_skips(objs: Iterable[Obj]) -> tuple[int, list[str]]:
    """(number of inline checkov skips, the malformed ones): `checkov.io/skipN: CKV_K8S_x=<why>`."""
    count, problems = 0, []
    for obj in objs:
        for key, value in (obj.body["metadata"].get("annotations") or {}).items():
            if not key.startswith("checkov.io/skip"):
                continue
            count += 1
            if not re.fullmatch(r"(CKV2?_K8S_\d+)=([^=]{30,})", str(value)):
                want = "'CKV_K8S_<n>=<a reason of 30+ characters, no =>'"
                problems.append(f"{obj.ref} {key}: expected {want}, found {value!r}")
    return count, problems
