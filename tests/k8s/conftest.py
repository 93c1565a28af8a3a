"""Fixtures of the Kubernetes checks: the manifests as objects, a rendering from sample
Terraform outputs, the pins the scripts share, and a kustomize to build overlays with.

No cluster and no network: everything here is read from the repository or rendered into
temporary folders.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
SCRIPTS = REPO / "scripts"
SAMPLE_OUTPUTS = Path(__file__).parent / "fixtures" / "terraform-outputs.json"
SAMPLE_TAG = "git-0123456789ab"
SAMPLE_TOKEN = "sample-token-for-the-k8s-tests-0001"
KUSTOMIZE_MODULE = "sigs.k8s.io/kustomize/kustomize/v5@v5.5.0"


@dataclass(frozen=True)
class Obj:
    """One Kubernetes object and the file it came from."""

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
    def ref(self) -> str:
        """``Kind namespace/name (file)`` for assertion messages."""
        where = f"{self.namespace}/" if self.namespace else ""
        shown = self.path.relative_to(REPO) if self.path.is_relative_to(REPO) else self.path.name
        return f"{self.kind} {where}{self.name} ({shown})"


def load_objects(paths: list[Path]) -> list[Obj]:
    """Every non-empty YAML document of the given files."""
    out = []
    for path in paths:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                out.append(Obj(path, doc))
    return out


def manifest_files(*, include_template: bool = False) -> list[Path]:
    """The YAML files of manifests/platform and manifests/app (kustomizations excluded)."""
    files = sorted((MANIFESTS / "platform").glob("*.yaml")) + sorted((MANIFESTS / "app").glob("*.yaml"))
    files = [f for f in files if f.name != "kustomization.yaml"]
    if not include_template:
        files = [f for f in files if f.name != "secrets.yaml"]
    return files


def find(objects: list[Obj], kind: str, name: str, namespace: str | None = None) -> Obj:
    """The one object of that kind and name (and namespace); a clear failure otherwise."""
    hits = [
        o
        for o in objects
        if o.kind == kind and o.name == name and (namespace is None or o.namespace == namespace)
    ]
    assert len(hits) == 1, f"expected exactly one {kind} {namespace or '*'}/{name}, found {len(hits)}"
    return hits[0]


def workloads(objects: list[Obj]) -> list[Obj]:
    """Deployments, StatefulSets and Jobs (the objects with a pod template)."""
    return [o for o in objects if o.kind in ("Deployment", "StatefulSet", "Job")]


def pod_spec(obj: Obj) -> dict[str, Any]:
    """spec.template.spec of a workload."""
    return dict(obj.body["spec"]["template"]["spec"])


def pins() -> dict[str, str]:
    """scripts/lib/pins.sh as a dict (KEY=value lines)."""
    text = (SCRIPTS / "lib" / "pins.sh").read_text()
    return dict(re.findall(r"^([A-Z0-9_]+)=(\S+)$", text, flags=re.M))


def load_renderer() -> ModuleType:
    """scripts/render_platform_config.py as a module (it is a script, not a package)."""
    spec = importlib.util.spec_from_file_location(
        "render_platform_config", SCRIPTS / "render_platform_config.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def renderer() -> ModuleType:
    """The renderer module."""
    return load_renderer()


@pytest.fixture(scope="session")
def objects() -> list[Obj]:
    """Every object the kit applies from the repository (the Secrets template excluded)."""
    return load_objects(manifest_files())


@pytest.fixture(scope="session")
def tokens_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An API token file like the one make ca4-platform-setup writes."""
    path = tmp_path_factory.mktemp("secrets") / "ca4-api-tokens"
    path.write_text(f"# comment\n{SAMPLE_TOKEN}\n")
    path.chmod(0o600)
    return path


def render_into(
    renderer: ModuleType, out: Path, tokens: Path, brokers: int = 3, tag: str | None = SAMPLE_TAG
) -> int:
    """Run the renderer's command line into ``out``; its exit code."""
    args = [
        "--outputs",
        str(SAMPLE_OUTPUTS),
        "--api-tokens-file",
        str(tokens),
        "--kafka-brokers",
        str(brokers),
    ]
    args += ["--out", str(out)] + (["--image-tag", tag] if tag else [])
    return int(renderer.main(args))


@pytest.fixture(scope="session")
def rendered(renderer: ModuleType, tokens_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A rendering of the sample outputs (3 brokers, the sample tag)."""
    out = tmp_path_factory.mktemp("rendered")
    assert render_into(renderer, out, tokens_file) == 0, "rendering the sample outputs failed"
    return out


@pytest.fixture(scope="session")
def rendered_secrets(rendered: Path) -> list[Obj]:
    """The Secrets the sample rendering produced."""
    return load_objects(sorted((rendered / "platform").glob("ca4-*.yaml")))


@pytest.fixture(scope="session")
def kustomize(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """A kustomize build command: kubectl's built-in one, a kustomize binary, or one built
    from the Go module proxy (cached by Go) when neither is installed."""
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    go = shutil.which("go")
    if not go:
        pytest.fail("no kubectl, kustomize or go on PATH: install kubectl (or Go, to build kustomize)")
    gobin = Path(os.environ.get("CA4_CACHE_DIR", Path.home() / ".cache" / "ca4")) / "bin"
    binary = gobin / "kustomize"
    if not binary.exists():
        subprocess.run(
            [go, "install", KUSTOMIZE_MODULE],
            env={**os.environ, "GOBIN": str(gobin)},
            check=True,
            timeout=900,
        )
    return [str(binary), "build"]


def kustomize_build(cmd: list[str], folder: Path) -> list[Obj]:
    """Build a kustomization folder into objects."""
    proc = subprocess.run([*cmd, str(folder)], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, f"kustomize build of {folder} failed: {proc.stderr.strip()[-800:]}"
    return [Obj(folder / "kustomization.yaml", d) for d in yaml.safe_load_all(proc.stdout) if d]
