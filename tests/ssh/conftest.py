"""The SSH lab for the bootstrap and tunnel tests: namespaces with real sshds (lab.py), a
test CA, the K3s installer stand-in, and on edge0 a stand-in K3s API (6443) and banners on
the NodePorts the tunnels reach. One lab per session; always torn down."""

from __future__ import annotations

import base64
import json
import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.ssh.lab import BASTION_ADDR, EDGE_ADDRS, HERE, LIFETIME_S, USER, Lab, lab_problem, sh

REPO = HERE.parents[1]
API_TOKEN = "lab-admin-token"
NODE_PORTS = (30092, 30093, 30094, 30300, 30090)

# What the real installer leaves behind, in stand-in form: the k3s binary (it only knows
# its version), the unit's env file with K3S_TOKEN (as `sh -c export` quotes it), an
# "active" unit (systemctl stand-in), the uninstall script, and on a server the token file
# and /etc/rancher/k3s/k3s.yaml. Every call is recorded with where it ran.
STANDIN = r"""#!/bin/sh
# K3s installer stand-in for tests/ssh: records its arguments and environment, then
# leaves what the real installer leaves behind.
set -e
role="$1"
python3 - "$@" >> "@RECORDS@" <<'PY'
import json, os, subprocess, sys
ip = ["ip", "-o", "-4", "addr", "show", "scope", "global"]
addrs = subprocess.run(ip, capture_output=True, text=True).stdout.split()
print(json.dumps({
    "argv": sys.argv[1:],
    "uid": os.getuid(),
    "addresses": [a.split("/")[0] for i, a in enumerate(addrs) if i and addrs[i - 1] == "inet"],
    "env": {k: os.environ.get(k) for k in ("INSTALL_K3S_VERSION", "K3S_TOKEN", "K3S_URL")},
}))
PY
unit=k3s
[ "$role" = agent ] && unit=k3s-agent
mkdir -p /usr/local/bin /etc/systemd/system /etc/ca4-standin
printf '#!/bin/sh\necho "k3s version %s (stand-in)"\n' "$INSTALL_K3S_VERSION" > /usr/local/bin/k3s
printf '#!/bin/sh\n[ "$1" = is-active ] && [ -e "/etc/ca4-standin/active-$3" ]\n' > /usr/local/bin/systemctl
printf '#!/bin/sh\nrm -f /etc/ca4-standin/active-%s /etc/systemd/system/%s.service.env %s\n' \
  "$unit" "$unit" /usr/local/bin/k3s > "/usr/local/bin/$unit-uninstall.sh"
chmod 755 /usr/local/bin/k3s /usr/local/bin/systemctl "/usr/local/bin/$unit-uninstall.sh"
printf "K3S_TOKEN='%s'\n" "$K3S_TOKEN" > "/etc/systemd/system/$unit.service.env"
if [ -n "${K3S_URL:-}" ]; then
  printf "K3S_URL='%s'\n" "$K3S_URL" >> "/etc/systemd/system/$unit.service.env"
fi
touch "/etc/ca4-standin/active-$unit"
if [ "$role" = server ]; then
  mkdir -p /var/lib/rancher/k3s/server /etc/rancher/k3s
  printf 'K10standin::server:%s\n' "$K3S_TOKEN" > /var/lib/rancher/k3s/server/token
  cat > /etc/rancher/k3s/k3s.yaml <<'YAML'
@KUBECONFIG@
YAML
  chmod 600 /etc/rancher/k3s/k3s.yaml
fi
echo "stand-in installer: $role done"
"""

KUBECONFIG = """apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: {ca}
    server: https://127.0.0.1:6443
  name: default
contexts:
- context:
    cluster: default
    user: default
  name: default
current-context: default
kind: Config
preferences: {{}}
users:
- name: default
  user:
    token: {token}"""


