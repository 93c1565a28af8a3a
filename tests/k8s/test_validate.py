"""Every manifest against the Kubernetes API schema of the pinned K3s, strictly, and the
house rules of STYLE.md that a schema cannot express (labels, probes, limits, non-root)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.k8s.conftest import (
    MANIFESTS,
    Obj,
    kustomize_build,
    load_objects,
    manifest_files,
    pins,
    pod_spec,
    workloads,
)

# the first kustomize build may compile kustomize from the Go module proxy (no kubectl)
pytestmark = pytest.mark.timeout(900)


LABELS = ("app.kubernetes.io/name", "app.kubernetes.io/component", "app.kubernetes.io/part-of")


def k8s_version() -> str:
    """v1.34.3+k3s3 -> 1.34.3: the Kubernetes release inside the pinned K3s."""
    m = re.fullmatch(r"v(\d+\.\d+\.\d+)\+k3s\d+", pins()["CA4_K3S_VERSION_PINNED"])
    assert m, f"CA4_K3S_VERSION_PINNED is not a K3s release tag: {pins()['CA4_K3S_VERSION_PINNED']!r}"
    return m.group(1)


def validate(objs: list[Obj]) -> list[str]:
    """Strict schema validation; one line per invalid object."""
    problems = []
    for obj in objs:
        try:
            kubernetes_validate.validate(obj.body, k8s_version(), strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            problems.append(
                f"{obj.ref}: no schema for {obj.body.get('apiVersion')}/{obj.kind} "
                f"in Kubernetes {k8s_version()}"
            )
        except kubernetes_validate.ValidationError as exc:
            path = "/".join(str(p) for p in exc.path)
            problems.append(f"{obj.ref}: {exc.message} at {path or '(root)'}")
    return problems


def test_the_pinned_k3s_is_within_kubernetes_validates_schemas() -> None:
    """A K3s newer than the schemas would make every check below meaningless."""
    minor = tuple(int(x) for x in k8s_version().split(".")[:2])
    latest = tuple(int(x) for x in kubernetes_validate.latest_version().split(".")[:2])
    assert (1, 25) <= minor <= latest, f"K3s's Kubernetes {k8s_version()} outside the schemas 1.25..{latest}"


@pytest.mark.parametrize(
    "path", manifest_files(include_template=True), ids=lambda p: f"{p.parent.name}/{p.name}"
)
def test_manifest_file_is_valid_for_the_pinned_kubernetes(path: Path) -> None:
    """Strict: unknown fields are errors, not warnings."""
    objs = load_objects([path])
    assert objs, f"{path} holds no object"
    problems = validate(objs)
    assert not problems, "invalid against Kubernetes " + k8s_version() + ":\n" + "\n".join(problems)


def test_rendered_secrets_are_valid(rendered_secrets: list[Obj]) -> None:
    """What make ca4-platform-setup applies, from sample outputs."""
    assert len(rendered_secrets) == 3, (
        f"expected 3 rendered Secrets, found {[o.name for o in rendered_secrets]}"
    )
    problems = validate(rendered_secrets)
    assert not problems, "\n".join(problems)


def test_built_overlays_are_valid(rendered: Path, kustomize: list[str]) -> None:
    """The exact objects `kubectl apply -k rendered/{platform,app}` sends."""
    objs = kustomize_build(kustomize, rendered / "platform") + kustomize_build(kustomize, rendered / "app")
    problems = validate(objs)
    assert not problems, "\n".join(problems)


def test_base_kustomizations_list_every_manifest_but_the_template() -> None:
    """A file missing from kustomization.yaml would never be applied; secrets.yaml must never be."""
    for layer in ("platform", "app"):
        kustomization = yaml.safe_load((MANIFESTS / layer / "kustomization.yaml").read_text())
        listed = set(kustomization["resources"])
        present = {p.name for p in (MANIFESTS / layer).glob("*.yaml")} - {
            "kustomization.yaml",
            "secrets.yaml",
        }
        assert listed == present, (
            f"manifests/{layer}/kustomization.yaml lists {sorted(listed)}, files are {sorted(present)}"
        )
        assert "secrets.yaml" not in listed, f"manifests/{layer}: the Secrets template must never be applied"


def test_every_object_carries_the_three_labels(objects: list[Obj]) -> None:
    """app.kubernetes.io/{name,component,part-of=ca4} on objects and on pod templates."""
    problems = []
    for obj in objects:
        targets = [("metadata", obj.body["metadata"].get("labels") or {})]
        if obj in workloads(objects):
            targets.append(("pod template", obj.body["spec"]["template"]["metadata"].get("labels") or {}))
        for where, labels in targets:
            missing = [label for label in LABELS if not labels.get(label)]
            if missing or labels.get("app.kubernetes.io/part-of") != "ca4":
                problems.append(f"{obj.ref} {where}: expected {LABELS} with part-of=ca4, found {labels}")
    assert not problems, "\n".join(problems)


def test_every_namespaced_object_names_its_namespace(objects: list[Obj]) -> None:
    """Nothing lands in `default` by accident."""
    loose = [
        o.ref
        for o in objects
        if o.kind != "Namespace" and o.namespace not in ("platform", "app", "monitoring")
    ]
    assert not loose, f"objects without a CA4 namespace: {loose}"


def containers(obj: Obj) -> list[dict[str, Any]]:
    """The containers (and init containers) of a workload."""
    spec = pod_spec(obj)
    return list(spec.get("containers", [])) + list(spec.get("initContainers", []))


def test_workloads_run_non_root_without_privileges(objects: list[Obj]) -> None:
    """runAsNonRoot, RuntimeDefault seccomp, no escalation, all capabilities dropped, read-only root."""
    problems = []
    for obj in workloads(objects):
        spec = pod_spec(obj)
        psc = spec.get("securityContext", {})
        if (
            psc.get("runAsNonRoot") is not True
            or psc.get("seccompProfile", {}).get("type") != "RuntimeDefault"
        ):
            problems.append(f"{obj.ref}: pod securityContext {psc}")
        if spec.get("automountServiceAccountToken") is not False:
            problems.append(
                f"{obj.ref}: automountServiceAccountToken should be false (no pod talks to the API)"
            )
        for c in containers(obj):
            sc = c.get("securityContext", {})
            expected = {
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]},
            }
            for key, value in expected.items():
                if sc.get(key) != value:
                    problems.append(
                        f"{obj.ref} container {c['name']}: securityContext.{key} "
                        f"expected {value}, found {sc.get(key)}"
                    )
    assert not problems, "\n".join(problems)


def test_workloads_have_requests_limits_and_pinned_images(objects: list[Obj]) -> None:
    """cpu and memory requests and limits; no :latest, no untagged image."""
    problems = []
    for obj in workloads(objects):
        for c in containers(obj):
            res = c.get("resources", {})
            for part in ("requests", "limits"):
                for kind in ("cpu", "memory"):
                    if kind not in res.get(part, {}):
                        problems.append(f"{obj.ref} container {c['name']}: no {part}.{kind}")
            image = c.get("image", "")
            tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
            if not tag or tag == "latest":
                problems.append(f"{obj.ref} container {c['name']}: image {image!r} has no pinned tag")
    assert not problems, "\n".join(problems)


def test_probes_use_named_ports_that_exist(objects: list[Obj]) -> None:
    """Every long-running container has readiness and liveness probes on one of its named ports."""
    problems = []
    for obj in workloads(objects):
        if obj.kind == "Job":
            continue
        for c in containers(obj):
            names = {p["name"] for p in c.get("ports", []) if "name" in p}
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                spec = c.get(probe)
                if spec is None:
                    if probe != "startupProbe":
                        problems.append(f"{obj.ref} container {c['name']}: no {probe}")
                    continue
                action = spec.get("httpGet") or spec.get("tcpSocket") or {}
                port = action.get("port")
                if not isinstance(port, str) or port not in names:
                    problems.append(
                        f"{obj.ref} container {c['name']}: {probe} port {port!r} "
                        f"is not one of the named ports {sorted(names)}"
                    )
    assert not problems, "\n".join(problems)


def test_every_checkov_skip_names_a_check_and_a_reason(objects: list[Obj]) -> None:
    """Inline skips are justified: `checkov.io/skipN: CKV_K8S_x=<why>`, and checkov splits on '='."""
    problems = []
    count = 0
    for obj in objects:
        for key, value in (obj.body["metadata"].get("annotations") or {}).items():
            if not key.startswith("checkov.io/skip"):
                continue
            count += 1
            m = re.fullmatch(r"(CKV2?_K8S_\d+)=([^=]{30,})", str(value))
            if not m:
                problems.append(
                    f"{obj.ref} {key}: expected 'CKV_K8S_<n>=<a reason of 30+ characters, no =>', "
                    f"found {value!r}"
                )
    assert count > 0, "expected the documented checkov skips on the workloads"
    assert not problems, "\n".join(problems)
