"""Fixtures of the static monitoring checks: the promtools and the kustomize build.

Two promtools, because two Prometheus versions read these files: Debian's 2.42 (the local
stack's Prometheus, installed by `make test`) and the cluster's (prom/prometheus in
manifests/monitoring/prometheus/prometheus.yaml). Debian builds Prometheus without the
Kubernetes service discovery, so only the cluster's promtool can check the cluster's
prometheus.yml; it is built once from the Go module proxy (Prometheus's Go module is
github.com/prometheus/prometheus v0.3XX.Y for release 3.XX.Y) into the CA4 cache.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.kube import Obj, cache_dir, kustomize_build
from tests.monitoring.grafana import MONITORING
from tests.tools.run import run

PROMETHEUS_MANIFEST = MONITORING / "prometheus" / "prometheus.yaml"
BUILD_TIMEOUT_S = 1800  # the first build downloads and compiles Prometheus's dependencies


def cluster_prometheus_version() -> str:
    """The release of the cluster's Prometheus image, e.g. ``3.10.0``."""
    match = re.search(r"image:\s*prom/prometheus:v(\d+\.\d+\.\d+)\s", PROMETHEUS_MANIFEST.read_text())
    assert match, f"no pinned prom/prometheus:vX.Y.Z image in {PROMETHEUS_MANIFEST}"
    return match.group(1)


@pytest.fixture(scope="session")
def debian_promtool() -> str:
    """Debian's promtool, the version of the local stack's Prometheus.

    Requested by name (`request.getfixturevalue(f"{which}_promtool")` in test_prometheus.py),
    which is why dead-code finders do not see a use.
    """
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool not found: run scripts/ensure_packages.sh prometheus (make test does)")
    return path


@pytest.fixture(scope="session")
def cluster_promtool() -> str:
    """promtool of the cluster's Prometheus release, built once from the Go module proxy."""
    version = cluster_prometheus_version()
    major, minor, patch = (int(x) for x in version.split("."))
    assert major == 3, f"prom/prometheus:v{version}: the module mapping below is for 3.x"
    module = f"github.com/prometheus/prometheus@v0.{300 + minor}.{patch}"
    target = cache_dir() / f"promtool-{version}" / "promtool"
    if target.exists():
        return str(target)
    go = shutil.which("go")
    if go is None:
        pytest.fail(f"go not found: needed once to build promtool {version} (see the README's prerequisites)")
    log = cache_dir() / "logs" / f"go-promtool-{version}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GOWORK": "off", "GOFLAGS": "-mod=mod"}
    # `go install module@version` refuses modules whose go.mod has replace directives, as
    # Prometheus's has: download the module, then build in a writable copy of it.
    out = run([go, "mod", "download", "-json", module], timeout=600, env=env)
    assert out.returncode == 0, f"go mod download {module} failed:\n{out.stdout}{out.stderr}"
    source = Path(json.loads(out.stdout)["Dir"])
    work = target.parent / "src"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(source, work)
    for path in [work, *work.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o200)  # module cache files are read-only
    partial = target.with_suffix(".partial")
    with log.open("w") as sink:
        stamp = f"-X github.com/prometheus/common/version.Version={version}"
        build = subprocess.run(
            [go, "build", "-trimpath", "-ldflags", stamp, "-o", str(partial), "./cmd/promtool"],
            check=False, cwd=work, stdout=sink, stderr=subprocess.STDOUT, env=env, timeout=BUILD_TIMEOUT_S,
        )  # fmt: skip
    assert build.returncode == 0, f"building promtool {version} failed; see {log}"
    partial.rename(target)
    shutil.rmtree(work, ignore_errors=True)
    return str(target)


@pytest.fixture(scope="session")
def built() -> list[Obj]:
    """The objects `kubectl apply -k manifests/monitoring` would send."""
    return kustomize_build(MONITORING)