@dataclass
class LabEnv:
    """The running lab plus what the tests need to drive and inspect it."""

    lab: Lab
    root: Path
    records: Path
    api_log: Path
    echo_log: Path
    ca_pem: bytes

    def script_env(self, **extra: str) -> dict[str, str]:
        """Environment of the CA4 scripts on the workstation."""
        env = {
            "PATH": os.environ["PATH"],
            "HOME": str(self.root / "home"),
            "CA4_TF_OUTPUTS": str(self.root / "outputs.json"),
            # a blank in the key's path: the SSH config must quote it (both hops read it)
            "CA4_SSH_KEY": str(self.root / "ssh keys" / self.lab.key.name),
            "CA4_K3S_INSTALL_SCRIPT": str(self.root / "standin-install.sh"),
            "CA4_SECRETS_DIR": str(self.root / "kubeconfigs"),
            "CA4_STATE_DIR": str(self.root / "state"),
            "CA4_K3S_READY_TIMEOUT": "60",
            "CA4_SSH_CONNECT_TIMEOUT": "5",
        }
        env.update(extra)
        return env

    def run(self, script: str, *args: str, timeout: float = 180, **extra: str) -> tuple[int, str]:
        """A CA4 script on the workstation; (exit code, stdout+stderr)."""
        proc = self.lab.in_ws(
            ["bash", str(REPO / "scripts" / script), *args], self.script_env(**extra), timeout
        )
        return proc.returncode, proc.stdout + proc.stderr

    def installs(self) -> list[dict[str, object]]:
        """Every recorded installer call, oldest first."""
        return (
            [json.loads(line) for line in self.records.read_text().splitlines()]
            if self.records.exists()
            else []
        )


def make_ca(root: Path) -> tuple[Path, Path, bytes]:
    """A CA and a server certificate for 127.0.0.1/localhost (what K3s's API presents)."""
    ca_key, ca_crt, key, csr, crt, ext = (
        root / n for n in ("ca.key", "ca.crt", "srv.key", "srv.csr", "srv.crt", "ext.cnf")
    )
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    sh(
        "openssl",
        "req",
        "-x509",
        *ec,
        "-keyout",
        str(ca_key),
        "-out",
        str(ca_crt),
        "-days",
        "2",
        "-subj",
        "/CN=ca4-lab-ca",
    )
    sh("openssl", "req", *ec, "-keyout", str(key), "-out", str(csr), "-subj", "/CN=k3s")
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n")
    sh(
        "openssl",
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca_crt),
        "-CAkey",
        str(ca_key),
        "-CAcreateserial",
        "-out",
        str(crt),
        "-days",
        "2",
        "-extfile",
        str(ext),
    )
    return crt, key, ca_crt.read_bytes()


@pytest.fixture(scope="session")
def lab_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabEnv]:
    """Start the lab, yield it, tear everything down (also when a test fails)."""
    problem = lab_problem()
    if problem:
        pytest.skip(f"SSH lab unavailable: {problem}")
    root = tmp_path_factory.mktemp("ssh-lab")
    with Lab(root) as lab:
        crt, key, ca_pem = make_ca(root)
        (root / "ssh keys").mkdir(mode=0o700)
        shutil.copy2(lab.key, root / "ssh keys" / lab.key.name)
        records, api_log, echo_log = root / "installs.jsonl", root / "api.log", root / "echo.log"
        records.touch()
        records.chmod(0o666)
        kubeconfig = KUBECONFIG.format(ca=base64.b64encode(ca_pem).decode(), token=API_TOKEN)
        (root / "standin-install.sh").write_text(
            STANDIN.replace("@RECORDS@", str(records)).replace("@KUBECONFIG@", kubeconfig)
        )
        outputs = {
            "bastion_public_ip": BASTION_ADDR,
            "ssh_user": USER,
            "edge_node_private_ips": list(EDGE_ADDRS),
            "k3s_server_private_ip": EDGE_ADDRS[0],
            "k3s_api_internal_endpoint": f"https://{EDGE_ADDRS[0]}:6443",
        }
        (root / "outputs.json").write_text(
            json.dumps({k: {"sensitive": False, "value": v} for k, v in outputs.items()})
        )
        edge0 = lab.edges[0]

        def serve(kind: str, *args: str) -> None:
            """servers.py ``kind`` on edge 0, bounded by the lab's lifetime, its output in <kind>.out."""
            bounded = ["timeout", str(LIFETIME_S), sys.executable, str(HERE / "servers.py"), kind]
            lab.spawn(edge0.ns, [*bounded, *args, "--lifetime", str(LIFETIME_S)], root / f"{kind}.out")

        serve(
            "api",
            *("--listen", f"{edge0.addr}:6443", "--cert", str(crt), "--key", str(key), "--token", API_TOKEN),
            *("--records", str(records), "--log", str(api_log)),
        )
        serve(
            "echo", "--listen", edge0.addr, "--ports", ",".join(map(str, NODE_PORTS)), "--log", str(echo_log)
        )
        lab.wait_port(edge0.ns, edge0.addr, 6443)
        for port in NODE_PORTS:
            lab.wait_port(edge0.ns, edge0.addr, port)
        yield LabEnv(lab, root, records, api_log, echo_log, ca_pem)
    assert not lab.leftovers(), f"network namespaces left behind: {lab.leftovers()}"
