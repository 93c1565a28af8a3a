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
