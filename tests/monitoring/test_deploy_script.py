"""scripts/deploy_monitoring_ca4.sh run for real against a stand-in kubectl.

The stand-in records every call and answers like a cluster where the rollouts succeed, so
the script's own logic runs: prerequisites, the password generated once (mode 600) and
reused, the Secret rendered from the file, the kustomize apply, one wait per Deployment of
the build, the clean-up of replaced ConfigMaps, and what it tells the operator.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.monitoring.conftest import pins
from tests.monitoring.grafana import REPO

SCRIPT = REPO / "scripts" / "deploy_monitoring_ca4.sh"

# Answers by subcommand; every call is appended to $STUB_LOG, stdin of apply to $STUB_DIR.
KUBECTL = r"""#!/usr/bin/env bash
set -euo pipefail
echo "$*" >>"$STUB_LOG"
args=" $* "
case "$args" in
  *" get namespace monitoring "*) [ -z "${STUB_NO_NAMESPACE:-}" ] && echo namespace/monitoring || exit 1 ;;
  *" create secret generic grafana-admin "*)
    for a in "$@"; do
      case "$a" in --from-file=admin-password=*) file="${a#--from-file=admin-password=}" ;; esac
    done
    printf 'kind: Secret\nstringData:\n  admin-password: %s\n' "$(cat "$file")" ;;
  *" label --local "*) cat ;;
  *" apply "*" -f - "*) cat >"$STUB_DIR/applied-secret.yaml" ;;
  *" apply "*" -k "*) : ;;
  *" rollout status deployment/"*)
    for a in "$@"; do case "$a" in deployment/*) d="${a#deployment/}" ;; esac; done
    [ "${STUB_FAIL_ROLLOUT:-}" = "$d" ] && exit 1 || echo "deployment \"$d\" successfully rolled out" ;;
  *" get deployments "*) printf 'prometheus-config-new\nprometheus-rules-abc\n' ;;
  *" get configmaps "*)
    printf 'configmap/%s\n' prometheus-config-new prometheus-config-old prometheus-rules-abc ;;
  *) : ;;
esac
"""


@contextlib.contextmanager
def k3s_api_port() -> Iterator[None]:
    """Something listening on the K3s API tunnel's local port, as after make ca4-tunnels-up."""
    port = int(pins()["CA4_K3S_API_LOCAL_PORT"])
    sock = socket.socket()
    try:
        sock.bind(("127.0.0.1", port))
        sock.listen()
    except OSError:
        pass  # taken: something (a real tunnel) already accepts there, which is all the script checks
    try:
        yield
    finally:
        sock.close()


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A PATH with the stand-in kubectl, private folders in tmp_path, a kubeconfig file."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    kubectl = bin_dir / "kubectl"
    kubectl.write_text(KUBECTL)
    kubectl.chmod(0o755)
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "ca4-kubeconfig").write_text("apiVersion: v1\nkind: Config\n")
    keep = {k: v for k, v in os.environ.items() if k in ("HOME", "LANG")}
    return {
        **keep,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "CA4_SECRETS_DIR": str(secrets),
        "CA4_STATE_DIR": str(tmp_path / "state"),
        "STUB_LOG": str(tmp_path / "kubectl.log"),
        "STUB_DIR": str(tmp_path),
    }


def run(env: dict[str, str], *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    """The script, as make runs it."""
    with k3s_api_port():
        return subprocess.run(
            [str(SCRIPT), *args],
            env={**env, **extra},
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO,
        )


def calls(env: dict[str, str]) -> list[str]:
    """kubectl's argument lines so far."""
    log = Path(env["STUB_LOG"])
    return log.read_text().splitlines() if log.exists() else []


def test_shellcheck_passes() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.fail("shellcheck not found: apt-get install shellcheck")
    out = subprocess.run(
        [shellcheck, "-x", str(SCRIPT)], check=False, capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_help_says_how_to_open_grafana(env: dict[str, str]) -> None:
    out = run(env, "--help")
    assert out.returncode == 0, out.stderr
    assert "make ca4-tunnels-up" in out.stdout and "http://localhost:3000" in out.stdout, out.stdout
    assert calls(env) == [], "--help must not touch the cluster"


def test_a_missing_kubeconfig_stops_before_anything_with_exit_2(env: dict[str, str], tmp_path: Path) -> None:
    out = run(env, CA4_KUBECONFIG=str(tmp_path / "nowhere"))
    assert out.returncode == 2, out.stdout + out.stderr
    assert "no kubeconfig at" in out.stderr and "make ca4-bootstrap-k3s" in out.stderr, out.stderr
    assert calls(env) == []


def test_a_missing_namespace_points_at_platform_setup(env: dict[str, str]) -> None:
    out = run(env, STUB_NO_NAMESPACE="1")
    assert out.returncode == 2, out.stdout + out.stderr
    assert "make ca4-platform-setup" in out.stderr, out.stderr


def deployments_in_build(rendered: list[dict[str, Any]]) -> set[str]:
    """The Deployments kustomize builds from manifests/monitoring."""
    return {o["metadata"]["name"] for o in rendered if o["kind"] == "Deployment"}


def test_a_deploy_applies_everything_waits_for_each_deployment_and_cleans_up(
    env: dict[str, str], rendered: list[dict[str, Any]]
) -> None:
    out = run(env)
    assert out.returncode == 0, out.stdout + out.stderr
    log = calls(env)
    assert all(line.startswith("--kubeconfig ") for line in log), f"kubectl without the CA4 kubeconfig: {log}"
    assert any(
        " apply --server-side " in f" {line} " and line.endswith(f"-k {REPO}/manifests/monitoring")
        for line in log
    ), log
    waited = {
        line.rsplit("deployment/", 1)[1].split()[0] for line in log if "rollout status deployment/" in line
    }
    assert waited == deployments_in_build(rendered), (
        f"the script waits for {sorted(waited)}; "
        f"manifests/monitoring builds {sorted(deployments_in_build(rendered))}"
    )
    deleted = [line for line in log if " delete " in f" {line} "]
    assert len(deleted) == 1 and "configmap/prometheus-config-old" in deleted[0], (
        f"only the ConfigMap no Deployment mounts should go: {deleted}"
    )
    assert (
        "http://localhost:3000" in out.stdout
        and f"localhost:{pins()['CA4_PROMETHEUS_LOCAL_PORT']}" in out.stdout
    )


def test_the_password_is_generated_once_private_and_reused(env: dict[str, str]) -> None:
    password_file = Path(env["CA4_SECRETS_DIR"]) / "ca4-grafana-admin-password"
    first = run(env)
    assert first.returncode == 0, first.stdout + first.stderr
    password = password_file.read_text()
    assert len(password) >= 24 and password.isalnum(), f"generated password {len(password)} chars"
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600, oct(password_file.stat().st_mode)
    secret = (Path(env["STUB_DIR"]) / "applied-secret.yaml").read_text()
    assert f"admin-password: {password}" in secret, "the Secret is rendered from the file"
    assert all(password not in line for line in calls(env)), "the password must never be on a command line"

    second = run(env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert password_file.read_text() == password, "a second run must reuse the password (idempotent)"
    assert "generating" not in second.stdout


def test_a_password_from_the_environment_wins(env: dict[str, str]) -> None:
    out = run(env, GRAFANA_ADMIN_PASSWORD="from-the-environment-123")
    assert out.returncode == 0, out.stdout + out.stderr
    secret = (Path(env["STUB_DIR"]) / "applied-secret.yaml").read_text()
    assert "admin-password: from-the-environment-123" in secret


def test_a_failed_rollout_fails_the_target(env: dict[str, str]) -> None:
    out = run(env, STUB_FAIL_ROLLOUT="loki")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "did not finish" in out.stderr, out.stderr
    assert not [line for line in calls(env) if " delete " in f" {line} "], (
        "no clean-up after a failed rollout"
    )
