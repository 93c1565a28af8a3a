"""scripts/deploy_monitoring_ca4.sh run for real against a stand-in kubectl.

The stand-in records every call and answers like a cluster where the rollouts succeed, so
the script's own logic runs: prerequisites, the password chosen once (mode 600) and reused,
the Secret rendered from the file, the kustomize apply, one wait per Deployment the cluster
lists, the clean-up of replaced ConfigMaps, and what it tells the operator. The two calls
that need no cluster, `create secret --dry-run=client` and `label --local`, go to the real
kubectl, so the Secret checked below is the one kubectl really makes.

(shellcheck, --help and the missing kubeconfig are checked for every script in
tests/k8s/test_scripts.py.)
"""

from __future__ import annotations

import base64
import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.kube import REPO, Obj, k3s_api_tunnel, pins

SCRIPT = REPO / "scripts" / "deploy_monitoring_ca4.sh"
SELECTOR = "app.kubernetes.io/part-of=ca4"

# Answers by subcommand; every call is appended to $STUB_LOG, stdin of apply to $STUB_DIR.
KUBECTL = r"""#!/usr/bin/env bash
set -euo pipefail
echo "$*" >>"$STUB_LOG"
args=" $* "
case "$args" in
  *" get namespace monitoring "*) [ -z "${STUB_NO_NAMESPACE:-}" ] && echo namespace/monitoring || exit 1 ;;
  *" create secret generic "* | *" label --local "*) exec "$REAL_KUBECTL" "$@" ;;
  *" get persistentvolumeclaim grafana-data "*)
    if [ -n "${STUB_GRAFANA_DB:-}" ]; then echo persistentvolumeclaim/grafana-data; fi ;;
  *" apply "*" -f - "*) cat >"$STUB_DIR/applied-secret.yaml" ;;
  *" apply "*" -k "*) : ;;
  *" get deployments -l "*) printf 'deployment.apps/%s\n' $STUB_DEPLOYMENTS ;;
  *" rollout status deployment"*)
    for a in "$@"; do case "$a" in deployment*/*) d="${a#*/}" ;; esac; done
    [ "${STUB_FAIL_ROLLOUT:-}" = "$d" ] && exit 1 || echo "deployment \"$d\" successfully rolled out" ;;
  # mounted by a Deployment (new, rules) or only by an older ReplicaSet kept for undo (undo)
  *" get deployments,replicasets "*) printf 'prometheus-config-%s\n' new rules undo ;;
  *" get configmaps "*) printf 'configmap/prometheus-config-%s\n' new old rules undo ;;
  *) : ;;
esac
"""


def selected_deployments(built: list[Obj]) -> list[str]:
    """The Deployments of the build that the script's label selector lists in the cluster."""
    key, value = SELECTOR.split("=")
    return sorted(o.name for o in built if o.kind == "Deployment" and o.labels.get(key) == value)


@pytest.fixture
def env(tmp_path: Path, built: list[Obj]) -> dict[str, str]:
    """A PATH with the stand-in kubectl, private folders in tmp_path, a kubeconfig file."""
    real = shutil.which("kubectl")
    if real is None:
        pytest.skip(
            "kubectl is not installed: the Secret is made by the real `kubectl create --dry-run=client`"
        )
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
        "REAL_KUBECTL": real,
        "CA4_SECRETS_DIR": str(secrets),
        "CA4_STATE_DIR": str(tmp_path / "state"),
        "STUB_LOG": str(tmp_path / "kubectl.log"),
        "STUB_DIR": str(tmp_path),
        "STUB_DEPLOYMENTS": " ".join(selected_deployments(built)),
    }


