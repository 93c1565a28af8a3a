"""The rehearsal's K3s install interface without a cluster: the installer (services/rehearsal/node/
install.sh) with a recording k3s and systemctl on PATH, the unit files it writes as the node's
systemctl reads them, the bootstrap token both roles derive, and the node's shims."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from rehearsal import configs, join, k3s
from rehearsal.pins import REPO
from rehearsal.topology import Node
from tests.tools.run import run

INSTALLER = REPO / "services" / "rehearsal" / "node" / "install.sh"


@pytest.fixture
def node_root(tmp_path: Path) -> Path:
    """A PATH with a k3s that reports v1.34.3 and a systemctl that records its calls."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "k3s").write_text('#!/bin/sh\necho "k3s version v1.34.3 (ca4-rehearsal)"\n')
    (bin_dir / "systemctl").write_text(f'#!/bin/sh\necho "$*" >>{tmp_path}/systemctl.log\necho active\n')
    for tool in ("k3s", "systemctl"):
        (bin_dir / tool).chmod(0o755)
    return tmp_path


def install(root: Path, args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    """The installer, its unit folder moved under ``root`` (the node's /etc is an overlay)."""
    script = INSTALLER.read_text().replace("/etc/systemd/system", f"{root}/units")
    path = f"{root}/bin:/usr/bin:/bin"
    return run(["sh", "-s", "--", *args], timeout=30, env={"PATH": path, **env}, input=script)


def test_the_server_unit_and_its_env_file_are_what_k3s_writes(node_root: Path) -> None:
    """ExecStart is k3s server and its flags; K3S_TOKEN is in the env file (mode 600) only."""
    token = "it's-a-token"
    done = install(node_root, ["server", "--node-ip=10.0.1.10", "--tls-san=a b"], K3S_TOKEN=token)
    assert done.returncode == 0, done.stderr
    unit = (node_root / "units" / "k3s.service").read_text()
    env_file = node_root / "units" / "k3s.service.env"
    assert oct(env_file.stat().st_mode & 0o777) == "0o600"
    assert token not in unit
    assert f"EnvironmentFile=-{node_root}/units/k3s.service.env" in unit
    calls = (node_root / "systemctl.log").read_text().splitlines()
    assert calls == ["daemon-reload", "enable k3s", "restart k3s", "is-active k3s"], calls


def test_the_node_reads_back_what_the_installer_wrote(
    node_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The node's systemctl gets the same argv and token back, quotes and blanks intact."""
    token = "it's-a-token"
    url = "https://10.0.1.10:6443"
    done = install(
        node_root, ["agent", "--node-ip=10.0.1.11", "--node-label=a b"], K3S_TOKEN=token, K3S_URL=url
    )
    assert done.returncode == 0, done.stderr
    monkeypatch.setattr(k3s, "UNIT_DIR", node_root / "units")
    argv, env = k3s.unit_command("k3s-agent")
    assert argv[1:] == ["agent", "--node-ip=10.0.1.11", "--node-label=a b"]
    assert argv[0].endswith("/k3s")
    assert env == {"K3S_TOKEN": token, "K3S_URL": url}


def test_the_bootstrap_probe_reads_the_token_digest_from_the_env_file(node_root: Path) -> None:
    """scripts/bootstrap_k3s_ca4.sh's probe compares the token by digest: its sed reads our file."""
    assert install(node_root, ["server"], K3S_TOKEN="abc123").returncode == 0
    probe = (REPO / "scripts" / "bootstrap_k3s_ca4.sh").read_text()
    sed = re.search(r"tok=\$\(sed -n \"(.+?)\" \"\$env_file\"", probe)
    assert sed, "the probe's sed expression moved: update this test"
    found = subprocess.run(
        [
            "sed",
            "-n",
            sed.group(1).replace('\\"', '"').replace("\\$", "$"),
            str(node_root / "units" / "k3s.service.env"),
        ],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    ).stdout.strip()
    assert found == "abc123"


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["server"], {}, "K3S_TOKEN is not set"),
        (["agent"], {"K3S_TOKEN": "t"}, "an agent needs K3S_URL"),
        (
            ["server"],
            {"K3S_TOKEN": "t", "INSTALL_K3S_VERSION": "v1.34.3+k3s3"},
            "set CA4_K3S_VERSION=v1.34.3",
        ),
        (["proxy"], {"K3S_TOKEN": "t"}, "unknown command 'proxy'"),
    ],
)
def test_the_installer_refuses_by_name(
    node_root: Path, args: list[str], env: dict[str, str], message: str
) -> None:
    """A missing setting or another version is an error that names it, and nothing is written."""
    done = install(node_root, args, **env)
    assert done.returncode == 1
    assert message in done.stderr
    assert not (node_root / "units").exists()


def test_the_bootstrap_token_has_kubernetes_shape() -> None:
    """[a-z0-9]{6}.[a-z0-9]{16}, the same for the same K3S_TOKEN, different for another."""
    token_id, secret = join.bootstrap_token("a" * 64)
    assert re.fullmatch(r"[a-z0-9]{6}", token_id)
    assert re.fullmatch(r"[a-z0-9]{16}", secret)
    assert join.bootstrap_token("a" * 64) == (token_id, secret)
    assert join.bootstrap_token("b" * 64) != (token_id, secret)
    assert f"bootstrap-token-{token_id}" in join.bootstrap_secret("a" * 64)


def test_unknown_server_flags_are_named() -> None:
    """A flag the rehearsal's k3s does not implement is an error naming it, never ignored."""
    with pytest.raises(k3s.RehearsalError, match="--cluster-init"):
        k3s._flags("server", ["--node-ip=10.0.1.10", "--cluster-init"])
    flags = k3s._flags("server", ["--tls-san=127.0.0.1", "--tls-san=localhost", "--secrets-encryption"])
    assert flags.tls_san == ["127.0.0.1", "localhost"]
    assert flags.secrets_encryption, f"k3s server flags without secrets encryption: {flags}"


def test_is_active_of_a_unit_not_installed_is_inactive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The probe asks for k3s and k3s-agent on every node: a unit nobody installed is inactive,
    even where the daemons of another role run (the server's kubelet is no agent unit)."""
    monkeypatch.setattr(k3s, "UNIT_DIR", tmp_path)

    class Running:
        def active(self, role: str) -> bool:
            return True

    assert not k3s.is_active(Running(), "k3s-agent")  # type: ignore[arg-type]
    (tmp_path / "k3s-agent.service").write_text("[Service]\n")
    assert k3s.is_active(Running(), "k3s-agent")  # type: ignore[arg-type]
    assert k3s.systemctl(["is-active", "--quiet", "k3s-nonesuch"], dict(os.environ)) == 3


def test_the_node_shims_name_their_node_and_exec_ctr_directly(tmp_path: Path) -> None:
    """k3s ctr needs no Python; everything else runs rehearsal.k3s with the node's settings."""
    node = Node(1, tmp_path)
    shims = configs.node_commands(node, "/venv/bin/python", tmp_path / "cache")
    assert set(shims) == {"k3s", "systemctl"}
    assert f"exec ctr --address {configs.CONTAINERD_SOCKET}" in shims["k3s"]
    assert "export CA4_REHEARSAL_NODE=ca4-node-1" in shims["k3s"]
    assert "-m rehearsal.k3s systemctl" in shims["systemctl"]
