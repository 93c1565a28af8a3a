"""How a rehearsal agent joins the server with ``K3S_TOKEN``, as K3s's do: the Kubernetes
bootstrap token both roles derive from it, the Secret the server registers for it, the cluster's
CA fetched with it (trusted on first use) and the kubelet's bootstrap kubeconfig.
"""

from __future__ import annotations

import base64
import hashlib
import json
import ssl
import time
import urllib.error
import urllib.request

from rehearsal.daemons import RehearsalError

JOIN_WAIT_S = 120


def bootstrap_token(k3s_token: str) -> tuple[str, str]:
    """The Kubernetes bootstrap token (id, secret) both roles derive from K3S_TOKEN."""
    digest = hashlib.sha256(k3s_token.encode()).hexdigest()
    return digest[:6], digest[6:22]


def bootstrap_secret(k3s_token: str) -> str:
    """The bootstrap-token Secret (kube-system) that lets agents holding K3S_TOKEN join."""
    token_id, secret = bootstrap_token(k3s_token)
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": f"bootstrap-token-{token_id}", "namespace": "kube-system"},
            "type": "bootstrap.kubernetes.io/token",
            "stringData": {
                "description": "K3S_TOKEN's bootstrap token: agents join with it (services/rehearsal/k3s.py)",
                "token-id": token_id,
                "token-secret": secret,
                "usage-bootstrap-authentication": "true",
            },
        }
    )


def fetch_ca(url: str, bearer: str) -> str:
    """The cluster's CA from the server, authenticated by the bootstrap token. The TLS connection
    cannot be verified yet (that is what the CA is for): trust on first use, as K3s does with a
    token that carries no CA hash."""
    request = urllib.request.Request(  # noqa: S310 - K3S_URL: https:// (the agent's own setting)
        f"{url}/api/v1/namespaces/kube-public/configmaps/kube-root-ca.crt",
        headers={"Authorization": f"Bearer {bearer}"},
    )
    context = ssl._create_unverified_context()  # noqa: S323 - trust on first use, see above
    deadline = time.monotonic() + JOIN_WAIT_S
    last = ""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(request, timeout=5, context=context) as resp:  # noqa: S310
                return str(json.loads(resp.read())["data"]["ca.crt"])
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code} (a wrong K3S_TOKEN is refused with 401)"
            if exc.code == 401:
                break
        except (urllib.error.URLError, OSError, KeyError, ValueError) as exc:
            last = str(exc)
        time.sleep(2)
    raise RehearsalError(f"k3s agent: cannot fetch the cluster's CA from {url}: {last}")


def token_kubeconfig(url: str, ca: str, bearer: str) -> str:
    """The kubelet's bootstrap kubeconfig: the server, its CA, the bootstrap token."""
    data = base64.b64encode(ca.encode()).decode()
    return (
        "apiVersion: v1\nkind: Config\n"
        f"clusters:\n- name: k3s\n  cluster:\n    server: {url}\n    certificate-authority-data: {data}\n"
        f"users:\n- name: bootstrap\n  user:\n    token: {bearer}\n"
        "contexts:\n- name: k3s\n  context:\n    cluster: k3s\n    user: bootstrap\ncurrent-context: k3s\n"
    )