def run(env: dict[str, str], *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    """The script, as make runs it."""
    with k3s_api_tunnel():
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


def applied_secret(env: dict[str, str]) -> dict[str, Any]:
    """The Secret the script applied (what the real kubectl made of the file)."""
    return dict(yaml.safe_load((Path(env["STUB_DIR"]) / "applied-secret.yaml").read_text()))


def applied_password(env: dict[str, str]) -> str:
    """data.admin-password of the applied Secret, decoded."""
    return base64.b64decode(applied_secret(env)["data"]["admin-password"]).decode()


def password_file(env: dict[str, str]) -> Path:
    """Where the script records the password."""
    return Path(env["CA4_SECRETS_DIR"]) / "ca4-grafana-admin-password"


def test_a_missing_namespace_points_at_platform_setup(env: dict[str, str]) -> None:
    out = run(env, STUB_NO_NAMESPACE="1")
    assert out.returncode == 2, out.stdout + out.stderr
    assert "make ca4-platform-setup" in out.stderr, out.stderr


def test_a_deploy_applies_everything_waits_for_each_deployment_and_cleans_up(
    env: dict[str, str], built: list[Obj]
) -> None:
    out = run(env)
    assert out.returncode == 0, out.stdout + out.stderr
    log = calls(env)
    assert all(line.startswith("--kubeconfig ") for line in log), f"kubectl without the CA4 kubeconfig: {log}"
    assert any(
        " apply --server-side " in f" {line} " and line.endswith(f"-k {REPO}/manifests/monitoring")
        for line in log
    ), log
    in_build = sorted(o.name for o in built if o.kind == "Deployment")
    missed = set(in_build) - set(selected_deployments(built))
    assert not missed, f"the script lists Deployments by {SELECTOR}; that misses {sorted(missed)}"
    assert any(f"get deployments -l {SELECTOR} -o name" in line for line in log), log
    waited = sorted(
        line.split("deployment.apps/", 1)[1].split()[0] for line in log if "rollout status " in line
    )
    assert waited == in_build, f"the script waits for {waited}; manifests/monitoring builds {in_build}"
    deleted = [line for line in log if " delete " in f" {line} "]
    assert len(deleted) == 1 and "configmap/prometheus-config-old" in deleted[0], (
        f"only the ConfigMap no Deployment and no kept ReplicaSet mounts should go: {deleted}"
    )
    assert (
        "http://localhost:3000" in out.stdout
        and f"localhost:{pins()['CA4_PROMETHEUS_LOCAL_PORT']}" in out.stdout
    )


def test_the_password_is_generated_once_private_and_reused(env: dict[str, str]) -> None:
    first = run(env)
    assert first.returncode == 0, first.stdout + first.stderr
    password = password_file(env).read_text()
    assert len(password) >= 24 and password.isalnum(), f"generated password {len(password)} chars"
    mode = password_file(env).stat().st_mode
    assert stat.S_IMODE(mode) == 0o600, oct(mode)
    assert applied_password(env) == password, "the Secret is rendered from the file"
    secret = applied_secret(env)
    assert secret["metadata"]["name"] == "grafana-admin" and secret["metadata"]["namespace"] == "monitoring"
    assert base64.b64decode(secret["data"]["admin-user"]).decode() == "admin"
    assert secret["metadata"]["labels"] == {
        "app.kubernetes.io/name": "grafana",
        "app.kubernetes.io/component": "dashboards",
        "app.kubernetes.io/part-of": "ca4",
    }, secret["metadata"]
    assert all(password not in line for line in calls(env)), "the password must never be on a command line"

    second = run(env, STUB_GRAFANA_DB="1")
    assert second.returncode == 0, second.stdout + second.stderr
    assert password_file(env).read_text() == password, "a second run must reuse the password (idempotent)"
    assert applied_password(env) == password
    assert "generating" not in second.stdout


def test_a_password_from_the_environment_wins_before_grafana_has_its_database(env: dict[str, str]) -> None:
    out = run(env, GRAFANA_ADMIN_PASSWORD="from-the-environment-123")
    assert out.returncode == 0, out.stdout + out.stderr
    assert applied_password(env) == "from-the-environment-123"
    assert password_file(env).read_text() == "from-the-environment-123", "what `cat` shows is what works"

    again = run(env, GRAFANA_ADMIN_PASSWORD="from-the-environment-123", STUB_GRAFANA_DB="1")
    assert again.returncode == 0, "the recorded password, given again, is fine: " + again.stderr


def test_a_new_password_after_grafana_has_its_database_stops_the_deploy(env: dict[str, str]) -> None:
    """Grafana reads GF_SECURITY_ADMIN_PASSWORD only when it creates its database: a new value
    would leave the Secret and the recorded file saying a password Grafana does not take."""
    first = run(env)
    assert first.returncode == 0, first.stdout + first.stderr
    recorded = password_file(env).read_text()
    before = calls(env)

    out = run(env, GRAFANA_ADMIN_PASSWORD="another-password-456", STUB_GRAFANA_DB="1")
    assert out.returncode == 2, out.stdout + out.stderr
    assert "reset-admin-password" in out.stderr and str(password_file(env)) in out.stderr, out.stderr
    assert password_file(env).read_text() == recorded, "the recorded password must stay the working one"
    assert not [line for line in calls(env)[len(before) :] if " apply " in f" {line} "], "nothing applied"


def test_a_lost_password_file_with_an_existing_grafana_stops_the_deploy(env: dict[str, str]) -> None:
    """Generating a new password then would print one that does not log in."""
    out = run(env, STUB_GRAFANA_DB="1")
    assert out.returncode == 2, out.stdout + out.stderr
    assert "reset-admin-password" in out.stderr, out.stderr
    assert not password_file(env).exists()


def test_a_failed_rollout_fails_the_target(env: dict[str, str]) -> None:
    out = run(env, STUB_FAIL_ROLLOUT="loki")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "did not finish" in out.stderr, out.stderr
    waited = [line for line in calls(env) if "rollout status " in line]
    assert len(waited) == len(env["STUB_DEPLOYMENTS"].split()), f"every rollout is waited for: {waited}"
    assert not [line for line in calls(env) if " delete " in f" {line} "], (
        "no clean-up after a failed rollout"
    )
