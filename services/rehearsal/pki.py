"""The rehearsal cluster's certificates and tokens, made once with openssl (Debian's).

One CA signs the API server's serving certificate and its client certificate towards the
kubelets; everything else authenticates with a static bearer token (``--token-auth-file``),
each with the user name and groups Kubernetes' default RBAC expects, so the Node authorizer
and NodeRestriction apply to the kubelets as on K3s; agents that join later get their kubelet's
client certificate from this CA by TLS bootstrapping (``k3s``). Files are mode 600 under the
state folder.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

OPENSSL_TIMEOUT_S = 60


class PkiError(RuntimeError):
    """openssl failed; the message has its output."""


# a new P-256 key, for the CA and every leaf
_P256_KEY = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1")


def _openssl(*args: str, cwd: Path) -> None:
    done = subprocess.run(
        ["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=OPENSSL_TIMEOUT_S, check=False
    )
    if done.returncode != 0:
        raise PkiError(f"openssl {args[0]} failed: {done.stderr.strip()[-600:]}")


@dataclass(frozen=True)
class Token:
    """One static bearer token: the user it authenticates as, and its groups."""

    user: str
    groups: tuple[str, ...]
    value: str


class Pki:
    """Certificates and tokens in ``folder`` (created once, reused by every later ``up``)."""

    def __init__(self, folder: Path) -> None:
        self.dir = folder

    def path(self, name: str) -> Path:
        """A file of the PKI folder."""
        return self.dir / name

    def ensure(self, server_ip: str, service_ip: str, users: dict[str, tuple[str, ...]]) -> None:
        """The CA, the API server's certificates, the service-account key pair and a token per user."""
        self.ca("ca4-rehearsal-ca")
        sans = [
            f"IP:{server_ip}",
            f"IP:{service_ip}",
            "IP:127.0.0.1",
            "DNS:localhost",
            "DNS:kubernetes",
            "DNS:kubernetes.default",
            "DNS:kubernetes.default.svc",
            "DNS:kubernetes.default.svc.cluster.local",
        ]
        self.leaf("apiserver", "/CN=kube-apiserver", "serverAuth", sans)
        self.leaf(
            "apiserver-kubelet-client", "/O=system:masters/CN=kube-apiserver-kubelet-client", "clientAuth", []
        )
        if not self.path("sa.key").exists():
            _openssl(
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
                "sa.key",
                cwd=self.dir,
            )
            _openssl("pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=self.dir)
        tokens = self.tokens()
        for user, groups in users.items():
            if user not in tokens:
                tokens[user] = Token(user, groups, secrets.token_hex(24))
        # token,user,uid[,"group1,group2"]: a user without groups gets no fourth column
        lines = [
            f"{t.value},{t.user},{t.user}" + (f',"{",".join(t.groups)}"' if t.groups else "")
            for t in tokens.values()
        ]
        self.path("tokens.csv").write_text("\n".join(lines) + "\n")
        for f in self.dir.iterdir():
            os.chmod(f, 0o600)

    def ca(self, common_name: str) -> Path:
        """The folder's CA (ca.crt, ca.key), made once; returns the certificate's path."""
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        if not self.path("ca.crt").exists():
            _openssl(
                "req",
                "-x509",
                "-new",
                "-nodes",
                *_P256_KEY,
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "3650",
                "-subj",
                f"/CN={common_name}",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
                cwd=self.dir,
            )
        return self.path("ca.crt")

    def leaf(self, name: str, subject: str, usage: str, sans: list[str]) -> None:
        """``name``.crt and .key signed by the CA (made once): ``usage`` serverAuth or clientAuth."""
        if self.path(f"{name}.crt").exists():
            return
        ext = self.path(f"{name}.ext")
        lines = [
            "basicConstraints=critical,CA:FALSE",
            "keyUsage=critical,digitalSignature",
            f"extendedKeyUsage={usage}",
        ]
        if sans:
            lines.append("subjectAltName=" + ",".join(sans))
        ext.write_text("\n".join(lines) + "\n")
        _openssl(
            "req",
            "-new",
            "-nodes",
            *_P256_KEY,
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            "-subj",
            subject,
            cwd=self.dir,
        )
        _openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            f"{name}.crt",
            "-days",
            "3650",
            "-extfile",
            ext.name,
            cwd=self.dir,
        )
        self.path(f"{name}.csr").unlink()
        ext.unlink()

    def tokens(self) -> dict[str, Token]:
        """The tokens already written, by user."""
        found: dict[str, Token] = {}
        if self.path("tokens.csv").exists():
            for line in self.path("tokens.csv").read_text().splitlines():
                value, user, _uid, *rest = line.split(",", 3)
                groups = rest[0].strip('"').split(",") if rest else []
                found[user] = Token(user, tuple(g for g in groups if g), value)
        return found

    def token(self, user: str) -> str:
        """The token of one user."""
        return self.tokens()[user].value

    def encryption_config(self) -> Path:
        """The API server's EncryptionConfiguration: Secrets encrypted at rest with AES-CBC and a
        key made once, as K3s's --secrets-encryption does (identity reads what was stored before)."""
        path = self.path("encryption-config.json")
        if not path.exists():
            key = base64.b64encode(secrets.token_bytes(32)).decode()
            config = {
                "apiVersion": "apiserver.config.k8s.io/v1",
                "kind": "EncryptionConfiguration",
                "resources": [
                    {
                        "resources": ["secrets"],
                        "providers": [
                            {"aescbc": {"keys": [{"name": "ca4-rehearsal", "secret": key}]}},
                            {"identity": {}},
                        ],
                    }
                ],
            }
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                json.dump(config, handle, indent=2)
        return path

    def kubeconfig(self, user: str, server: str, path: Path) -> Path:
        """A kubeconfig for ``user`` against ``server``, trusting the CA (mode 600)."""
        ca = self.path("ca.crt").read_text()
        text = f"""apiVersion: v1
kind: Config
clusters:
- name: ca4-rehearsal
  cluster:
    server: {server}
    certificate-authority-data: {base64.b64encode(ca.encode()).decode()}
users:
- name: {user}
  user:
    token: {self.token(user)}
contexts:
- name: ca4-rehearsal
  context:
    cluster: ca4-rehearsal
    user: {user}
current-context: ca4-rehearsal
"""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        os.chmod(path, 0o600)
        return path
