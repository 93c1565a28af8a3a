# shellcheck shell=bash disable=SC2034 # read by the scripts that source this file
# Versions and port numbers the CA4 live scripts, the manifests and their tests agree on.
# Sourced by the scripts; tests/k8s parses it (KEY=value lines only, no expansions), so a
# number changed here is checked against manifests/ by `make test`.

# K3s release installed on the edge nodes (the stable channel when pinned). The manifests
# are validated against this Kubernetes minor (tests/k8s/test_validate.py).
CA4_K3S_VERSION_PINNED=v1.34.3+k3s3

# Image of both services: side-loaded into containerd on every node (image_ca4.sh load),
# never pulled; "localhost/" keeps containerd from ever resolving it on Docker Hub.
CA4_IMAGE_NAME=localhost/ca4-services

# Tunnels: local port on the workstation <- node port on edge node 0.
# Kafka broker N: 127.0.0.1:(19092+N) <- NodePort 30092+N (Service kafka-tunnel-N), which
# is broker N's TUNNEL listener, advertised as localhost:(19092+N).
CA4_KAFKA_TUNNEL_PORT_BASE=19092
CA4_KAFKA_NODE_PORT_BASE=30092
CA4_K3S_API_LOCAL_PORT=16443
# Grafana and Prometheus live in namespace monitoring (issue 6): NodePorts agreed with it.
CA4_GRAFANA_LOCAL_PORT=3000
CA4_GRAFANA_NODE_PORT=30300
CA4_PROMETHEUS_LOCAL_PORT=19090
CA4_PROMETHEUS_NODE_PORT=30090

# The rehearsal cluster (make rehearsal-up): Kubernetes at the patch of the K3s pin above,
# built from the Go module proxy, with the parts K3s bundles, each at the version named here.
# Debian's containerd, runc and CNI plugins come from the machine's archive (services/rehearsal).
# Kubernetes, Traefik, kube-router and CoreDNS build together in one Go module (as K3s does), so
# CoreDNS is a release on Kubernetes' client-go minor (0.34). local-path builds on its own: its
# v0.0.30 imports github.com/Sirupsen/logrus, which collides with the others' sirupsen/logrus,
# and the checksum database reachable here has no entry for the later v0.0.33.
CA4_REHEARSAL_KINE_VERSION=v0.17.5
CA4_REHEARSAL_COREDNS_VERSION=v1.14.1
CA4_REHEARSAL_LOCAL_PATH_VERSION=v0.0.30
CA4_REHEARSAL_TRAEFIK_VERSION=v3.6.12
CA4_REHEARSAL_KUBE_ROUTER_VERSION=v2.1.0
