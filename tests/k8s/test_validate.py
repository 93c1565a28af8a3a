"""Every manifest against the Kubernetes API schema of the pinned K3s, strictly; the house
rules of STYLE.md that a schema cannot express (labels, probes, limits, non-root, pinned
images) and Pod Security "restricted" over what `kubectl apply -k` sends for platform and app
(tests/monitoring applies the same rules, from tests/kube.py, to manifests/monitoring)."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from tests.k8s.conftest import manifest_files
from tests.kube import (
    MANIFESTS,
    NAMESPACES,
    Obj,
    checkov_skips,
    house_rule_problems,
    k8s_version,
    load_objects,
    restricted_problems,
    validate,
    workloads,
)

# the first kustomize build may compile kustomize from the Go module proxy (no kubectl)
pytestmark = pytest.mark.timeout(900)
LAYERS = ("platform", "app")


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


@pytest.mark.parametrize("layer", LAYERS)
def test_built_overlays_are_valid(built_overlays: dict[str, list[Obj]], layer: str) -> None:
    """The exact objects `kubectl apply -k rendered/{platform,app}` sends."""
    problems = validate(built_overlays[layer])
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


@pytest.mark.parametrize("layer", LAYERS)
def test_the_built_overlays_follow_the_house_rules(built_overlays: dict[str, list[Obj]], layer: str) -> None:
    """Labels (objects and pod templates), CA4 namespaces, non-root with RuntimeDefault seccomp,
    no escalation, every capability dropped, read-only root, no service links, no API token
    unless the pod reads the API, cpu and memory requests and limits, pinned images, and
    readiness and liveness probes on named ports."""
    problems = house_rule_problems(built_overlays[layer])
    assert not problems, "\n".join(problems)


def test_every_namespace_enforces_pod_security_restricted() -> None:
    """platform, app and monitoring all enforce "restricted" at the pinned Kubernetes minor:
    no CA4 pod needs more (Alloy reads logs through the API, not hostPath)."""
    namespaces = [
        o for o in load_objects([MANIFESTS / "platform" / "namespaces.yaml"]) if o.kind == "Namespace"
    ]
    assert sorted(o.name for o in namespaces) == sorted(NAMESPACES), [o.name for o in namespaces]
    minor = "v" + ".".join(k8s_version().split(".")[:2])
    for ns in namespaces:
        levels = {k: v for k, v in ns.labels.items() if k.startswith("pod-security.kubernetes.io/")}
        assert levels.get("pod-security.kubernetes.io/enforce") == "restricted", f"{ns.ref}: {levels}"
        assert levels.get("pod-security.kubernetes.io/enforce-version") == minor, (
            f"{ns.ref}: enforce-version should be the pinned K3s's minor {minor}: {levels}"
        )
        lax = {k: v for k, v in levels.items() if not k.endswith("-version") and v != "restricted"}
        assert not lax, f"{ns.ref}: every Pod Security level should be restricted: {lax}"


@pytest.mark.parametrize("layer", LAYERS)
def test_every_pod_meets_pod_security_restricted(built_overlays: dict[str, list[Obj]], layer: str) -> None:
    """What the API server would refuse under enforce: restricted, found before a deploy."""
    objs = workloads(built_overlays[layer])
    assert objs, f"no workload in the {layer} overlay"
    problems = [p for obj in objs for p in restricted_problems(obj)]
    assert not problems, "\n".join(problems)


def test_the_restricted_check_refuses_what_the_api_server_refuses(
    built_overlays: dict[str, list[Obj]],
) -> None:
    """The check above is only a check if it fails on a pod the profile forbids."""
    good = next(o for o in workloads(built_overlays["app"]))
    assert not restricted_problems(good), restricted_problems(good)
    body = yaml.safe_load(yaml.safe_dump(good.body))
    spec = body["spec"]["template"]["spec"]
    spec["volumes"] = [*spec.get("volumes", []), {"name": "logs", "hostPath": {"path": "/var/log"}}]
    spec["hostNetwork"] = True
    spec["containers"][0]["securityContext"]["capabilities"] = {"drop": ["ALL"], "add": ["SYS_ADMIN"]}
    problems = " ".join(restricted_problems(Obj(good.path, body)))
    for word in ("hostPath", "hostNetwork", "SYS_ADMIN"):
        assert word in problems, f"{word} not refused: {problems}"


def test_every_checkov_skip_names_a_check_and_a_reason(built_overlays: dict[str, list[Obj]]) -> None:
    """Inline skips are justified: `checkov.io/skipN: CKV_K8S_x=<why>`, and checkov splits on '='."""
    count, problems = checkov_skips(o for layer in LAYERS for o in built_overlays[layer])
    assert count > 0, "expected the documented checkov skips on the workloads"
    assert not problems, "\n".join(problems)
