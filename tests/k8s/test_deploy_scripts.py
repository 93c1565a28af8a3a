"""scripts/platform_setup_ca4.sh and scripts/deploy_edge_ca4.sh run for real against a
stand-in kubectl that records every call and answers like a cluster: what each applies, in
which order, what it waits for, and that only platform setup ever touches Kafka (its size is
fixed once KRaft has formatted its storage, and its topics Job cannot be re-applied).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.k8s.conftest import SAMPLE_OUTPUTS, SAMPLE_TOKEN
from tests.kube import REPO, SCRIPTS, k3s_api_tunnel

BROKERS = 2  # the sample outputs list two edge nodes: min(3, nodes)

KUBECTL = r"""#!/usr/bin/env bash
set -euo pipefail
echo "$*" >>"$STUB_LOG"
args=" $* "
case "$args" in
  *" get statefulset kafka "*) printf '%s' "${STUB_KAFKA_REPLICAS:-}" ;;
  *" get nodes -o json "*)
    printf '{"items": [{"metadata": {"name": "edge-0"}, "status": {"images": [{"names": ["%s"]}]}}]}' \
      "${STUB_NODE_IMAGE:-}" ;;
  *" rollout status statefulset/kafka "*) [ -z "${STUB_KAFKA_NOT_READY:-}" ] || exit 1 ;;
  *" get deployments -l "*) printf 'deployment.apps/%s\n' processor-api metadata-worker ;;
  *" rollout status deployment"*) [ "${STUB_FAIL_ROLLOUT:-}" != "${*: -2:1}" ] || exit 1 ;;
  *) : ;;
esac
"""


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The stand-in kubectl first on PATH, a kubeconfig and an API token file, the sample outputs."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "kubectl").write_text(KUBECTL)
    (bin_dir / "kubectl").chmod(0o755)
    secrets = tmp_path / "secrets"
    secrets.mkdir(mode=0o700)
    (secrets / "ca4-kubeconfig").write_text("apiVersion: v1\nkind: Config\n")
    (secrets / "ca4-api-tokens").write_text(f"{SAMPLE_TOKEN}\n")
    (secrets / "ca4-api-tokens").chmod(0o600)
    keep = {k: v for k, v in os.environ.items() if k in ("HOME", "LANG")}
    image = subprocess.run(
        [str(SCRIPTS / "image_ca4.sh"), "tag"],
        env={**os.environ, "CA4_IMAGE_ALLOW_DIRTY": "1"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return {
        **keep,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "CA4_TF_OUTPUTS": str(SAMPLE_OUTPUTS),
        "CA4_IMAGE_ALLOW_DIRTY": "1",
        "CA4_SECRETS_DIR": str(secrets),
        "CA4_STATE_DIR": str(tmp_path / "state"),
        "CA4_RENDER_DIR": str(tmp_path / "rendered"),
        "STUB_LOG": str(tmp_path / "kubectl.log"),
        "STUB_KAFKA_REPLICAS": str(BROKERS),
        "STUB_NODE_IMAGE": image,  # every node holds this checkout's image
    }


def run(script: str, env: dict[str, str], **extra: str) -> subprocess.CompletedProcess[str]:
    """A script, as make runs it."""
    with k3s_api_tunnel():
        return subprocess.run(
            [str(SCRIPTS / script)],
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            cwd=REPO,
        )


def calls(env: dict[str, str]) -> list[str]:
    """kubectl's argument lines (the --kubeconfig prefix checked and removed)."""
    log = Path(env["STUB_LOG"])
    lines = log.read_text().splitlines() if log.exists() else []
    prefix = f"--kubeconfig {env['CA4_SECRETS_DIR']}/ca4-kubeconfig "
    assert all(line.startswith(prefix) for line in lines), f"kubectl without the CA4 kubeconfig: {lines}"
    return [line.removeprefix(prefix) for line in lines]


def applies(env: dict[str, str]) -> list[str]:
    """The apply calls, in order."""
    return [c for c in calls(env) if c.startswith("apply ")]


def test_deploy_edge_applies_the_app_and_its_secrets_and_leaves_kafka_alone(env: dict[str, str]) -> None:
    out = run("deploy_edge_ca4.sh", env)
    assert out.returncode == 0, out.stdout + out.stderr
    rendered = Path(env["CA4_RENDER_DIR"])
    secret_files = sorted(str(p) for p in (rendered / "platform").glob("ca4-*.yaml"))
    assert len(secret_files) == 3, secret_files
    ssa = "apply --server-side --field-manager=ca4 --force-conflicts"
    done = applies(env)
    assert len(done) == 2, f"expected the Secrets, then the app; applied {done}"
    secrets_apply, app_apply = done
    assert secrets_apply.startswith(f"{ssa} -f "), secrets_apply
    assert sorted(secrets_apply.split(" -f ")[1:]) == secret_files, (
        f"exactly the rendered Secrets: {secrets_apply}"
    )
    assert app_apply == f"{ssa} -k {rendered}/app", f"the app comes last, after its Secrets: {done}"
    log = calls(env)
    assert not [c for c in log if "job" in c], f"deploy_edge must not touch the kafka-topics Job: {log}"
    kafka_check = log.index(next(c for c in log if "rollout status statefulset/kafka" in c))
    assert kafka_check < log.index(secrets_apply), "Kafka is checked before anything is applied"
    waited = [c.split()[-2] for c in log if c.startswith("-n app rollout status deployment")]
    assert waited == ["deployment.apps/processor-api", "deployment.apps/metadata-worker"], log
    assert "edge deployed" in out.stdout, out.stdout


