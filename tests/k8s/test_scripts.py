"""The live scripts without a cluster: shellcheck (the embedded Kafka scripts too), --help,
and the early, named failures when a prerequisite is missing (exit 2, nothing changed)."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from tests.k8s.conftest import REPO, SAMPLE_OUTPUTS, SCRIPTS, Obj, find

LIVE_SCRIPTS = [
    "bootstrap_k3s_ca4.sh",
    "tunnels_ca4.sh",
    "platform_setup_ca4.sh",
    "deploy_edge_ca4.sh",
    "image_ca4.sh",
]


def run(
    script: str, *args: str, env: dict[str, str] | None = None, tmp: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a script with a clean CA4 environment whose state folders are temporary."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CA4_", "TF"))}
    if tmp is not None:
        base.update(
            CA4_STATE_DIR=str(tmp / "state"),
            CA4_SECRETS_DIR=str(tmp / "secrets"),
            CA4_RENDER_DIR=str(tmp / "rendered"),
        )
    base.update(env or {})
    return subprocess.run(
        [str(SCRIPTS / script), *args], env=base, capture_output=True, text=True, timeout=60, check=False
    )


def test_shellcheck_passes_on_every_script(objects: list[Obj], tmp_path: Path) -> None:
    """scripts/*.sh, scripts/lib/*.sh and the scripts inside ConfigMap kafka-cluster."""
    if not shutil.which("shellcheck"):
        pytest.fail(
            "shellcheck is not installed (make test installs it: scripts/ensure_packages.sh shellcheck)"
        )
    cm = find(objects, "ConfigMap", "kafka-cluster", "platform")
    embedded = []
    for key, text in cm.body["data"].items():
        if key.endswith(".sh"):
            embedded.append(tmp_path / key)
            embedded[-1].write_text(text)
    files = [SCRIPTS / s for s in LIVE_SCRIPTS] + sorted((SCRIPTS / "lib").glob("*.sh")) + embedded
    proc = subprocess.run(
        ["shellcheck", "-x", "--severity=style", *map(str, files)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, f"shellcheck findings:\n{proc.stdout[-4000:]}"


@pytest.mark.parametrize("script", LIVE_SCRIPTS)
def test_script_is_strict_and_documented(script: str, tmp_path: Path) -> None:
    """set -euo pipefail at the top, and --help explains it without touching anything."""
    text = (SCRIPTS / script).read_text()
    assert re.search(r"^set -euo pipefail$", text, re.M), f"{script}: no 'set -euo pipefail'"
    assert os.access(SCRIPTS / script, os.X_OK), f"{script} is not executable"
    proc = run(script, "--help", tmp=tmp_path)
    assert proc.returncode == 0 and "Usage: scripts/" + script in proc.stdout, (
        f"{script} --help: {proc.returncode} {proc.stdout[:200]} {proc.stderr}"
    )
    assert not (tmp_path / "state").exists() and not (tmp_path / "secrets").exists(), (
        f"{script} --help wrote files"
    )


@pytest.mark.parametrize("script", ["bootstrap_k3s_ca4.sh", "platform_setup_ca4.sh", "deploy_edge_ca4.sh"])
def test_without_terraform_it_says_so(script: str, tmp_path: Path) -> None:
    """No terraform/tofu and no saved outputs: exit 2 naming the missing binary."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    python = shutil.which("python3")
    assert python, "python3 not on PATH"
    (fake_bin / "python3").symlink_to(python)
    path = f"{fake_bin}:/usr/bin:/bin"
    assert not shutil.which("terraform", path=path) and not shutil.which("tofu", path=path), (
        f"terraform is in {path}: cannot hide it"
    )
    proc = run(script, tmp=tmp_path, env={"PATH": path})
    assert proc.returncode == 2, f"{script}: expected exit 2, got {proc.returncode}: {proc.stderr}"
    assert "neither terraform nor tofu" in proc.stderr, f"{script}: {proc.stderr!r}"


@pytest.mark.parametrize("script", ["bootstrap_k3s_ca4.sh", "platform_setup_ca4.sh", "tunnels_ca4.sh up"])
def test_empty_outputs_say_apply_first(script: str, tmp_path: Path) -> None:
    """Terraform ran but there is no state yet: exit 2 pointing at make ca4-apply."""
    empty = tmp_path / "outputs.json"
    empty.write_text("{}\n")
    name, *args = script.split()
    proc = run(name, *args, tmp=tmp_path, env={"CA4_TF_OUTPUTS": str(empty)})
    assert proc.returncode == 2 and "make ca4-plan ca4-apply" in proc.stderr, (
        f"{script}: {proc.returncode} {proc.stderr!r}"
    )


def test_a_missing_output_is_named(tmp_path: Path) -> None:
    """An output the script needs is absent: its name is in the message."""
    data = json.loads(SAMPLE_OUTPUTS.read_text())
    del data["bastion_public_ip"]
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps(data))
    proc = run("tunnels_ca4.sh", "up", tmp=tmp_path, env={"CA4_TF_OUTPUTS": str(outputs)})
    assert proc.returncode == 2 and "'bastion_public_ip' is missing" in proc.stderr, (
        f"{proc.returncode}: {proc.stderr!r}"
    )


@pytest.mark.parametrize("script", ["platform_setup_ca4.sh", "deploy_edge_ca4.sh"])
def test_without_kubeconfig_it_points_at_the_bootstrap(script: str, tmp_path: Path) -> None:
    """Outputs are there, the cluster is not: exit 2 naming the kubeconfig and the target."""
    proc = run(
        script, tmp=tmp_path, env={"CA4_TF_OUTPUTS": str(SAMPLE_OUTPUTS), "CA4_IMAGE_ALLOW_DIRTY": "1"}
    )
    assert proc.returncode == 2, f"{script}: expected 2, got {proc.returncode}: {proc.stderr}"
    assert "no kubeconfig at" in proc.stderr and "make ca4-bootstrap-k3s" in proc.stderr, (
        f"{script}: {proc.stderr!r}"
    )


def test_with_kubeconfig_but_no_tunnel_it_points_at_the_tunnels(tmp_path: Path) -> None:
    """Kubeconfig present, 127.0.0.1:16443 closed: exit 2 asking for make ca4-tunnels-up."""
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", 16443)) == 0:
            pytest.skip("something listens on 127.0.0.1:16443 on this machine")
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "ca4-kubeconfig").write_text("apiVersion: v1\nkind: Config\n")
    proc = run("platform_setup_ca4.sh", tmp=tmp_path, env={"CA4_TF_OUTPUTS": str(SAMPLE_OUTPUTS)})
    assert proc.returncode == 2 and "make ca4-tunnels-up" in proc.stderr, (
        f"{proc.returncode}: {proc.stderr!r}"
    )


def test_tunnels_status_and_down_need_nothing(tmp_path: Path) -> None:
    """With no outputs, no tunnels: status lists every tunnel as down (exit 0); down does nothing."""
    proc = run("tunnels_ca4.sh", "status", tmp=tmp_path)
    assert proc.returncode == 0, f"status: {proc.returncode} {proc.stderr}"
    for name in ("k3s-api", "kafka-0", "grafana", "prometheus"):
        assert re.search(rf"^\s+{name}\s+down$", proc.stdout, re.M), (
            f"status does not show {name} down:\n{proc.stdout}"
        )
    proc = run("tunnels_ca4.sh", "status", "k3s-api", tmp=tmp_path)
    assert proc.returncode == 1, f"status of a named closed tunnel should exit 1, got {proc.returncode}"
    proc = run("tunnels_ca4.sh", "down", tmp=tmp_path)
    assert proc.returncode == 0 and "no CA4 tunnel is open" in proc.stdout, (
        f"down: {proc.returncode} {proc.stdout} {proc.stderr}"
    )


def test_a_stale_pid_file_is_never_killed_blindly(tmp_path: Path) -> None:
    """A PID file pointing at some other process (here: a sleep) is ignored and removed, the process lives."""
    other = subprocess.Popen(["sleep", "30"])
    try:
        tunnels = tmp_path / "state" / "tunnels"
        tunnels.mkdir(parents=True)
        (tunnels / "k3s-api.pid").write_text(f"{other.pid} 16443\n")
        proc = run("tunnels_ca4.sh", "down", "k3s-api", tmp=tmp_path)
        assert proc.returncode == 0, f"down: {proc.stderr}"
        assert other.poll() is None, "tunnels_ca4.sh down killed a process it did not start"
        assert not (tunnels / "k3s-api.pid").exists(), "the stale PID file is still there"
    finally:
        other.kill()
        other.wait(timeout=10)


def test_image_tag_is_the_commit(tmp_path: Path) -> None:
    """git-<12 hex> on a clean tree, or a refusal / a -dirty-<hash> suffix on a changed one."""
    proc = run("image_ca4.sh", "tag", tmp=tmp_path)
    head = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short=12", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if proc.returncode == 0:
        assert proc.stdout.strip() == f"localhost/ca4-services:git-{head}", proc.stdout
    else:
        assert proc.returncode == 2 and "uncommitted changes" in proc.stderr, proc.stderr
        dirty = run("image_ca4.sh", "tag", tmp=tmp_path, env={"CA4_IMAGE_ALLOW_DIRTY": "1"})
        again = run("image_ca4.sh", "tag", tmp=tmp_path, env={"CA4_IMAGE_ALLOW_DIRTY": "1"})
        assert re.fullmatch(rf"localhost/ca4-services:git-{head}-dirty-[0-9a-f]{{12}}\n", dirty.stdout), (
            dirty.stdout + dirty.stderr
        )
        assert dirty.stdout == again.stdout, "the dirty tag is not deterministic"


def test_image_build_without_docker_daemon_says_so(tmp_path: Path) -> None:
    """The docker CLI alone cannot build: exit 2 with the reason (skipped where a daemon runs)."""
    if (
        shutil.which("docker")
        and subprocess.run(["docker", "info"], capture_output=True, timeout=20, check=False).returncode == 0
    ):
        pytest.skip("a Docker daemon answers here; building for real is out of scope for a unit check")
    proc = run("image_ca4.sh", "build", tmp=tmp_path, env={"CA4_IMAGE_ALLOW_DIRTY": "1"})
    assert proc.returncode == 2 and (
        "no Docker daemon" in proc.stderr or "'docker' not found" in proc.stderr
    ), proc.stderr
