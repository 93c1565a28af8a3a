"""The scripts without a cluster: shellcheck (all of scripts/, the embedded Kafka scripts
too), --help, and the early, named failures when a prerequisite is missing (exit 2, nothing
changed, kubectl never called)."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.k8s.conftest import SAMPLE_OUTPUTS
from tests.kube import REPO, SCRIPTS, Obj, find

SHELL_SCRIPTS = sorted(p.name for p in SCRIPTS.glob("*.sh"))
# scripts/ensure_packages.sh installs the Debian packages `make test` needs: its arguments
# are package names, so it has no --help to run (it is shellchecked like every other one)
NO_HELP = {"ensure_packages.sh"}
DOCUMENTED = [s for s in SHELL_SCRIPTS if s not in NO_HELP]
# what a script's --help must tell beyond its usage line
HELP_MENTIONS = {"deploy_monitoring_ca4.sh": ["make ca4-tunnels-up", "http://localhost:3000"]}
# a kubectl that only records that it was called: the failures below come before the cluster
RECORDING_KUBECTL = '#!/bin/sh\necho "$*" >>"$(dirname "$0")/kubectl.calls"\nexit 1\n'


def recording_kubectl(tmp: Path) -> Path:
    """A bin folder with the recording kubectl; its calls land in bin/kubectl.calls."""
    bin_dir = tmp / "bin"
    bin_dir.mkdir(exist_ok=True)
    kubectl = bin_dir / "kubectl"
    kubectl.write_text(RECORDING_KUBECTL)
    kubectl.chmod(0o755)
    return bin_dir


def kubectl_calls(bin_dir: Path) -> list[str]:
    """What the recording kubectl was asked."""
    log = bin_dir / "kubectl.calls"
    return log.read_text().splitlines() if log.exists() else []


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
    """scripts/*.sh, scripts/lib/*.sh, the scripts inside ConfigMap kafka-cluster and those of
    the rehearsal's Kafka stand-in image."""
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
    assert embedded, "ConfigMap kafka-cluster holds no script"
    standin = REPO / "services" / "rehearsal" / "standins" / "kafka"
    files = [SCRIPTS / s for s in SHELL_SCRIPTS] + sorted((SCRIPTS / "lib").glob("*.sh")) + embedded
    files += [standin / "run", *sorted((standin / "bin").glob("*.sh"))]
    assert len(SHELL_SCRIPTS) >= 7, f"scripts/*.sh: {SHELL_SCRIPTS}"
    proc = subprocess.run(
        ["shellcheck", "-x", "--severity=style", *map(str, files)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, f"shellcheck findings:\n{proc.stdout[-4000:]}"


@pytest.mark.parametrize("script", SHELL_SCRIPTS)
def test_script_is_strict_and_executable(script: str) -> None:
    """set -euo pipefail at the top; executable, as make runs it."""
    text = (SCRIPTS / script).read_text()
    assert re.search(r"^set -euo pipefail$", text, re.M), f"{script}: no 'set -euo pipefail'"
    assert text.startswith("#!/usr/bin/env bash\n"), f"{script}: not a bash script"
    assert os.access(SCRIPTS / script, os.X_OK), f"{script} is not executable"


@pytest.mark.parametrize("script", DOCUMENTED)
def test_help_explains_the_script_without_touching_anything(script: str, tmp_path: Path) -> None:
    """--help prints the usage and what the script needs; it writes nothing, calls no kubectl."""
    bin_dir = recording_kubectl(tmp_path)
    proc = run(script, "--help", tmp=tmp_path, env={"PATH": f"{bin_dir}:{os.environ['PATH']}"})
    assert proc.returncode == 0 and "Usage: scripts/" + script in proc.stdout, (
        f"{script} --help: {proc.returncode} {proc.stdout[:200]} {proc.stderr}"
    )
    for words in HELP_MENTIONS.get(script, []):
        assert words in proc.stdout, f"{script} --help does not mention {words!r}:\n{proc.stdout}"
    assert not (tmp_path / "state").exists() and not (tmp_path / "secrets").exists(), (
        f"{script} --help wrote files"
    )
    assert kubectl_calls(bin_dir) == [], f"{script} --help called kubectl"


@pytest.mark.parametrize(
    "script",
    ["bootstrap_k3s_ca4.sh", "platform_setup_ca4.sh", "deploy_edge_ca4.sh", "deploy_monitoring_ca4.sh"],
)
def test_an_unexpected_argument_stops_with_exit_2(script: str, tmp_path: Path) -> None:
    """Scripts that take no argument refuse one before doing anything."""
    proc = run(script, "--force", tmp=tmp_path)
    assert proc.returncode == 2 and "unexpected argument '--force'" in proc.stderr, (
        f"{script}: {proc.returncode} {proc.stderr!r}"
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


@pytest.mark.parametrize(
    "script", ["platform_setup_ca4.sh", "deploy_edge_ca4.sh", "deploy_monitoring_ca4.sh"]
)
def test_without_kubeconfig_it_points_at_the_bootstrap(script: str, tmp_path: Path) -> None:
    """Outputs are there, the cluster is not: exit 2 naming the kubeconfig and the target,
    before any kubectl call."""
    bin_dir = recording_kubectl(tmp_path)
    env = {
        "CA4_TF_OUTPUTS": str(SAMPLE_OUTPUTS),
        "CA4_IMAGE_ALLOW_DIRTY": "1",
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
    }
    proc = run(script, tmp=tmp_path, env=env)
    assert proc.returncode == 2, f"{script}: expected 2, got {proc.returncode}: {proc.stderr}"
    assert "no kubeconfig at" in proc.stderr and "make ca4-bootstrap-k3s" in proc.stderr, (
        f"{script}: {proc.stderr!r}"
    )
    assert kubectl_calls(bin_dir) == [], f"{script} called kubectl without a kubeconfig"


# An ssh that never leaves the machine: it records its arguments; with STUB_SSH_FAIL it fails
# as an unreachable bastion does, else it listens on the -L forward's local port, under a
# command line that reads like the real forward (the tunnel script's PID check looks for it).
STUB_SSH = r"""#!/usr/bin/env bash
echo "$*" >>"$STUB_SSH_LOG"
port=""
for a in "$@"; do
  case "$a" in localhost:*:*:*) port=${a#localhost:}; port=${port%%:*} ;; esac
done
if [ -n "${STUB_SSH_FAIL:-}" ] || [ -z "$port" ]; then
  echo "ssh: connect to host bastion port 22: Connection refused" >&2
  exit 255
fi
exec -a "ssh $*" "$STUB_PYTHON" -c '
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen()
time.sleep(120)
' "$port"
"""


def _no_tunnel_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A kubeconfig, the stand-in ssh and kubectl first on PATH, nothing on the K3s API port."""
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", 16443)) == 0:
            pytest.skip("something listens on 127.0.0.1:16443 on this machine")
    secrets = tmp_path / "secrets"
    secrets.mkdir(exist_ok=True)
    (secrets / "ca4-kubeconfig").write_text("apiVersion: v1\nkind: Config\n")
    bin_dir = recording_kubectl(tmp_path)
    (bin_dir / "ssh").write_text(STUB_SSH)
    (bin_dir / "ssh").chmod(0o755)
    return {
        "CA4_TF_OUTPUTS": str(SAMPLE_OUTPUTS),
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "STUB_SSH_LOG": str(tmp_path / "ssh.log"),
        "STUB_PYTHON": sys.executable,  # the interpreter itself: a launcher shim would drop argv[0]
        **extra,
    }


def test_without_a_tunnel_setup_opens_it_through_the_bastion(tmp_path: Path) -> None:
    """Kubeconfig present, 127.0.0.1:16443 closed: platform setup opens the K3s API tunnel itself
    (ssh through the bastion to the server's 6443) and goes on to kubectl; the tunnel is this
    kit's, so tunnels_ca4.sh down closes it."""
    env = _no_tunnel_env(tmp_path, CA4_KAFKA_BROKERS="1")
    try:
        proc = run("platform_setup_ca4.sh", tmp=tmp_path, env=env)
        server = json.loads(SAMPLE_OUTPUTS.read_text())["k3s_server_private_ip"]["value"]
        ssh_calls = (tmp_path / "ssh.log").read_text().splitlines()
        assert len(ssh_calls) == 1 and f"-L localhost:16443:{server}:6443" in ssh_calls[0], ssh_calls
        assert "ca4-bastion" in ssh_calls[0], f"not through the bastion: {ssh_calls}"
        assert "opening it through the bastion" in proc.stdout, proc.stdout
        assert kubectl_calls(tmp_path / "bin"), f"no kubectl call after the tunnel opened: {proc.stderr}"
    finally:
        down = run("tunnels_ca4.sh", "down", tmp=tmp_path, env=env)
    assert "k3s-api: closed" in down.stdout, down.stdout + down.stderr


def test_when_the_tunnel_cannot_open_it_points_at_the_tunnels(tmp_path: Path) -> None:
    """The bastion does not answer: exit 2 naming make ca4-tunnels-up, before any kubectl call."""
    env = _no_tunnel_env(tmp_path, STUB_SSH_FAIL="1")
    proc = run("platform_setup_ca4.sh", tmp=tmp_path, env=env)
    assert proc.returncode == 2 and "make ca4-tunnels-up" in proc.stderr, (
        f"{proc.returncode}: {proc.stderr!r}"
    )
    assert (tmp_path / "ssh.log").exists(), "the tunnel was not even tried"
    assert kubectl_calls(tmp_path / "bin") == [], "kubectl was called without a tunnel"


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


def ssh_setup(tmp: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """ssh_setup of scripts/lib/ca4_common.sh, with the sample outputs."""
    return subprocess.run(
        ["bash", "-c", f'set -euo pipefail; . "{SCRIPTS}/lib/ca4_common.sh"; ssh_setup'],
        env={**os.environ, "CA4_TF_OUTPUTS": str(SAMPLE_OUTPUTS), **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd=tmp,
    )


def test_the_ssh_config_keeps_a_key_path_with_blanks_and_percents(tmp_path: Path) -> None:
    """IdentityFile and UserKnownHostsFile quoted (and % doubled), as ssh itself reads them."""
    if not shutil.which("ssh"):
        pytest.skip("no ssh client here to read the config with `ssh -G`")
    key = tmp_path / "my keys" / "ca4 50%.pem"
    key.parent.mkdir()
    key.write_text("not a real key: ssh -G only reads the config\n")
    state = tmp_path / "state"
    proc = ssh_setup(tmp_path, CA4_SSH_KEY=str(key), CA4_STATE_DIR=str(state))
    assert proc.returncode == 0, proc.stderr
    outputs = json.loads(SAMPLE_OUTPUTS.read_text())
    node = outputs["edge_node_private_ips"]["value"][0]
    shown = subprocess.run(
        ["ssh", "-G", "-F", str(state / "ssh_config"), node],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        stdin=subprocess.DEVNULL,
    ).stdout
    settings = [line.split(" ", 1) for line in shown.splitlines() if " " in line]
    # one value, blanks included; ssh -G shows it before expanding %-tokens (%% -> %)
    assert ["identityfile", str(key).replace("%", "%%")] in settings, shown
    assert ["userknownhostsfile", str(state / "known_hosts")] in settings, shown
    assert ["user", outputs["ssh_user"]["value"]] in settings, shown


def test_a_state_folder_with_blanks_is_refused_before_ssh_splits_it(tmp_path: Path) -> None:
    """ssh -J passes "-F <config>" on inside a shell command without quotes (OpenSSH 9)."""
    proc = ssh_setup(tmp_path, CA4_STATE_DIR=str(tmp_path / "state dir"))
    assert proc.returncode == 2 and "contains a blank" in proc.stderr, (proc.returncode, proc.stderr)
    assert not (tmp_path / "state dir").exists(), "nothing is written before the refusal"
