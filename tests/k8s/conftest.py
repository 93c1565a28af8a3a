"""Fixtures of the Kubernetes checks: the manifests as objects, a rendering from sample
Terraform outputs, and its overlays built once per session (tests/kube.py builds them).

No cluster and no network: everything here is read from the repository or rendered into
temporary folders.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from tests.kube import MANIFESTS, SCRIPTS, Obj, kustomize_build, load_objects

SAMPLE_OUTPUTS = Path(__file__).parent / "fixtures" / "terraform-outputs.json"
SAMPLE_TAG = "git-0123456789ab"
SAMPLE_TOKEN = "sample-token-for-the-k8s-tests-0001"


def manifest_files(*, include_template: bool = False) -> list[Path]:
    """The YAML files of manifests/platform and manifests/app (kustomizations excluded)."""
    files = sorted((MANIFESTS / "platform").glob("*.yaml")) + sorted((MANIFESTS / "app").glob("*.yaml"))
    files = [f for f in files if f.name != "kustomization.yaml"]
    if not include_template:
        files = [f for f in files if f.name != "secrets.yaml"]
    return files


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
def built_overlays(rendered: Path) -> dict[str, list[Obj]]:
    """The exact objects `kubectl apply -k rendered/{platform,app}` sends, by layer."""
    return {layer: kustomize_build(rendered / layer) for layer in ("platform", "app")}