@pytest.mark.parametrize("script", ["deploy_edge_ca4.sh", "platform_setup_ca4.sh"])
def test_another_kafka_size_stops_before_anything_is_applied(script: str, env: dict[str, str]) -> None:
    """Kafka runs 3 brokers, the outputs ask for 2: the KRaft voter set is fixed, so both stop."""
    out = run(script, env, STUB_KAFKA_REPLICAS="3")
    assert out.returncode == 1, out.stdout + out.stderr
    assert (
        "Kafka runs 3 broker(s) but 2 are asked for" in out.stderr and "CA4_KAFKA_BROKERS=3" in out.stderr
    ), out.stderr
    assert applies(env) == [], f"{script} applied something: {applies(env)}"
    assert not [c for c in calls(env) if c.startswith(("delete", "-n platform delete"))], calls(env)


def test_deploy_edge_without_kafka_points_at_platform_setup(env: dict[str, str]) -> None:
    out = run("deploy_edge_ca4.sh", env, STUB_KAFKA_REPLICAS="")
    assert out.returncode == 2 and "make ca4-platform-setup" in out.stderr, out.stdout + out.stderr
    assert applies(env) == []


def test_deploy_edge_with_kafka_not_ready_deploys_nothing(env: dict[str, str]) -> None:
    out = run("deploy_edge_ca4.sh", env, STUB_KAFKA_NOT_READY="1")
    assert out.returncode == 1 and "Kafka is not ready" in out.stderr, out.stdout + out.stderr
    assert applies(env) == []


def test_deploy_edge_fails_when_a_rollout_does_not_finish(env: dict[str, str]) -> None:
    out = run("deploy_edge_ca4.sh", env, STUB_FAIL_ROLLOUT="deployment.apps/processor-api")
    assert out.returncode == 1 and "a rollout did not finish" in out.stderr, out.stdout + out.stderr
    waited = [c for c in calls(env) if "rollout status deployment" in c]
    assert len(waited) == 2, f"the other rollout is still waited for: {waited}"


def test_platform_setup_replaces_the_topics_job_and_applies_the_overlay(env: dict[str, str]) -> None:
    out = run("platform_setup_ca4.sh", env)
    assert out.returncode == 0, out.stdout + out.stderr
    log = calls(env)
    rendered = Path(env["CA4_RENDER_DIR"])
    (apply,) = applies(env)
    assert apply == f"apply --server-side --field-manager=ca4 --force-conflicts -k {rendered}/platform", apply
    delete = next(i for i, c in enumerate(log) if c.startswith("-n platform delete job kafka-topics"))
    assert delete < log.index(apply), "the finished Job goes before the apply that recreates it"
    assert any(c.startswith("-n platform wait --for=condition=complete job/kafka-topics") for c in log), log


def test_platform_setup_writes_the_api_ca_for_producers_and_the_verify_target(
    env: dict[str, str], tmp_path: Path
) -> None:
    """The stack's own CA (output edge_api_ca_certificate_pem) lands in kubeconfigs/ca4-api-ca.pem,
    mode 600, where make ca4-verify-e2e and a producer's CA4_CA_BUNDLE find it; with your own
    certificate (the output null) a stale file is removed."""
    out = run("platform_setup_ca4.sh", env)
    assert out.returncode == 0, out.stdout + out.stderr
    ca_file = Path(env["CA4_SECRETS_DIR"]) / "ca4-api-ca.pem"
    expected = json.loads(SAMPLE_OUTPUTS.read_text())["edge_api_ca_certificate_pem"]["value"]
    assert ca_file.read_text() == expected.rstrip("\n") + "\n", f"{ca_file}: {ca_file.read_text()!r}"
    assert ca_file.stat().st_mode & 0o777 == 0o600, oct(ca_file.stat().st_mode)
    assert "CA4_CA_BUNDLE" in out.stdout, out.stdout
    own_cert = json.loads(SAMPLE_OUTPUTS.read_text())
    own_cert["edge_api_ca_certificate_pem"]["value"] = None
    outputs = tmp_path / "own-cert-outputs.json"
    outputs.write_text(json.dumps(own_cert))
    out = run("platform_setup_ca4.sh", env, CA4_TF_OUTPUTS=str(outputs))
    assert out.returncode == 0, out.stdout + out.stderr
    assert not ca_file.exists(), f"{ca_file} kept though the API now uses your own certificate"


def test_deploy_edge_loads_a_missing_image_or_stops_at_once_naming_the_target(
    env: dict[str, str], tmp_path: Path
) -> None:
    """No node lists the image: deploy-edge runs the image load itself; without Docker that stops
    with exit 2 naming make ca4-image-build, within seconds and before anything is applied (never
    a rollout waiting on ErrImageNeverPull)."""
    docker = Path(env["PATH"].split(":")[0]) / "docker"
    docker.write_text('#!/usr/bin/env bash\necho "$*" >>"$STUB_LOG.docker"\nexit 1\n')
    docker.chmod(0o755)
    started = time.monotonic()
    out = run("deploy_edge_ca4.sh", env, STUB_NODE_IMAGE="")
    took = time.monotonic() - started
    assert out.returncode == 2, out.stdout + out.stderr
    assert "loading it (scripts/image_ca4.sh load)" in out.stdout, out.stdout
    assert "make ca4-image-build" in out.stderr, out.stderr
    assert applies(env) == [], f"applied before the image was there: {applies(env)}"
    assert not [c for c in calls(env) if "rollout status deployment" in c], calls(env)
    assert took < 30, f"deploy-edge took {took:.1f} s to give up on the missing image"
    assert Path(env["STUB_LOG"] + ".docker").read_text().startswith("info"), "docker was not asked"
