"""The configuration files of one node's daemons: containerd, the CNI network, kubelet, kube-proxy.

Settings this host needs (REHEARSAL.md, "This host's quirks"), and why:
- containerd ``restrict_oom_score_adj``, kubelet ``--oom-score-adj=0``, kube-proxy
  ``oomScoreAdj: 0``: the VM's bounding set lacks CAP_SYS_RESOURCE, so lowering an OOM
  score is refused, and runc reports that as "can't get final child's PID from pipe".
- cgroup v1 (hybrid): kubelet ``failCgroupV1: false``, ``cgroupDriver: cgroupfs``;
  containerd ``SystemdCgroup = false``; ``failSwapOn: false``.
- kube-proxy's conntrack settings are zero, so it leaves this machine's sysctls alone;
  ``masqueradeAll`` makes a reply from a pod to a pod on the same bridge come back through
  the node, where conntrack can undo the Service's DNAT.
- ``imageGCHighThresholdPercent: 100``: images are side-loaded, never pulled, so the kubelet
  must never delete one to free disk.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from rehearsal.topology import CLUSTER_CIDR, CLUSTER_DOMAIN, DNS_SERVICE_IP, Node

CONTAINERD_SOCKET = "/run/containerd/containerd.sock"
CNI_BIN_DIR = "/usr/lib/cni"  # Debian's containernetworking-plugins


def containerd_config(node: Node, pause_image: str) -> str:
    """containerd 1.6 (config version 2), its store under the node's folder."""
    return f"""version = 2
root = "{node.dir}/containerd/root"
state = "/run/containerd/state"
oom_score = 0

[grpc]
  address = "{CONTAINERD_SOCKET}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause_image}"
  restrict_oom_score_adj = true
  enable_unprivileged_ports = true
  enable_unprivileged_icmp = true

[plugins."io.containerd.grpc.v1.cri".containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  SystemdCgroup = false
  BinaryName = "/usr/sbin/runc"

[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = "{CNI_BIN_DIR}"
  conf_dir = "{node.dir}/cni-conf"
"""


def cni_config(node: Node) -> str:
    """A bridge (cni0) with the node's pod range; host-local addresses; hostPorts by portmap."""
    return json.dumps(
        {
            "cniVersion": "1.0.0",
            "name": "ca4-pods",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": "cni0",
                    "isGateway": True,
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": node.pod_cidr, "gateway": node.pod_gateway}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": "/var/lib/cni/networks",
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        },
        indent=2,
    )


def kubelet_config(node: Node, ca_file: Path, resolv_conf: Path) -> str:
    """KubeletConfiguration: cgroupfs on v1, webhook authn/z, the cluster DNS, no image GC."""
    return json.dumps(
        {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": node.cgroup,
            "failCgroupV1": False,
            "failSwapOn": False,
            "containerRuntimeEndpoint": f"unix://{CONTAINERD_SOCKET}",
            "address": node.addr,
            "healthzBindAddress": "127.0.0.1",
            "clusterDNS": [DNS_SERVICE_IP],
            "clusterDomain": CLUSTER_DOMAIN,
            "resolvConf": str(resolv_conf),
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(ca_file)},
            },
            "authorization": {"mode": "Webhook"},
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
            },
            "serializeImagePulls": False,
            "maxPods": 60,
            "rotateCertificates": False,
            "serverTLSBootstrap": False,
        },
        indent=2,
    )


def kube_proxy_config(node: Node, kubeconfig: Path) -> str:
    """KubeProxyConfiguration: iptables in the node's namespace, conntrack sysctls untouched."""
    return json.dumps(
        {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "mode": "iptables",
            "clusterCIDR": CLUSTER_CIDR,
            "hostnameOverride": node.name,
            "bindAddress": node.addr,
            "healthzBindAddress": "127.0.0.1:10256",
            "metricsBindAddress": "127.0.0.1:10249",
            "oomScoreAdj": 0,
            "conntrack": {
                "maxPerCore": 0,
                "min": 0,
                "tcpEstablishedTimeout": "0s",
                "tcpCloseWaitTimeout": "0s",
            },
            "iptables": {"masqueradeAll": True},
            "clientConnection": {"kubeconfig": str(kubeconfig)},
        },
        indent=2,
    )


def node_commands(node: Node, python: str, cache: Path) -> dict[str, str]:
    """``k3s`` and ``systemctl`` of a rehearsal node (its ``/usr/local/sbin``): the rehearsal's
    k3s (``rehearsal.k3s``), which K3s's install interface and the CA4 scripts call on a node
    (``k3s --version``, ``k3s server|agent``, ``sudo k3s ctr ...``), and the systemctl its
    installer's units need. ``k3s ctr`` execs ctr on the node's containerd directly."""
    env = {
        "CA4_REHEARSAL_DIR": str(node.state),
        "CA4_REHEARSAL_NODE": node.name,
        "CA4_CACHE_DIR": str(cache),
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
    }
    exports = [f"export {k}={shlex.quote(v)}" for k, v in env.items()]
    run = f"exec {shlex.quote(python)} -m rehearsal.k3s"
    k3s = [
        "#!/bin/sh",
        f"# k3s of the CA4 rehearsal's {node.name} (services/rehearsal/configs.py, k3s.py)",
        'if [ "${1:-}" = ctr ]; then',
        f'  shift; exec ctr --address {CONTAINERD_SOCKET} "$@"',
        "fi",
        *exports,
        f'{run} k3s "$@"',
        "",
    ]
    systemctl = [
        "#!/bin/sh",
        f"# systemctl of the CA4 rehearsal's {node.name}: the units of its K3s installer only",
        *exports,
        f'{run} systemctl "$@"',
        "",
    ]
    return {"k3s": "\n".join(k3s), "systemctl": "\n".join(systemctl)}
